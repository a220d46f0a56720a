"""Reading COCO-style pose files, and the one defined treatment of awkward annotations.

Every dataset reader goes through the same two steps, so AP-10K, Human-Art and the shipped
sample are treated alike:

1. :func:`read_annotation_file` loads the JSON and checks its shape. A malformed file is a user
   error (:class:`SpbenchError`) whose one-line message names the file, the field
   (``annotations[3].keypoints``) and what is expected.
2. :func:`clean_annotations` applies these rules, in this order, counting what each one changed:

   - ``iscrowd=1`` annotation -> dropped (``crowd_instances``): a crowd region has no pose of
     one animal or person to condition on or to score.
   - keypoint with v > 0 whose (x, y) lies outside [0, width) x [0, height) -> set to (0, 0, 0)
     (``keypoints_out_of_frame``): it cannot be drawn into a condition nor matched by a
     detector on the image.
   - instance with no keypoint v > 0 left (``zero_visible_instances``) -> kept as ignored
     ground truth (``ignored_instances``) when its image has an instance with a labelled
     keypoint, as COCOeval and the official evaluation keep it: nothing is drawn or predicted
     for it, and a detection that matches it is ignored rather than a false positive.
   - image with no instance with a labelled keypoint -> dropped from the split, with any
     unlabelled instances it holds (``images_without_pose``): there is no pose to condition on.

   Keypoints with v = 0 are kept as written; keypoints become floats, v an int.

Stats keys (all ints): ``images_in_file``, ``annotations_in_file``, ``crowd_instances``,
``keypoints_out_of_frame``, ``zero_visible_instances``, ``ignored_instances``,
``images_without_pose``, ``images``, ``instances`` (kept, ignored ones included) and
``visible_keypoints``. The registry adds ``missing_images``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError

STAT_KEYS = (
    "images_in_file", "annotations_in_file", "crowd_instances", "keypoints_out_of_frame",
    "zero_visible_instances", "ignored_instances", "images_without_pose", "images", "instances",
    "visible_keypoints",
)


@dataclass(frozen=True)
class CleanImage:
    """One kept image: its JSON entry and its kept instances, in file order."""

    image: dict
    instances: tuple[Instance, ...]

    @property
    def image_id(self) -> int:
        return int(self.image["id"])

    def sample(self, sample_id: str, schema: str, prompt_template: str, scene: str = "", extra: dict | None = None) -> Sample:
        """The image as a Sample: its file, size and kept instances, with the reader's id, prompt and scene."""
        return Sample(sample_id=sample_id, image_id=self.image_id, file=self.image["file_name"],
                      width=int(self.image["width"]), height=int(self.image["height"]), schema=schema,
                      instances=self.instances, prompt_template=prompt_template, scene=scene, extra=extra or {})


# ---------------------------------------------------------------------------------------------
# Reading and checking the file


def read_annotation_file(path: str | os.PathLike, num_keypoints: int, missing_hint: str = "",
                         keypoint_field: str = "keypoints") -> dict:
    """Load a COCO-style keypoint file and check every field the readers use (the keypoints
    under ``keypoint_field``: a schema file may name another, e.g. Human-Art's keypoints_21)."""
    path = Path(path)
    if not path.is_file():
        fix = missing_hint or "check the path"
        raise SpbenchError(f"{path}: annotation file not found; {fix}")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise SpbenchError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "expected a COCO-style annotation file"
        ) from None
    except UnicodeDecodeError:
        raise SpbenchError(f"{path}: not a UTF-8 text file; expected a COCO-style annotation JSON") from None
    check_coco_document(doc, num_keypoints, str(path), keypoint_field)
    return doc


