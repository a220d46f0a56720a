"""Keypoint schemas: the one place that knows names, skeletons, OKS sigmas and keypoint tokens.

Two schemas exist: AP-10K's 17 animal keypoints and COCO's 17 human keypoints (used by
Human-Art). Everything else (readers, renderers, metrics, keypoint tokens) reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from spbench.errors import SpbenchError

# Index-map values of the official SP-Ctrl rendering: keypoint k -> k + 1, limb j -> 51 + j.
KEYPOINT_INDEX_OFFSET = 1
LIMB_INDEX_OFFSET = 51
# Limbs with an SPR embedding: the official SPR loops over values 51..67 only, so a value above
# 67 (COCO's limbs 18 and 19 in the Human-Art maps: 68, 69) looks nothing up and stays zero.
EMBEDDED_LIMBS = 17


@dataclass(frozen=True)
class KeypointSchema:
    name: str
    keypoints: tuple[str, ...]
    # Limbs as 0-based keypoint index pairs, in drawing order.
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    # Pairs of keypoints swapped by a horizontal flip.
    flip_pairs: tuple[tuple[int, int], ...]

    def __post_init__(self):
        n = len(self.keypoints)
        assert len(self.sigmas) == n, self.name
        assert all(0 <= a < n and 0 <= b < n for a, b in self.skeleton), self.name

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Keypoint-concept tokens, as the official code spells them: ``<left-front-paw>``."""
        return tuple("<" + k.replace("_", "-") + ">" for k in self.keypoints)

    @cached_property
    def descriptions(self) -> tuple[str, ...]:
        """Plain-words description of each keypoint ("left front paw"), e.g. for CLIP-Score."""
        return tuple(k.replace("_", " ") for k in self.keypoints)

    @cached_property
    def init_words(self) -> tuple[str, ...]:
        """Word a keypoint token's embedding is initialised from: the last word of its name,
        as in the official code ("left front paw" -> "paw", "root of tail" -> "tail")."""
        return tuple(d.split(" ")[-1] for d in self.descriptions)

    @property
    def index_map_limbs(self) -> tuple[tuple[int, int], ...]:
        """Limbs drawn into the spatial-pose index map, limb j as value 51 + j: the whole skeleton
        (AP-10K 17 -> 51..67; COCO-17 19 -> 51..69, as in the official Human-Art maps)."""
        return self.skeleton

    @property
    def indexed_limbs(self) -> tuple[tuple[int, int], ...]:
        """Limbs the SPR embeds (values 51..67): the first 17, as the official SPR."""
        return self.skeleton[:EMBEDDED_LIMBS]


def _pairs_1based(text: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(a) - 1, int(b) - 1) for a, b in (p.split("-") for p in text.split()))


AP10K = KeypointSchema(
    name="ap10k",
    keypoints=(
        "left_eye", "right_eye", "nose", "neck", "root_of_tail",
        "left_shoulder", "left_elbow", "left_front_paw",
        "right_shoulder", "right_elbow", "right_front_paw",
        "left_hip", "left_knee", "left_back_paw",
        "right_hip", "right_knee", "right_back_paw",
    ),
    skeleton=_pairs_1based("1-2 1-3 2-3 3-4 4-5 4-6 6-7 7-8 4-9 9-10 10-11 5-12 12-13 13-14 5-15 15-16 16-17"),
    # mmpose >= v0.21 ("Fix AP-10K dataset sigmas"), as ViTPose and AP-10K's own repository use:
    # per limb in keypoint order (shoulder, elbow, front paw; ... hip, knee, back paw). The
    # pre-fix list paired them in COCO's left/right order, which is wrong for AP-10K's order.
    sigmas=(0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079,
            0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089),
    flip_pairs=((0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)),
)

COCO17 = KeypointSchema(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # COCO's own skeleton order; its last two limbs (ear-shoulder) are index values 68 and 69.
    skeleton=_pairs_1based(
        "16-14 14-12 17-15 15-13 12-13 6-12 7-13 6-7 6-8 7-9 8-10 9-11 2-3 1-2 1-3 2-4 3-5 4-6 5-7"
    ),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
            0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

SCHEMAS = {s.name: s for s in (AP10K, COCO17)}


def get_schema(name: str) -> KeypointSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise SpbenchError(f"unknown keypoint schema {name!r}; known: {', '.join(SCHEMAS)}") from None
