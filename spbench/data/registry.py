"""Named datasets and the one entry point that turns (dataset, split, paths) into a Split.

``ap10k`` and ``humanart`` read the user's download (``--data-root``, or one ``--ann FILE``);
``sample-ap10k`` and ``sample-humanart`` are the small synthetic sets shipped in the package, so
everything runs out of the box, and ``sample`` names both: its splits ``ap10k`` and ``humanart``
are those two datasets. ``coco-keypoints`` reads any COCO-format keypoint file (``--ann FILE``),
with as many keypoints as the keypoint schema (``dataset.schema``: a schema file) has.
``ap10k-cross`` (and the sample's split ``ap10k-cross``, dataset ``sample-ap10k-cross``) is AP-10K
under the cross-species protocol (:mod:`spbench.data.cross_species`). Every dataset is a :class:`DatasetInfo` in ``DATASETS`` (a
:class:`spbench.registry.Registry`); nothing below asks for a dataset by name.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from spbench.data import ap10k, coco_keypoints, humanart
from spbench.data.records import Split
from spbench.errors import SpbenchError
from spbench.registry import Registry, did_you_mean, import_target
from spbench.schema_files import resolve_schema
from spbench.schemas import KeypointSchema

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
    # "module:function" reading (ann_file, data_root, dataset=, split=[, schema=]) into a Split;
    # schema= (a KeypointSchema) is passed only when dataset.schema asks for one.
    reader: str = ""
    # "module:function" giving a download's annotation file from (data_root, split).
    annotation: str = ""
    # Files shipped in the package: (annotation file, data root); --data-root and --ann do not apply.
    files: tuple[Path, Path] | None = None
    # The dataset name its splits are recorded under (run folders, records, split hashes), when
    # not its own: the shipped sample's datasets record as ``sample``.
    record_name: str | None = None
    # The benchmark dataset whose table cells a run of it fills, for a stand-in (the samples).
    stands_in_for: str | None = None
    # split -> the dataset that is that split, for a name that groups datasets (``sample``).
    split_datasets: dict[str, str] = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        return self.files is not None or bool(self.split_datasets)


DATASETS: Registry[DatasetInfo] = Registry(
    "dataset", instance_of=DatasetInfo, unknown="unknown dataset {name!r}; {hint}known datasets: {known}"
)
for _info in (
    DatasetInfo(
        "ap10k", "AP-10K animal pose (54 species, 17 keypoints)", "ap10k",
        ap10k.DEFAULT_SPLIT, ap10k.SPLITS,
        "the AP-10K folder that holds annotations/ and data/",
        reader="spbench.data.ap10k:read_ap10k", annotation="spbench.data.ap10k:annotation_file",
    ),
    DatasetInfo(
        "humanart", "Human-Art human pose in real and artistic scenes (COCO-17)", "coco17",
        humanart.DEFAULT_SPLIT, humanart.SPLITS,
        "the folder that holds HumanArt/ (or HumanArt/ itself, with annotations/ and images/)",
        reader="spbench.data.humanart:read_humanart", annotation="spbench.data.humanart:annotation_file",
    ),
    DatasetInfo(
        "ap10k-cross", "AP-10K poses prompted as a species of another family (cross-species protocol, paper Fig. 12)",
        "ap10k", ap10k.DEFAULT_SPLIT, ap10k.SPLITS,
        "the AP-10K folder that holds annotations/ and data/",
        reader="spbench.data.cross_species:read_ap10k_cross", annotation="spbench.data.ap10k:annotation_file",
    ),
    DatasetInfo(
        "sample", "small synthetic sample shipped with spbench (not real dataset images)",
        "ap10k or coco17", "ap10k", ("ap10k", "humanart", "ap10k-cross"),
        split_datasets={"ap10k": "sample-ap10k", "humanart": "sample-humanart", "ap10k-cross": "sample-ap10k-cross"},
    ),
    DatasetInfo(
        "sample-ap10k", "the sample's AP-10K-like split (synthetic; `--dataset sample --split ap10k`)",
        "ap10k", "ap10k", ("ap10k",), reader="spbench.data.ap10k:read_ap10k",
        files=(SAMPLE_ROOT / "ap10k" / "annotations" / "ap10k-sample.json", SAMPLE_ROOT / "ap10k"),
        record_name="sample", stands_in_for="ap10k",
    ),
    DatasetInfo(
        "sample-humanart", "the sample's Human-Art-like split (synthetic; `--dataset sample --split humanart`)",
        "coco17", "humanart", ("humanart",), reader="spbench.data.humanart:read_humanart",
        files=(SAMPLE_ROOT / "humanart" / "HumanArt" / "annotations" / "validation_humanart.json",
               SAMPLE_ROOT / "humanart"),
        record_name="sample", stands_in_for="humanart",
    ),
    DatasetInfo(
        "sample-ap10k-cross", "the sample's AP-10K-like split under the cross-species protocol (synthetic; "
        "`--dataset sample --split ap10k-cross`)",
        "ap10k", "ap10k-cross", ("ap10k-cross",), reader="spbench.data.cross_species:read_ap10k_cross",
        files=(SAMPLE_ROOT / "ap10k" / "annotations" / "ap10k-sample.json", SAMPLE_ROOT / "ap10k"),
        record_name="sample", stands_in_for="ap10k-cross",
    ),
    DatasetInfo(
        "coco-keypoints", "any COCO-format keypoint file (--ann FILE); K keypoints per dataset.schema "
        "(a schema file; default COCO-17)", "coco17", coco_keypoints.DEFAULT_SPLIT, (coco_keypoints.DEFAULT_SPLIT,),
        "the folder the annotation file's file_name entries are relative to",
        reader="spbench.data.coco_keypoints:read_coco_keypoints",
        annotation="spbench.data.coco_keypoints:annotation_file",
    ),
):
    DATASETS.register(_info.name, _info)


def list_datasets() -> list[DatasetInfo]:
    """The datasets a run names, each once: the sample's two datasets are listed as its splits."""
    return [d for d in DATASETS.values() if d.record_name is None]


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.load(name)


