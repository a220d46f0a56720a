"""What a split holds, for ``spbench data check``: counts, what cleaning changed, and its hash."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from spbench.data.records import Split
from spbench.data.registry import check_image_files, load_split, resolve_annotation_file

# Stats rows shown by format_summary, in order, with a plain-words label.
_STAT_LABELS = {
    "images_in_file": "images in file",
    "annotations_in_file": "annotations in file",
    "crowd_instances": "dropped: crowd annotations",
    "keypoints_out_of_frame": "zeroed: keypoints out of frame",
    "zero_visible_instances": "instances with no labelled keypoint",
    "ignored_instances": "kept as ignored ground truth (beside a labelled one)",
    "images_without_pose": "dropped: images with no labelled keypoint, with their instances",
    "missing_images": "image files missing",
}


def summarize(split: Split) -> dict:
    """The split's cleaning stats plus counts over the samples it holds, and its content hash."""
    instances = [i for s in split.samples for i in s.instances]
    per_image = [len(s.instances) for s in split.samples]
    summary = dict(split.stats)
    summary.update(
        dataset=split.dataset,
        split=split.name,
        root=split.root,
        content_hash=split.content_hash,
        # Counted over the samples, so a limited split reports what it holds.
        images=len(split.samples),
        instances=len(instances),
        labelled_instances=sum(i.labelled for i in instances),
        ignored_instances=sum(not i.labelled for i in instances),
        visible_keypoints=sum(i.num_visible for i in instances),
        max_instances_per_image=max(per_image, default=0),
        # Over the instances with a labelled keypoint (ignored ones have none by definition).
        mean_visible_keypoints_per_instance=(
            round(sum(i.num_visible for i in instances) / max(1, sum(i.labelled for i in instances)), 2)
            if instances else 0.0
        ),
        categories=dict(Counter(i.category for i in instances).most_common()),
        scenes=dict(Counter(s.scene for s in split.samples).most_common()),
    )
    return summary


def format_summary(summary: dict, max_listed: int = 12) -> Table:
    table = Table(title=f"{summary['dataset']} / {summary['split']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")  # paths wrap rather than being cut
    if "annotation_file" in summary:
        table.add_row("annotation file", str(summary["annotation_file"]))
    table.add_row("image root", str(summary["root"]))
    table.add_row("content hash", summary["content_hash"])
    table.add_row("images", str(summary["images"]))
    table.add_row("instances", f"{summary['instances']} (at most {summary['max_instances_per_image']} per image; "
                               f"{summary['labelled_instances']} with a labelled keypoint)")
    table.add_row("visible keypoints per instance", f"{summary['mean_visible_keypoints_per_instance']:.2f} (mean over labelled instances)")
    for key, label in _STAT_LABELS.items():
        if key in summary:
            table.add_row(label, str(summary[key]))
    table.add_row("categories", _counts(summary["categories"], max_listed))
    if isinstance(summary.get("cross_species"), dict):  # spbench.data.cross_species: categories are the prompted species
        used = summary["cross_species"].get("used") or {}
        table.add_row("cross-species pairs (pose → prompt)", ", ".join(f"{a} → {b}" for a, b in used.items()))
    table.add_row("scenes", _counts(summary["scenes"], max_listed))
    return table


def _counts(counts: dict, max_listed: int) -> str:
    items = [f"{name or '(none)'} {n}" for name, n in list(counts.items())[:max_listed]]
    rest = len(counts) - max_listed
    return ", ".join(items) + (f", ... {rest} more" if rest > 0 else "")


def data_check_report(
    dataset: str, split: str | None = None, data_root: str | None = None, ann: str | None = None,
    schema: str | None = None,
) -> tuple[dict, Table]:
    """Load a split without failing on missing images (they are counted) and summarise it; an
    image that does not decode or whose size disagrees with the annotation is an error."""
    _, ann_file = resolve_annotation_file(dataset, split, data_root, ann)
    loaded = load_split(dataset, split, data_root, ann, check_images=False, schema=schema)
    check_image_files(loaded, ann_file)
    summary = summarize(loaded)
    summary["annotation_file"] = str(ann_file)
    return summary, format_summary(summary)