def check_coco_document(doc, num_keypoints: int, where: str, keypoint_field: str = "keypoints") -> None:
    """Raise a one-line SpbenchError at the first field the readers cannot use."""

    def fail(field: str, expected: str, got: str) -> NoReturn:
        raise SpbenchError(f"{where}: {field}: expected {expected}, got {got}")

    if not isinstance(doc, dict):
        fail("top level", "a JSON object with images, annotations and categories", type(doc).__name__)
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            fail(key, "a list (COCO-style file with images, annotations and categories)", "no such field")
        if not isinstance(doc[key], list):
            fail(key, "a list", type(doc[key]).__name__)

    category_ids = set()
    for i, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict):
            fail(f"categories[{i}]", "an object with id and name", _short_repr(cat))
        if not _is_int(cat.get("id")):
            fail(f"categories[{i}].id", "an integer", _short_repr(cat.get("id")))
        if not isinstance(cat.get("name"), str):
            fail(f"categories[{i}].name", "a string", _short_repr(cat.get("name")))
        category_ids.add(cat["id"])

    image_ids = set()
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict):
            fail(f"images[{i}]", "an object with id, file_name, width and height", _short_repr(img))
        if not _is_int(img.get("id")):
            fail(f"images[{i}].id", "an integer", _short_repr(img.get("id")))
        if img["id"] in image_ids:
            fail(f"images[{i}].id", "a unique image id", f"{img['id']} again")
        image_ids.add(img["id"])
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            fail(f"images[{i}].file_name", "the image file name", _short_repr(img.get("file_name")))
        if escapes_root(img["file_name"]):
            fail(f"images[{i}].file_name",
                 "a path inside the data root (relative, without '..'); fix the file_name", _short_repr(img["file_name"]))
        for key in ("width", "height"):
            if not _is_finite(img.get(key)) or img[key] <= 0:
                fail(f"images[{i}].{key}", "a positive number of pixels (finite, not NaN or Infinity); fix the image entry",
                     _short_repr(img.get(key)))

    for i, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            fail(f"annotations[{i}]", "an object", _short_repr(ann))
        if not _is_int(ann.get("image_id")) or ann["image_id"] not in image_ids:
            fail(f"annotations[{i}].image_id", "the id of an entry in images", _short_repr(ann.get("image_id")))
        if ann.get("iscrowd", 0) not in (0, 1):
            fail(f"annotations[{i}].iscrowd", "0 or 1", _short_repr(ann.get("iscrowd")))
        if ann.get("iscrowd", 0) == 1:
            continue  # dropped by the cleaning rules whatever its other fields hold
        if not _is_int(ann.get("category_id")) or ann["category_id"] not in category_ids:
            fail(f"annotations[{i}].category_id", "the id of an entry in categories",
                 _short_repr(ann.get("category_id")))
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            fail(f"annotations[{i}].bbox", "[x, y, width, height] (4 numbers)", _short_repr(bbox))
        if not all(_is_finite(v) for v in bbox):
            fail(f"annotations[{i}].bbox", "finite numbers (NaN or infinite box values cannot be scored); fix the box",
                 _short_repr(bbox))
        if bbox[2] < 0 or bbox[3] < 0:
            fail(f"annotations[{i}].bbox", "[x, y, width, height] with width and height >= 0; fix the box",
                 _short_repr(bbox))
        if "area" in ann and not (_is_finite(ann["area"]) and ann["area"] >= 0):
            fail(f"annotations[{i}].area", "a finite number >= 0", _short_repr(ann["area"]))
        kpts = ann.get(keypoint_field)
        n_values = 3 * num_keypoints
        field = f"annotations[{i}].{keypoint_field}"
        if not isinstance(kpts, list):
            fail(field, f"a list of {n_values} numbers (x, y, v per keypoint)", _short_repr(kpts))
        if len(kpts) != n_values:
            fail(field, f"{n_values} numbers ({num_keypoints} keypoints x (x, y, v))", f"{len(kpts)} numbers")
        if not all(_is_number(v) for v in kpts):
            fail(field, "numbers only",
                 _short_repr(next(v for v in kpts if not _is_number(v))))
        bad = next((j for j, v in enumerate(kpts) if not _is_finite(v)), None)
        if bad is not None:
            # Not "out of frame": a NaN or infinite coordinate is a broken value, not a position.
            fail(field,
                 "finite numbers (a NaN or infinite value is not an out-of-frame keypoint; "
                 "write 0, 0, 0 for an unlabelled one)",
                 f"{kpts[bad]!r} at keypoint {bad // 3} ({'xyv'[bad % 3]})")
        if any(v not in (0, 1, 2) for v in kpts[2::3]):
            fail(field, "visibility flags 0, 1 or 2",
                 _short_repr(next(v for v in kpts[2::3] if v not in (0, 1, 2))))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v) -> bool:
    """A number that is not NaN or infinite (Python's json reads NaN, Infinity and 1e999)."""
    try:
        return _is_number(v) and math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def escapes_root(file_name: str) -> bool:
    """Whether an annotation's file_name points outside the folder it is relative to: absolute
    (``/x``, ``C:/x``) or climbing with ``..``."""
    name = file_name.replace("\\", "/")
    if name.startswith("/") or os.path.isabs(file_name) or (name[:1].isalpha() and name[1:3] == ":/"):
        return True
    return ".." in name.split("/")