def dataset_of_split(dataset: str, split: str | None = None) -> DatasetInfo:
    """The dataset that reads ``dataset``'s ``split``: itself, or for a name that groups datasets
    (``sample``) the one that is that split (default: its default split)."""
    info = get_dataset(dataset)
    if info.split_datasets:
        split = split or info.default_split
        _check_known_split(info, split, allow_ann=False)
        return get_dataset(info.split_datasets[split])
    return info


def stand_in(dataset: str, split: str | None) -> tuple[str, bool]:
    """(the dataset whose table cells a run of ``dataset``/``split`` fills, whether the run is on a
    stand-in for it: the shipped sample, not the benchmark split). A dataset no registry entry
    names fills its own cells."""
    if dataset not in DATASETS:
        return dataset, False
    info = get_dataset(dataset)
    if info.split_datasets:
        if split not in info.split_datasets:
            return split or "", True
        info = get_dataset(info.split_datasets[split])
    return (info.stands_in_for, True) if info.stands_in_for else (dataset, False)


def resolve_annotation_file(
    dataset: str, split: str | None = None, data_root: str | None = None, ann: str | None = None
) -> tuple[str, Path]:
    """The split's name and the annotation file it is read from (no file is opened)."""
    given = get_dataset(dataset)
    info = dataset_of_split(dataset, split if given.split_datasets else None)
    if info.files is not None:
        if ann is not None:
            takes_ann = [d.name for d in DATASETS.values() if d.annotation]
            raise SpbenchError(
                f"--ann cannot be used with the {dataset} dataset; use --dataset {' or '.join(takes_ann)} with --ann FILE"
            )
        split = split or info.default_split
        _check_known_split(given, split, allow_ann=False)
        return split, info.files[0]
    if ann is not None:
        return split or Path(ann).stem, Path(ann)
    split = split or info.default_split
    _check_known_split(info, split, allow_ann=True)
    if data_root is None:
        raise SpbenchError(
            f"dataset {dataset!r} needs its files: pass --data-root DIR ({info.data_root_hint}), "
            "or --ann FILE for one annotation file; or try --dataset sample"
        )
    return split, import_target(info.annotation)(data_root, split)


def load_split(
    dataset: str,
    split: str | None = None,
    data_root: str | None = None,
    ann: str | None = None,
    check_images: bool = True,
    schema: str | KeypointSchema | None = None,
) -> Split:
    """Read, check and clean one split; Split.stats carries the cleaning counts.

    With ``check_images`` a missing image file is an error; without, missing files are counted
    in ``stats["missing_images"]``. A dataset shipped in the package (the sample) ignores
    ``data_root``, so a configured root does not get in its way. ``schema`` (``dataset.schema``:
    a built-in name or a schema file) replaces the dataset's own keypoint schema.
    """
    split_name, ann_file = resolve_annotation_file(dataset, split, data_root, ann)
    info = dataset_of_split(dataset, split_name if get_dataset(dataset).split_datasets else None)
    if not ann_file.is_file():
        if ann is not None:
            fix = "check the --ann path"
        elif info.files is not None:
            fix = "the installed package is incomplete; reinstall spbench"
        else:
            fix = f"pass --data-root {info.data_root_hint}, or --ann FILE"
        raise SpbenchError(f"{ann_file}: annotation file not found; {fix}")

    reader = import_target(info.reader)
    chosen = resolve_schema(schema)
    extra = {} if chosen is None else {"schema": chosen}
    if info.files is not None:
        result = reader(ann_file, info.files[1], dataset=info.record_name or info.name, split=split_name, **extra)
    else:
        result = reader(ann_file, data_root, dataset=dataset, split=split_name, **extra)

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
    hint = did_you_mean(split, info.splits)
    other = "; or read any annotation file with --ann FILE" if allow_ann else ""
    raise SpbenchError(
        f"unknown split {split!r} of dataset {info.name!r}; {hint}known splits: {', '.join(info.splits)}{other}"
    )
