"""Keypoint schemas declared in a file, so datasets with other keypoint sets run without code.

``--set dataset.schema=FILE`` (YAML or JSON) reads a schema, checks it field by field (a broken
file stops the run at once with one line naming the file and the field) and registers it in
:mod:`spbench.schemas` under its name; everything downstream asks for it by that name, as for
the built-in ``ap10k`` and ``coco17``. The format (``tests/data/humanart21/humanart21.yaml`` is
a complete example)::

    name: humanart21                  # letters, digits, . _ - (not ap10k / coco17)
    keypoints: [nose, left_eye, ...]  # K names, in the order of the annotation's (x, y, v) triples
    skeleton: [[left_ankle, left_knee], ...]  # limbs: pairs of names or 0-based indices, drawing order
    sigmas: [0.026, 0.025, ...]       # K OKS sigmas (COCOeval's kpt_oks_sigmas), > 0
    flip_pairs: [[left_eye, right_eye], ...]  # keypoints a horizontal flip swaps (each in one pair at most)
    # optional:
    tokens: ["<nose>", ...]           # K keypoint tokens (default "<" + name with _ -> - + ">")
    descriptions: [nose, ...]         # K plain-words names, for CLIP-Score texts and text-initialised E0
                                      # (default: the name with _ -> space)
    init_words: [nose, ...]           # K words a token's embedding starts from (default: last word of the description)
    annotation_key: keypoints_21      # annotation field holding the K triples (default: keypoints)
    limb_colors: [[255, 0, 0], ...]   # OpenPose RGB per limb, drawn at 60 % as OpenPose's (default: its 18 colours, cycled)
    keypoint_colors: [[255, 0, 0], ...]  # OpenPose RGB per keypoint (default: the 18 colours, cycled)
    official_protocol: coco17         # `--protocol official`: crop, decoding and NMS of that built-in
                                      # schema's dataset, with this file's sigmas and flip pairs
    clip_group_by: scene              # what evaluation.clip_group_by=auto groups by (default: category)

The spatial-pose index map gives keypoint k the value ``k + 1`` and limb j
``limb_index_offset(K) + j`` (51 + j up to K = 50, as the official maps; ``K + 1 + j`` above),
so ``limb_index_offset(K) + len(skeleton) - 1`` must stay within 255. The SPR of SP-Ctrl embeds
every limb of a file's skeleton (the built-in schemas: the first 17, as the official SPR).

A run records the schema's name, file and the file's sha256 in its config (``dataset.schema``,
``dataset.schema_file``, ``dataset.schema_sha256``; the last is an image setting, so a run folder
is never resumed under another file), the whole definition in run.json / result.json
(``dataset.keypoint_schema``: name, file, sha256, definition; so ``spbench evaluate`` needs no file), and the sha256 is part of the split hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import NoReturn

import yaml

from spbench.errors import SpbenchError
from spbench.schemas import MAX_INDEX_VALUE, SCHEMAS, KeypointSchema, get_schema, limb_index_offset, register_schema

FILE_SUFFIXES = (".yaml", ".yml", ".json")
REQUIRED = ("name", "keypoints", "skeleton", "sigmas", "flip_pairs")
OPTIONAL = ("tokens", "descriptions", "init_words", "annotation_key", "limb_colors", "keypoint_colors",
            "official_protocol", "clip_group_by")
CLIP_GROUPS = ("category", "scene", "none")
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


# ---------------------------------------------------------------------------------------------
# Reading and checking a file


def load_schema_file(path: str | Path) -> KeypointSchema:
    """Read and check a schema file (not registered: see :func:`resolve_schema`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SpbenchError(f"{path}: keypoint schema file not found; fix --set dataset.schema=FILE "
                           f"(a YAML or JSON schema file, or one of {', '.join(SCHEMAS)})")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise SpbenchError(f"{path}: a keypoint schema file must end in .yaml, .yml or .json")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpbenchError(f"{path}: not a UTF-8 text file; expected a YAML or JSON keypoint schema") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise SpbenchError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except yaml.YAMLError as e:
        raise SpbenchError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return schema_from_definition(data, str(path.resolve()), hashlib.sha256(raw).hexdigest())


def schema_from_definition(data, source: str, sha256: str) -> KeypointSchema:
    """A checked :class:`KeypointSchema` from a file's content (``source``: the file, for errors)."""

    def fail(field: str, expected: str, got) -> NoReturn:
        shown = "nothing" if got is _MISSING else _short(got)
        raise SpbenchError(f"{source}: {field}: expected {expected}, got {shown}")

    if not isinstance(data, dict):
        fail("top level", "a mapping with " + ", ".join(REQUIRED), data)
    unknown = sorted(set(map(str, data)) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise SpbenchError(f"{source}: unknown field(s) {', '.join(unknown)}; allowed: "
                           f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}")
    for key in REQUIRED:
        if key not in data:
            fail(key, "this field (every schema file needs " + ", ".join(REQUIRED) + ")", _MISSING)

    name = data["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        fail("name", "a name of letters, digits, '.', '_' and '-' (e.g. humanart21)", name)
    if name in SCHEMAS:
        fail("name", f"a name other than the built-in schemas' ({', '.join(SCHEMAS)})", name)

    keypoints = data["keypoints"]
    if not isinstance(keypoints, list) or not keypoints:
        fail("keypoints", "a non-empty list of keypoint names", keypoints)
    for i, k in enumerate(keypoints):
        if not isinstance(k, str) or not k.strip() or k != k.strip():
            fail(f"keypoints[{i}]", "a non-empty name without leading or trailing spaces", k)
    _unique(keypoints, "keypoints", fail)
    n = len(keypoints)
    index = {k: i for i, k in enumerate(keypoints)}

    skeleton = _pairs(data["skeleton"], "skeleton", index, fail, "limbs")
    if not skeleton:
        fail("skeleton", "at least one limb (a pair of keypoint names or 0-based indices)", data["skeleton"])
    seen: dict[frozenset, int] = {}
    for j, pair in enumerate(skeleton):
        key = frozenset(pair)
        if key in seen:
            fail(f"skeleton[{j}]", f"each limb once (it repeats skeleton[{seen[key]}])", list(data["skeleton"][j]))
        seen[key] = j
    top = limb_index_offset(n) + len(skeleton) - 1
    if top > MAX_INDEX_VALUE:
        fail("skeleton", f"at most {MAX_INDEX_VALUE - limb_index_offset(n) + 1} limbs with {n} keypoints "
             f"(the spatial-pose index map is uint8: limb values {limb_index_offset(n)}..{MAX_INDEX_VALUE})",
             f"{len(skeleton)} limbs")
    if n > MAX_INDEX_VALUE:
        fail("keypoints", f"at most {MAX_INDEX_VALUE} keypoints (the spatial-pose index map is uint8)", f"{n} names")

    sigmas = data["sigmas"]
    if not isinstance(sigmas, list) or len(sigmas) != n:
        fail("sigmas", f"a list of {n} OKS sigmas (one per keypoint)",
             f"{len(sigmas)} values" if isinstance(sigmas, list) else sigmas)
    for i, v in enumerate(sigmas):
        if not _is_number(v) or not math.isfinite(v) or v <= 0:
            fail(f"sigmas[{i}]", "a positive finite number (COCO uses 0.025..0.107)", v)

    flip_pairs = _pairs(data["flip_pairs"], "flip_pairs", index, fail, "pairs")
    used: dict[int, int] = {}
    for j, (a, b) in enumerate(flip_pairs):
        for k in (a, b):
            if k in used:
                fail(f"flip_pairs[{j}]", f"each keypoint in one flip pair at most ({keypoints[k]} is in "
                     f"flip_pairs[{used[k]}] too)", list(data["flip_pairs"][j]))
            used[k] = j

    tokens = _strings(data.get("tokens"), "tokens", n, fail, single_word=True)
    if tokens is not None:
        _unique(tokens, "tokens", fail)
    descriptions = _strings(data.get("descriptions"), "descriptions", n, fail, single_word=False)
    init_words = _strings(data.get("init_words"), "init_words", n, fail, single_word=True)

    annotation_key = data.get("annotation_key", "keypoints")
    if not isinstance(annotation_key, str) or not annotation_key:
        fail("annotation_key", "the annotation field holding the keypoints (e.g. keypoints_21)", annotation_key)
    limb_colors = _colors(data.get("limb_colors"), "limb_colors", len(skeleton), fail)
    keypoint_colors = _colors(data.get("keypoint_colors"), "keypoint_colors", n, fail)
    official = data.get("official_protocol")
    if official is not None and official not in SCHEMAS:
        fail("official_protocol", f"one of {', '.join(SCHEMAS)} (whose official pose protocol settings apply)", official)
    group = data.get("clip_group_by")
    if group is not None and group not in CLIP_GROUPS:
        fail("clip_group_by", " or ".join(CLIP_GROUPS), group)

    schema = KeypointSchema(
        name=name, keypoints=tuple(keypoints), skeleton=skeleton, sigmas=tuple(float(v) for v in sigmas),
        flip_pairs=flip_pairs, custom_tokens=tokens, custom_descriptions=descriptions, custom_init_words=init_words,
        annotation_key=annotation_key, limb_colors=limb_colors, keypoint_colors=keypoint_colors,
        official_protocol=official, clip_group_by=group, source=source, sha256=sha256,
    )
    return schema


_MISSING = object()


def _short(v, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _unique(items: list, field: str, fail) -> None:
    first: dict = {}
    for i, item in enumerate(items):
        if item in first:
            fail(f"{field}[{i}]", f"unique values ({item!r} is {field}[{first[item]}] too)", item)
        first[item] = i


def _pairs(value, field: str, index: dict[str, int], fail, what: str) -> tuple[tuple[int, int], ...]:
    """Pairs of keypoint names or 0-based indices -> index pairs, each checked."""
    if not isinstance(value, list):
        fail(field, f"a list of {what}, each a pair of keypoint names or 0-based indices", value)
    n = len(index)
    out = []
    for j, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            fail(f"{field}[{j}]", "a pair [a, b] of keypoint names or 0-based indices", pair)
        ends = []
        for end in pair:
            if isinstance(end, str):
                if end not in index:
                    fail(f"{field}[{j}]", "names listed under keypoints", end)
                ends.append(index[end])
            elif isinstance(end, int) and not isinstance(end, bool):
                if not 0 <= end < n:
                    fail(f"{field}[{j}]", f"0-based keypoint indices 0..{n - 1}", end)
                ends.append(end)
            else:
                fail(f"{field}[{j}]", "keypoint names or 0-based indices", end)
        if ends[0] == ends[1]:
            fail(f"{field}[{j}]", "two different keypoints", list(pair))
        out.append((ends[0], ends[1]))
    return tuple(out)


def _strings(value, field: str, n: int, fail, single_word: bool) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != n:
        fail(field, f"a list of {n} strings (one per keypoint)", f"{len(value)} values" if isinstance(value, list) else value)
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip() or v != v.strip():
            fail(f"{field}[{i}]", "a non-empty string without leading or trailing spaces", v)
        if single_word and any(c.isspace() for c in v):
            fail(f"{field}[{i}]", "one word (no spaces)", v)
    return tuple(value)


def _colors(value, field: str, n: int, fail) -> tuple[tuple[int, int, int], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != n:
        fail(field, f"a list of {n} [r, g, b] colours", f"{len(value)} values" if isinstance(value, list) else value)
    out = []
    for i, c in enumerate(value):
        if not (isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             and 0 <= v <= 255 for v in c)):
            fail(f"{field}[{i}]", "[r, g, b] with integers 0..255", c)
        out.append(tuple(c))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Resolving dataset.schema, recording it, reading it back


def looks_like_file(value: str) -> bool:
    return value.lower().endswith(FILE_SUFFIXES) or "/" in value or "\\" in value or Path(value).expanduser().is_file()


def resolve_schema(value: str | KeypointSchema | None) -> KeypointSchema | None:
    """``dataset.schema`` as given -> the schema: a built-in name, a schema file (read, checked
    and registered) or the name of one registered in this process; None stays None."""
    if value is None or isinstance(value, KeypointSchema):
        return value
    if not isinstance(value, str) or not value:
        raise SpbenchError(f"dataset.schema={value!r}: use {' or '.join(SCHEMAS)}, or the path of a schema file")
    if value in SCHEMAS:
        return SCHEMAS[value]
    if looks_like_file(value):
        return register_schema(load_schema_file(value))
    try:
        return get_schema(value)
    except SpbenchError:
        raise SpbenchError(f"dataset.schema={value!r} is neither a built-in keypoint schema ({', '.join(SCHEMAS)}) "
                           "nor a schema file (.yaml, .yml or .json) that exists; fix the path") from None


def requested_schema(flags: dict, sets: list[str]) -> str | None:
    """The ``dataset.schema`` a command asks for: its flag, overridden by ``--set dataset.schema=``
    (the last one), before the profile is merged (which never sets it)."""
    from spbench.config import apply_set

    scratch = {"dataset": {"schema": flags.get("dataset.schema")}}
    for item in sets:
        if item.partition("=")[0].strip() == "dataset.schema":
            apply_set(scratch, item)
    return scratch["dataset"]["schema"]


def config_entries(schema: KeypointSchema) -> dict:
    """What the run config's ``dataset`` section records of a schema: its name, and for a schema
    file its path and the file's sha256."""
    if not schema.from_file:
        return {"schema": schema.name}
    return {"schema": schema.name, "schema_file": schema.source, "schema_sha256": schema.sha256}


def definition(schema: KeypointSchema) -> dict:
    """A schema file's content, normalised (limbs and pairs as indices): reads back to the same schema."""
    out = {"name": schema.name, "keypoints": list(schema.keypoints), "skeleton": [list(p) for p in schema.skeleton],
           "sigmas": list(schema.sigmas), "flip_pairs": [list(p) for p in schema.flip_pairs]}
    optional = {"tokens": schema.custom_tokens, "descriptions": schema.custom_descriptions,
                "init_words": schema.custom_init_words,
                "annotation_key": None if schema.annotation_key == "keypoints" else schema.annotation_key,
                "limb_colors": schema.limb_colors, "keypoint_colors": schema.keypoint_colors,
                "official_protocol": schema.official_protocol, "clip_group_by": schema.clip_group_by}
    for key, value in optional.items():
        if value is not None:
            out[key] = [list(v) for v in value] if key.endswith("colors") else (list(value) if isinstance(value, tuple) else value)
    return out


def schema_record(schema_name: str | None) -> dict:
    """run.json's ``dataset`` entries for a schema file (empty for a built-in schema): the file,
    its sha256 and the whole definition, so the run can be scored without the file."""
    if not schema_name or schema_name in SCHEMAS:
        return {}
    schema = get_schema(schema_name)
    return {"keypoint_schema": {"name": schema.name, "file": schema.source, "sha256": schema.sha256,
                                "definition": definition(schema)}}


def register_recorded(dataset_info: dict | None) -> None:
    """Register the schema file a run.json (its ``dataset`` section) recorded, if any."""
    record = (dataset_info or {}).get("keypoint_schema")
    if not isinstance(record, dict):
        return
    source = record.get("file") or "run.json keypoint_schema"
    register_schema(schema_from_definition(record.get("definition"), str(source), str(record.get("sha256"))))
