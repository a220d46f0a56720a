"""Immutable sample records: what every stage after the readers works from.

A sample is one image of a dataset with its pose instances (original-image coordinates), its
scene, and its fixed evaluation prompt. A split is an ordered tuple of samples; its content hash
identifies it in run folders and result records.
"""

from __future__ import annotations

import hashlib
import os
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from spbench.schemas import SCHEMAS, get_schema

# The placeholder that keypoint-token methods replace with " <tok, tok, ...>" (official format).
KPT_PLACEHOLDER = "<KPT>"


@dataclass(frozen=True)
class Instance:
    """One annotated animal or person, in original-image pixel coordinates."""

    category: str
    bbox: tuple[float, float, float, float]  # x, y, w, h
    area: float
    # One (x, y, v) per schema keypoint; v = 0 not labelled / not usable, 1 occluded, 2 visible.
    keypoints: tuple[tuple[float, float, int], ...]
    annotation_id: int = -1

    @property
    def xy(self) -> np.ndarray:
        return np.array([[x, y] for x, y, _ in self.keypoints], dtype=np.float64).reshape(-1, 2)

    @property
    def visibility(self) -> np.ndarray:
        return np.array([v for _, _, v in self.keypoints], dtype=np.int64)

    @property
    def num_visible(self) -> int:
        return int((self.visibility > 0).sum())

    @property
    def labelled(self) -> bool:
        """Whether any keypoint is labelled (v > 0). An instance without one is kept as ignored
        ground truth (spbench.data.cleaning): nothing is drawn or predicted for it."""
        return bool(any(v > 0 for _, _, v in self.keypoints))


@dataclass(frozen=True)
class Sample:
    """One benchmark image: pose instances plus the prompt it is generated from."""

    sample_id: str  # stable, file-name safe ("ap10k-000000000004")
    image_id: int
    file: str  # image path relative to the dataset root
    width: int
    height: int
    schema: str  # keypoint schema name (spbench.schemas)
    instances: tuple[Instance, ...]
    # The evaluation prompt with the keypoint-token placeholder; `prompt` drops the placeholder.
    prompt_template: str
    scene: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt(self) -> str:
        return self.prompt_template.replace(KPT_PLACEHOLDER, "").strip()

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories of every annotation, in order (the official prompt names them all)."""
        return tuple(dict.fromkeys(i.category for i in self.instances))

    @property
    def labelled_instances(self) -> tuple[Instance, ...]:
        """The instances with a labelled keypoint: the ones a condition shows."""
        return tuple(i for i in self.instances if i.labelled)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        d = dict(d)
        d["instances"] = tuple(
            Instance(
                category=i["category"],
                bbox=tuple(i["bbox"]),
                area=i["area"],
                keypoints=tuple(tuple(k) for k in i["keypoints"]),
                annotation_id=i.get("annotation_id", -1),
            )
            for i in d["instances"]
        )
        return cls(**d)


@dataclass(frozen=True)
class Split:
    """An ordered list of samples from one dataset, identified by its content hash."""

    dataset: str
    name: str
    samples: tuple[Sample, ...]
    # Folder that Sample.file is relative to.
    root: str = field(default="", compare=False)
    # What the reader left out or changed, by reason (see spbench.data.cleaning).
    stats: dict = field(default_factory=dict, compare=False, hash=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def content_hash(self) -> str:
        return split_hash(self.samples)

    def limit(self, n: int | None) -> "Split":
        if n is None or n >= len(self.samples):
            return self
        return Split(self.dataset, self.name, self.samples[:n], self.root, self.stats)

    def image_path(self, sample: Sample) -> str:
        return os.path.join(self.root, sample.file)


def split_hash(samples) -> str:
    """sha256 over the canonical JSON of the samples (order matters), first 16 hex digits; for
    samples of a schema file, the file's sha256 too (built-in schemas add nothing)."""
    h = hashlib.sha256()
    file_schemas = set()
    for s in samples:
        d = s.to_dict()
        d.pop("extra", None)
        h.update(json.dumps(d, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
        if s.schema not in SCHEMAS:
            file_schemas.add(s.schema)
    for name in sorted(file_schemas):
        h.update(f"schema {name} sha256 {get_schema(name).sha256}\n".encode())
    return h.hexdigest()[:16]
