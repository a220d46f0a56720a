"""Human-Art reader: COCO-style JSON -> a Split of human samples, prompted by their captions.

Layout (as released): a folder ``HumanArt/`` with ``annotations/{training,validation}_humanart.json``
and ``images/{real_human,2D_virtual_human,3D_virtual_human}/<scene>/<file>``. The JSON's
``file_name`` starts with ``HumanArt/images/...``: it is relative to the folder that *contains*
``HumanArt/``. The data root may name either that parent folder or ``HumanArt/`` itself; the
split's root is set so that ``Split.image_path`` joins to the real file either way.
"""

from __future__ import annotations

import os
from pathlib import Path

from spbench.data.cleaning import clean_annotations, pick_image_root, read_annotation_file
from spbench.data.records import KPT_PLACEHOLDER, Split
from spbench.errors import SpbenchError
from spbench.schemas import COCO17, KeypointSchema

SPLITS = ("validation", "training")
DEFAULT_SPLIT = "validation"
FOLDER_NAME = "HumanArt"


def humanart_dir(data_root: str | os.PathLike) -> Path:
    """The ``HumanArt/`` folder, whether the root names it or the folder that contains it."""
    data_root = Path(data_root)
    if (data_root / FOLDER_NAME).is_dir():
        return data_root / FOLDER_NAME
    if (data_root / "annotations").is_dir():
        return data_root
    return data_root / FOLDER_NAME  # neither: the missing-file error then names the usual layout


def annotation_file(data_root: str | os.PathLike, split: str) -> Path:
    return humanart_dir(data_root) / "annotations" / f"{split}_humanart.json"


def prompt_template(description: str) -> str:
    """The official Human-Art prompt: the caption, then the keypoint placeholder."""
    return description.strip() + ". " + KPT_PLACEHOLDER


def read_humanart(
    ann_file: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    dataset: str = "humanart",
    split: str | None = None,
    schema: KeypointSchema | None = None,
) -> Split:
    """Read one Human-Art annotation file into a Split (samples sorted by image id). ``schema``
    (default COCO-17) says how many keypoints each annotation holds, and under which field (a
    schema file for Human-Art's 21 keypoints names ``keypoints_21``)."""
    ann_file = Path(ann_file)
    schema = schema or COCO17
    doc = read_annotation_file(ann_file, schema.num_keypoints, keypoint_field=schema.annotation_key)
    for i, img in enumerate(doc["images"]):
        if not isinstance(img.get("description"), str):
            raise SpbenchError(
                f"{ann_file}: images[{i}].description: expected the image caption (a string), "
                f"got {img.get('description')!r:.60}"
            )
    kept, stats = clean_annotations(doc, schema.annotation_key)

    files = [c.image["file_name"] for c in kept]
    image_root = pick_image_root(_root_candidates(ann_file, data_root), files)

    samples = tuple(
        c.sample(f"humanart-{c.image_id}", schema.name, prompt_template(c.image["description"]), str(c.image.get("category", "")))
        for c in kept
    )
    return Split(
        dataset=dataset,
        name=split or ann_file.stem,
        samples=samples,
        root=os.path.abspath(image_root),
        stats=stats,
    )


def _root_candidates(ann_file: Path, data_root) -> list[Path]:
    """Folders file names may be relative to: the parent of HumanArt/ first (the JSON's own
    convention), then HumanArt/ itself (for files written as ``images/...``)."""
    if data_root is not None:
        folder = humanart_dir(data_root)
    elif ann_file.parent.name == "annotations":
        folder = ann_file.parent.parent
    else:
        folder = ann_file.parent
    return [folder.parent, folder]
