"""Named datasets and the one entry point that turns (dataset, split, paths) into a Split.

``ap10k`` and ``humanart`` read the user's download (``--data-root``, or one ``--ann FILE``);
``sample`` is the small synthetic set shipped in the package, so everything runs out of the box.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spbench.data import ap10k, humanart
from spbench.data.records import Split
from spbench.errors import SpbenchError

SAMPLE_ROOT = Path(__file__).resolve().parent / "sample"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    schema: str
    default_split: str
    splits: tuple[str, ...]
    # How to find the folder that holds annotations/ (shown in errors).
    data_root_hint: str = ""


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "ap10k", "AP-10K animal pose (54 species, 17 keypoints)", "ap10k",
            ap10k.DEFAULT_SPLIT, ap10k.SPLITS,
            "the AP-10K folder that holds annotations/ and data/",
        ),
        DatasetInfo(
            "humanart", "Human-Art human pose in real and artistic scenes (COCO-17)", "coco17",
            humanart.DEFAULT_SPLIT, humanart.SPLITS,
            "the folder that holds HumanArt/ (or HumanArt/ itself, with annotations/ and images/)",
        ),
        DatasetInfo(
            "sample", "small synthetic sample shipped with spbench (not real dataset images)",
            "ap10k or coco17", "ap10k", ("ap10k", "humanart"),
        ),
    )
}

# sample split -> (reader, annotation file, data root), all inside the package.
_SAMPLE_SPLITS: dict[str, tuple[Callable[..., Split], Path, Path]] = {
    "ap10k": (ap10k.read_ap10k, SAMPLE_ROOT / "ap10k" / "annotations" / "ap10k-sample.json",
              SAMPLE_ROOT / "ap10k"),
    "humanart": (humanart.read_humanart,
                 SAMPLE_ROOT / "humanart" / "HumanArt" / "annotations" / "validation_humanart.json",
                 SAMPLE_ROOT / "humanart"),
}
_READERS: dict[str, Callable[..., Split]] = {"ap10k": ap10k.read_ap10k, "humanart": humanart.read_humanart}
_ANNOTATION_FILES = {"ap10k": ap10k.annotation_file, "humanart": humanart.annotation_file}


def list_datasets() -> list[DatasetInfo]:
    return list(DATASETS.values())


def get_dataset(name: str) -> DatasetInfo:
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, list(DATASETS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise SpbenchError(f"unknown dataset {name!r}; {hint}known datasets: {', '.join(DATASETS)}")


def resolve_annotation_file(
    dataset: str, split: str | None = None, data_root: str | None = None, ann: str | None = None
) -> tuple[str, Path]:
    """The split's name and the annotation file it is read from (no file is opened)."""
    info = get_dataset(dataset)
    if dataset == "sample":
        if ann is not None:
            raise SpbenchError(
                "--ann cannot be used with the sample dataset; use --dataset ap10k or humanart with --ann FILE"
            )
        split = split or info.default_split
        _check_known_split(info, split, allow_ann=False)
        return split, _SAMPLE_SPLITS[split][1]
    if ann is not None:
        return split or Path(ann).stem, Path(ann)
    split = split or info.default_split
    _check_known_split(info, split, allow_ann=True)
    if data_root is None:
        raise SpbenchError(
            f"dataset {dataset!r} needs its files: pass --data-root DIR ({info.data_root_hint}), "
            "or --ann FILE for one annotation file; or try --dataset sample"
        )
    return split, _ANNOTATION_FILES[dataset](data_root, split)


def load_split(
    dataset: str,
    split: str | None = None,
    data_root: str | None = None,
    ann: str | None = None,
    check_images: bool = True,
) -> Split:
    """Read, check and clean one split; Split.stats carries the cleaning counts.

    With ``check_images`` a missing image file is an error; without, missing files are counted
    in ``stats["missing_images"]``. The ``sample`` dataset ignores ``data_root`` (its files ship
    in the package), so a configured root does not get in its way.
    """
    split_name, ann_file = resolve_annotation_file(dataset, split, data_root, ann)
    info = DATASETS[dataset]
    if not ann_file.is_file():
        if ann is not None:
            fix = "check the --ann path"
        elif dataset == "sample":
            fix = "the installed package is incomplete; reinstall spbench"
        else:
            fix = f"pass --data-root {info.data_root_hint}, or --ann FILE"
        raise SpbenchError(f"{ann_file}: annotation file not found; {fix}")

    if dataset == "sample":
        reader, _, root = _SAMPLE_SPLITS[split_name]
        result = reader(ann_file, root, dataset="sample", split=split_name)
    else:
        result = _READERS[dataset](ann_file, data_root, dataset=dataset, split=split_name)

    missing = [p for p in (result.image_path(s) for s in result.samples) if not os.path.isfile(p)]
    if missing and check_images:
        raise SpbenchError(
            f"{len(missing)} of {len(result)} images of {dataset}/{split_name} not found, first: {missing[0]}; "
            f"pass --data-root {info.data_root_hint or 'the dataset folder'}"
        )
    stats = {**result.stats, "missing_images": len(missing)}
    return dataclasses.replace(result, stats=stats)


def check_image_files(split: Split, ann_file: str | os.PathLike | None = None) -> None:
    """Every image file of the split that exists opens as an image of the size its annotation
    gives; else a one-line SpbenchError naming the first bad file and how many there are.

    Only headers are read (PIL opens lazily), so this is quick even for a whole dataset; it runs
    before generation and in ``spbench data check``. Missing files are left to ``load_split``.
    """
    from PIL import Image, UnidentifiedImageError

    source = f" in {ann_file}" if ann_file else ""
    unreadable, wrong_size = [], []
    for sample in split.samples:
        path = split.image_path(sample)
        if not os.path.isfile(path):
            continue
        try:
            with Image.open(path) as im:
                size = im.size
        except (UnidentifiedImageError, OSError, ValueError) as e:
            unreadable.append(f"{path}: not a readable image ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
            continue
        if size != (sample.width, sample.height):
            wrong_size.append(
                f"{path} is {size[0]}x{size[1]} pixels but image id {sample.image_id}{source} says "
                f"width {sample.width}, height {sample.height}"
            )
    where = f"{split.dataset}/{split.name}"
    if unreadable:
        raise SpbenchError(
            f"{len(unreadable)} of {len(split)} images of {where} do not decode, first {unreadable[0]}; "
            "replace the file(s) with the dataset's originals"
        )
    if wrong_size:
        raise SpbenchError(
            f"{len(wrong_size)} of {len(split)} images of {where} disagree with their annotation, first {wrong_size[0]}; "
            "fix width/height in the annotation file or use the images it was made for"
        )


def _check_known_split(info: DatasetInfo, split: str, allow_ann: bool) -> None:
    if split in info.splits:
        return
    close = difflib.get_close_matches(split, info.splits, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    other = "; or read any annotation file with --ann FILE" if allow_ann else ""
    raise SpbenchError(
        f"unknown split {split!r} of dataset {info.name!r}; {hint}known splits: {', '.join(info.splits)}{other}"
    )
