"""Keypoint schemas: the one place that knows names, skeletons, OKS sigmas and keypoint tokens.

Two schemas are built in: AP-10K's 17 animal keypoints and COCO's 17 human keypoints (used by
Human-Art). Any other keypoint set is declared in a schema file (:mod:`spbench.schema_files`,
``--set dataset.schema=FILE``), which registers it here under its name. Everything else (readers,
renderers, metrics, keypoint tokens) reads schemas from here, by name (:func:`get_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from spbench.errors import SpbenchError

# Index-map values of the official SP-Ctrl rendering: keypoint k -> k + 1, limb j -> 51 + j.
KEYPOINT_INDEX_OFFSET = 1
LIMB_INDEX_OFFSET = 51
# Index maps are uint8 images: the largest value a keypoint or limb can take.
MAX_INDEX_VALUE = 255
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
    # What a schema file declares beyond the above (the built-in schemas leave them unset; see
    # spbench.schema_files): token spellings, descriptions and init words (None: derived from
    # the names), the annotation field holding the keypoints, OpenPose colours (None: the
    # palette, cycled), the built-in schema whose official pose protocol settings apply, the
    # CLIP-Score grouping that evaluation.clip_group_by=auto means, and the file itself.
    custom_tokens: tuple[str, ...] | None = None
    custom_descriptions: tuple[str, ...] | None = None
    custom_init_words: tuple[str, ...] | None = None
    annotation_key: str = "keypoints"
    limb_colors: tuple[tuple[int, int, int], ...] | None = None
    keypoint_colors: tuple[tuple[int, int, int], ...] | None = None
    official_protocol: str | None = None
    clip_group_by: str | None = None
    source: str | None = None   # the schema file (absolute path); None: built in
    sha256: str | None = None   # sha256 of the schema file's bytes

    def __post_init__(self):
        n = len(self.keypoints)
        assert len(self.sigmas) == n, self.name
        assert all(0 <= a < n and 0 <= b < n for a, b in self.skeleton), self.name

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def from_file(self) -> bool:
        """Declared in a schema file (not one of the built-in schemas)."""
        return self.source is not None

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Keypoint-concept tokens, as the official code spells them: ``<left-front-paw>``."""
        if self.custom_tokens is not None:
            return self.custom_tokens
        return tuple("<" + k.replace("_", "-") + ">" for k in self.keypoints)

    @cached_property
    def descriptions(self) -> tuple[str, ...]:
        """Plain-words description of each keypoint ("left front paw"), e.g. for CLIP-Score."""
        if self.custom_descriptions is not None:
            return self.custom_descriptions
        return tuple(k.replace("_", " ") for k in self.keypoints)

    @cached_property
    def init_words(self) -> tuple[str, ...]:
        """Word a keypoint token's embedding is initialised from: the last word of its name,
        as in the official code ("left front paw" -> "paw", "root of tail" -> "tail")."""
        if self.custom_init_words is not None:
            return self.custom_init_words
        return tuple(d.split(" ")[-1] for d in self.descriptions)

    @property
    def limb_index_offset(self) -> int:
        """Index-map value of limb 0: see :func:`limb_index_offset`."""
        return limb_index_offset(self.num_keypoints)

    @property
    def index_map_limbs(self) -> tuple[tuple[int, int], ...]:
        """Limbs drawn into the spatial-pose index map, limb j as value ``limb_index_offset + j``:
        the whole skeleton (AP-10K 17 -> 51..67; COCO-17 19 -> 51..69, as in the official
        Human-Art maps)."""
        return self.skeleton

    @property
    def indexed_limbs(self) -> tuple[tuple[int, int], ...]:
        """Limbs the SPR embeds: for the built-in schemas the first 17 (values 51..67), as the
        official SPR; for a schema file every limb of its skeleton."""
        return self.skeleton if self.from_file else self.skeleton[:EMBEDDED_LIMBS]


def limb_index_offset(num_keypoints: int) -> int:
    """Index-map value of limb 0 for ``num_keypoints`` keypoints (keypoint k is ``1 + k``).

    Up to 50 keypoints the official layout: limbs from 51 (keypoints 1..K, a gap, limbs 51..).
    Above 50 keypoints 51 would collide with keypoint 51, so limbs follow the keypoints directly:
    limb j is ``K + 1 + j``. Either way every value is at most :data:`MAX_INDEX_VALUE` (the map
    is uint8), which a schema file's keypoint and limb counts are checked against."""
    return max(LIMB_INDEX_OFFSET, KEYPOINT_INDEX_OFFSET + num_keypoints)


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
# Schemas read from schema files in this process, by name (spbench.schema_files registers them).
_FILE_SCHEMAS: dict[str, KeypointSchema] = {}


def register_schema(schema: KeypointSchema) -> KeypointSchema:
    """Make a schema read from a file known by its name (once per process; the same definition
    may be registered again). A built-in name, or another definition under a name already
    registered, is an error, so two schemas never pass for one."""
    if schema.name in SCHEMAS:
        raise SpbenchError(f"{schema.source}: name: {schema.name!r} is a built-in keypoint schema; "
                           "give the file's schema another name")
    known = _FILE_SCHEMAS.get(schema.name)
    if known is not None and known.sha256 != schema.sha256:
        raise SpbenchError(f"{schema.source}: name: keypoint schema {schema.name!r} is already defined by "
                           f"{known.source} (other content); give one of them another name")
    _FILE_SCHEMAS.setdefault(schema.name, schema)
    return _FILE_SCHEMAS[schema.name]


def get_schema(name: str) -> KeypointSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        pass
    try:
        return _FILE_SCHEMAS[name]
    except KeyError:
        known = ", ".join([*SCHEMAS, *_FILE_SCHEMAS])
        raise SpbenchError(f"unknown keypoint schema {name!r}; known: {known} — a schema file defines "
                           "others: pass --set dataset.schema=FILE (YAML or JSON)") from None
