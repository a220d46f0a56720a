"""Any COCO-format keypoint file: the ``coco-keypoints`` dataset (``--ann FILE``).

For datasets spbench has no reader of their own for (COCO-WholeBody, Human-Art's 21 keypoints
outside its release layout, a lab's own annotations): one COCO-style JSON with ``images``,
``annotations`` and ``categories``, K (x, y, v) triples per annotation. K and the annotation
field holding them come from the keypoint schema (``--set dataset.schema=FILE``; default
COCO-17), so any keypoint set reads without code. Checks and cleaning are every reader's
(:mod:`spbench.data.cleaning`).

- Images: ``file_name`` is relative to ``--data-root`` (or its ``images/``); without it, to the
  annotation file's folder (or ``images/`` beside it, or the folder above ``annotations/``).
- Prompt: the image's caption when it has one (``description``, as Human-Art, or ``caption``),
  as the official Human-Art prompt ``"<caption>. <KPT>"``; else ``"A photo of <categories><KPT>"``
  (the categories of its instances, joined with "and"), as the AP-10K templates place the
  keypoint tokens after the species.
- Scene: the image's ``category`` when it is a string (Human-Art's scene), else empty.
- Sample ids: ``coco-<image id>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from spbench.data.cleaning import clean_annotations, pick_image_root, read_annotation_file
from spbench.data.records import KPT_PLACEHOLDER, Split
from spbench.errors import SpbenchError
from spbench.schemas import COCO17, KeypointSchema

DEFAULT_SPLIT = "custom"
CAPTION_FIELDS = ("description", "caption")


def annotation_file(data_root, split: str) -> Path:
    raise SpbenchError("dataset coco-keypoints reads one annotation file: pass --ann FILE "
                       "(and --data-root DIR, the folder its file_name entries are relative to)")


def prompt_template(image: dict, categories) -> str:
    """The evaluation prompt (with the keypoint placeholder) of one image (see the module doc)."""
    caption = next((image[f] for f in CAPTION_FIELDS if isinstance(image.get(f), str) and image[f].strip()), None)
    if caption is not None:
        return caption.strip() + ". " + KPT_PLACEHOLDER
    return "A photo of " + " and ".join(dict.fromkeys(categories)) + KPT_PLACEHOLDER


def read_coco_keypoints(
    ann_file: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    dataset: str = "coco-keypoints",
    split: str | None = None,
    schema: KeypointSchema | None = None,
) -> Split:
    """Read a COCO-format keypoint file into a Split (samples sorted by image id)."""
    ann_file = Path(ann_file)
    schema = schema or COCO17
    doc = read_annotation_file(ann_file, schema.num_keypoints, keypoint_field=schema.annotation_key)
    kept, stats = clean_annotations(doc, schema.annotation_key)

    files = [c.image["file_name"] for c in kept]
    image_root = pick_image_root(_image_folder_candidates(ann_file, data_root), files)
    samples = tuple(
        c.sample(f"coco-{c.image_id}", schema.name, prompt_template(c.image, [i.category for i in c.instances]),
                 c.image["category"] if isinstance(c.image.get("category"), str) else "")
        for c in kept
    )
    return Split(dataset=dataset, name=split or ann_file.stem, samples=samples,
                 root=os.path.abspath(image_root), stats=stats)


def _image_folder_candidates(ann_file: Path, data_root) -> list[Path]:
    candidates = []
    if data_root is not None:
        candidates += [Path(data_root), Path(data_root) / "images"]
    candidates += [ann_file.parent, ann_file.parent / "images"]
    if ann_file.parent.name == "annotations":
        candidates += [ann_file.parent.parent, ann_file.parent.parent / "images"]
    return candidates