def _short_repr(v, limit: int = 60) -> str:
    text = "nothing" if v is None else repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Cleaning


def clean_annotations(doc: dict, keypoint_field: str = "keypoints") -> tuple[list[CleanImage], dict]:
    """Apply the cleaning rules to a checked document (keypoints read from ``keypoint_field``).

    Returns the kept images sorted by image id (each with its kept instances in file order) and
    the stats dict (see the module docstring).
    """
    category_names = {c["id"]: c["name"] for c in doc["categories"]}
    stats = dict.fromkeys(STAT_KEYS, 0)
    stats["images_in_file"] = len(doc["images"])
    stats["annotations_in_file"] = len(doc["annotations"])

    images_by_id = {img["id"]: img for img in doc["images"]}
    kept_by_image: dict[int, list[Instance]] = {image_id: [] for image_id in images_by_id}
    for ann in doc["annotations"]:
        if ann.get("iscrowd", 0) == 1:
            stats["crowd_instances"] += 1
            continue
        image = images_by_id[ann["image_id"]]
        keypoints, n_out = _keypoints_in_frame(ann[keypoint_field], image["width"], image["height"])
        stats["keypoints_out_of_frame"] += n_out
        if not any(v > 0 for _, _, v in keypoints):
            stats["zero_visible_instances"] += 1  # kept below if its image has a labelled instance
        x, y, w, h = (float(v) for v in ann["bbox"])
        kept_by_image[ann["image_id"]].append(
            Instance(
                category=category_names[ann["category_id"]],
                bbox=(x, y, w, h),
                area=float(ann["area"]) if "area" in ann else w * h,
                keypoints=keypoints,
                annotation_id=int(ann.get("id", -1)),
            )
        )

    kept: list[CleanImage] = []
    for image_id in sorted(kept_by_image):
        instances = kept_by_image[image_id]
        if not any(i.labelled for i in instances):
            stats["images_without_pose"] += 1
            continue
        kept.append(CleanImage(images_by_id[image_id], tuple(instances)))
        stats["instances"] += len(instances)
        stats["ignored_instances"] += sum(not i.labelled for i in instances)
        stats["visible_keypoints"] += sum(i.num_visible for i in instances)
    stats["images"] = len(kept)
    return kept, stats


def _keypoints_in_frame(flat: Sequence[float], width: float, height: float):
    """(x, y, v) triples with labelled points outside the image set to (0, 0, 0)."""
    out = []
    n_out = 0
    for k in range(0, len(flat), 3):
        x, y, v = float(flat[k]), float(flat[k + 1]), int(flat[k + 2])
        if v > 0 and not (0 <= x < width and 0 <= y < height):
            x, y, v = 0.0, 0.0, 0
            n_out += 1
        out.append((x, y, v))
    return tuple(out), n_out


# ---------------------------------------------------------------------------------------------
# Image folder


def pick_image_root(candidates: Sequence[str | os.PathLike], files: Sequence[str]) -> Path:
    """The candidate folder under which the image files exist.

    The first candidate holding all files wins; else the one holding most (first on ties); if
    none holds any, the first, so a missing-image error names the documented layout.
    """
    unique = list(dict.fromkeys(Path(c) for c in candidates))
    best, best_count = unique[0], -1
    for folder in unique:
        count = sum(1 for f in files if (folder / f).is_file())
        if count == len(files):
            return folder
        if count > best_count:
            best, best_count = folder, count
    return best if best_count > 0 else unique[0]
