"""AP-10K reader: COCO-style JSON -> a Split of animal samples with fixed evaluation prompts.

Layout (as released): ``<root>/annotations/ap10k-{train,val,test}-split{1,2,3}.json`` and the
images in ``<root>/data/``. A root whose images lie directly next to the JSON (mmpose's test
data) works too: the image folder is whichever candidate actually holds the files.

Each image's prompt is one of the 10 official templates, picked by a hash of the image id so
the benchmark prompt is fixed and recorded rather than drawn at random.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from spbench.data.cleaning import clean_annotations, pick_image_root, read_annotation_file
from spbench.data.records import KPT_PLACEHOLDER, Split
from spbench.schemas import AP10K, KeypointSchema

SPLITS = tuple(f"{part}-split{k}" for k in (1, 2, 3) for part in ("train", "val", "test"))
DEFAULT_SPLIT = "val-split1"  # the paper evaluates on val-split1

# Background ids -> the words the official prompts use.
BACKGROUNDS = {
    1: "grass or savanna",
    2: "forest or shrub",
    3: "mud or rock",
    4: "snowfield",
    5: "zoo or human habitation",
    6: "swamp or riverside",
    7: "desert or gobi",
    8: "mugshot",
    9: "forest",
    88: "dark",
}
UNKNOWN_BACKGROUND = "wild"

# The official templates, verbatim (including the "severl" typo): {c} species, {b} background.
PROMPT_TEMPLATES = (
    "A good photo of {c}<KPT>",
    "A photo of {c}<KPT> in the {b}",
    "There is {c}<KPT> on the {b}",
    "There are some {c}<KPT> lying in the {b}",
    "Some {c}<KPT> are in the {b}",
    "A close photo of {c}<KPT>.",
    "In the {b}, there are severl {c}<KPT>.",
    "This is a clear photo of {c}<KPT> in the {b}.",
    "Several {c}<KPT> are in the {b}.",
    "A {c}<KPT> stands in the {b}.",
)
assert all(KPT_PLACEHOLDER in t for t in PROMPT_TEMPLATES)


def annotation_file(data_root: str | os.PathLike, split: str) -> Path:
    return Path(data_root) / "annotations" / f"ap10k-{split}.json"


def background_name(background_id) -> str:
    try:
        return BACKGROUNDS.get(int(background_id), UNKNOWN_BACKGROUND)
    except (TypeError, ValueError):
        return UNKNOWN_BACKGROUND


def template_index(image_id: int) -> int:
    """Which official template an image gets: a pure function of its id."""
    digest = hashlib.sha256(f"ap10k-prompt:{image_id}".encode()).hexdigest()
    return int(digest, 16) % len(PROMPT_TEMPLATES)


def prompt_template(image_id: int, species: Sequence[str], background: str) -> str:
    """The evaluation prompt (with the keypoint placeholder) of one image."""
    names = " and ".join(dict.fromkeys(species))
    return PROMPT_TEMPLATES[template_index(image_id)].format(c=names, b=background)


def read_ap10k(
    ann_file: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    dataset: str = "ap10k",
    split: str | None = None,
    schema: KeypointSchema | None = None,
) -> Split:
    """Read one AP-10K annotation file into a Split (samples sorted by image id).

    ``data_root`` is the folder holding ``annotations/`` and ``data/``; without it, the folder is
    inferred from the annotation file's location. ``schema`` (default AP-10K's) says how many
    keypoints each annotation holds, and under which field.
    """
    ann_file = Path(ann_file)
    schema = schema or AP10K
    doc = read_annotation_file(ann_file, schema.num_keypoints, keypoint_field=schema.annotation_key)
    kept, stats = clean_annotations(doc, schema.annotation_key)

    files = [c.image["file_name"] for c in kept]
    image_root = pick_image_root(_image_folder_candidates(ann_file, data_root), files)

    samples = []
    for c in kept:
        background = background_name(c.image.get("background"))
        prompt = prompt_template(c.image_id, [i.category for i in c.instances], background)
        samples.append(c.sample(f"ap10k-{c.image_id:012d}", schema.name, prompt, background,
                                extra={"template": template_index(c.image_id), "background": c.image.get("background")}))
    return Split(
        dataset=dataset,
        name=split or ann_file.stem,
        samples=tuple(samples),
        root=os.path.abspath(image_root),
        stats=stats,
    )


def _image_folder_candidates(ann_file: Path, data_root) -> list[Path]:
    """Where the images may be, most documented layout first."""
    candidates = []
    if data_root is not None:
        candidates += [Path(data_root) / "data", Path(data_root)]
    if ann_file.parent.name == "annotations":
        candidates.append(ann_file.parent.parent / "data")
    candidates += [ann_file.parent / "data", ann_file.parent]
    return candidates
