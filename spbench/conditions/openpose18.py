"""The OpenPose-18 body image the public SD1.5 OpenPose checkpoints were trained on.

spbench's ``openpose`` kind draws the SP-Ctrl paper's rendering: COCO-17's own skeleton in
OpenPose colours. The public checkpoints were trained on something else: the body format of
CMU OpenPose (18 keypoints, with a neck) drawn by their authors' annotators. Two drawings exist:

- ``openpose18``: the ControlNet 1.1 annotator (lllyasviel/ControlNet-v1-1-nightly,
  ``annotator/openpose/util.py`` ``draw_bodypose``; its README: "the improvement of [the]
  processor leads to the improvement of Openpose 1.1"), which ``control_v11p_sd15_openpose`` was
  trained with. All limbs of all people are filled in full colour (later limbs over earlier ones),
  the whole canvas is multiplied by 0.6 and truncated, then every keypoint circle is drawn on top
  in full colour. huggingface/controlnet_aux's ``OpenposeDetector`` draws the same pixels for one
  person (it colours limbs ``int(c * 0.6)`` directly and draws person by person, so only where two
  people overlap can it differ).
- ``openpose18-blend``: the ControlNet 1.0 annotator (lllyasviel/ControlNet,
  ``annotator/openpose/util.py``), which ``control_sd15_openpose`` (diffusers:
  ``lllyasviel/sd-controlnet-openpose``) was trained with, and which TencentARC's T2I-Adapter SD
  code ships for its openpose adapter (``ldm/modules/extra_condition/openpose/util.py``, branch
  SD). Keypoint circles are drawn first in full colour; then each limb is filled on a copy of the
  canvas and blended back, ``canvas = addWeighted(canvas, 0.4, copy, 0.6, 0)``, so a limb is 0.6
  of its colour over black and mixes with whatever it covers (circles, earlier limbs).

Shared rules (all three annotators):

- keypoints (OpenPose order): nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist,
  right hip/knee/ankle, left hip/knee/ankle, right eye, left eye, right ear, left ear. COCO-17
  maps by name; the neck is the midpoint of the two shoulders and exists only when both do
  (controlnet_aux ``dwpose/wholebody.py``: mean of COCO 5 and 6, shown when both are confident).
- 17 limbs (1-based ``limbSeq``: 2-3 2-6 3-4 4-5 6-7 7-8 2-9 9-10 10-11 2-12 12-13 13-14 2-1 1-15
  15-17 1-16 16-18; the two ear-shoulder pairs of the list are never drawn), limb i and keypoint i
  in the i-th of 18 colours; a limb only when both its keypoints exist.
- a limb is ``cv2.fillConvexPoly`` of ``cv2.ellipse2Poly`` centred at ``(int(mean x), int(mean
  y))``, half-axes ``(int(length / 2), 4)``, angle ``int(degrees(atan2(dy, dx)))``, 1-degree steps;
  a keypoint a filled ``cv2.circle`` of radius 4 at ``(int(x), int(y))``; black background.
- the annotator draws on the input image resized so its shorter side is 512 and each side is
  ``round(side * k / 64) * 64`` (``annotator.util.resize_image``; T2I-Adapter's
  ``resize_numpy_image`` with ``--resize_short_edge 512``: the same sizes), with
  ``detect_resolution == image_resolution == 512``, so the drawn map is not resized again there.

Under ``generation.condition_render: official`` the map is drawn at that annotator size (the
original keypoints scaled to it) and then resized onto the canvas as diffusers resizes a PIL
control image (ControlNet ``VaeImageProcessor`` and T2I-Adapter ``_preprocess_adapter_image``:
``PIL.Image.resize(..., LANCZOS)``); ``native`` draws on the canvas directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from PIL import Image

from spbench.canvas import CanvasTransform, round_half_up
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.schemas import get_schema

KIND = "openpose18"
BLEND_KIND = "openpose18-blend"
# drawing style of each kind: "v11" (ControlNet 1.1 / controlnet_aux), "v10" (ControlNet 1.0 / T2I-Adapter)
STYLES = {KIND: "v11", BLEND_KIND: "v10"}

# OpenPose-18 keypoints, in OpenPose's order; "neck" is not a COCO keypoint (made from the shoulders).
OPENPOSE18_KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NECK = OPENPOSE18_KEYPOINTS.index("neck")
NECK_FROM = ("left_shoulder", "right_shoulder")

# The 17 drawn limbs (0-based pairs of OpenPose-18 indices), in drawing order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# The 18 OpenPose colours (RGB), limb i and keypoint i use entry i.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
STICK_WIDTH = 4
RADIUS = 4
LIMB_ALPHA = 0.6
# The annotator's detect_resolution / image_resolution (both 512 in the official demos and
# controlnet_aux's defaults; T2I-Adapter's README: --resize_short_edge 512).
ANNOTATOR_RESOLUTION = 512


def annotator_size(width: int, height: int, resolution: int = ANNOTATOR_RESOLUTION) -> tuple[int, int]:
    """(w, h) of the image the annotators draw on: ``resize_image(image, resolution)``. The
    shorter side is scaled to ``resolution``, then each side rounded to a multiple of 64
    (``np.round``: halves to even), with the official float steps."""
    h, w = float(height), float(width)
    k = float(resolution) / min(h, w)
    h *= k
    w *= k
    return int(np.round(w / 64.0)) * 64, int(np.round(h / 64.0)) * 64


def annotator_frame(sample: Sample, resolution: int = ANNOTATOR_RESOLUTION) -> CanvasTransform:
    """Original -> annotator-image transform (each axis scaled on its own, no offset)."""
    return CanvasTransform.fit(sample.width, sample.height, annotator_size(sample.width, sample.height, resolution))


def coco_to_openpose18(schema_name: str) -> tuple[int | None, ...]:
    """For each OpenPose-18 keypoint, the index of the schema keypoint of that name (None for the
    neck). Needs every OpenPose name but the neck in the schema (COCO-17 and supersets)."""
    schema = get_schema(schema_name)
    names = list(schema.keypoints)
    needed = [n for n in OPENPOSE18_KEYPOINTS if n != "neck"] + list(NECK_FROM)
    missing = [n for n in dict.fromkeys(needed) if n not in names]
    if missing:
        raise SpbenchError(
            f"condition kind {KIND!r} needs a human body schema with COCO keypoint names; schema "
            f"{schema.name!r} lacks {', '.join(missing)}: use condition kind 'openpose' for it"
        )
    return tuple(None if n == "neck" else names.index(n) for n in OPENPOSE18_KEYPOINTS)


def supports_schema(schema_name: str) -> bool:
    """Whether the OpenPose-18 kinds can draw samples of this schema (COCO-17 names: yes; AP-10K: no)."""
    try:
        coco_to_openpose18(schema_name)
    except SpbenchError:
        return False
    return True


def openpose18_people(sample: Sample, transform: CanvasTransform) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per instance with a labelled keypoint, in order: OpenPose-18 (x, y) [18, 2] in the frame of
    ``transform`` and whether each exists [18] (v > 0 and finite; the neck: both shoulders)."""
    mapping = coco_to_openpose18(sample.schema)
    schema = get_schema(sample.schema)
    left, right = (schema.keypoints.index(n) for n in NECK_FROM)
    people = []
    for n, inst in enumerate(sample.instances):
        if len(inst.keypoints) != schema.num_keypoints:
            raise SpbenchError(
                f"sample {sample.sample_id}: instance {n} has {len(inst.keypoints)} keypoints but "
                f"schema {schema.name!r} has {schema.num_keypoints}; fix the annotation reader"
            )
        if not inst.labelled:
            continue
        src = transform.points(inst.xy)
        ok = (inst.visibility > 0) & np.isfinite(src).all(axis=1)
        xy = np.zeros((len(OPENPOSE18_KEYPOINTS), 2))
        present = np.zeros(len(OPENPOSE18_KEYPOINTS), dtype=bool)
        for k, j in enumerate(mapping):
            if j is None:  # the neck: mean of the shoulders (as np.mean), only when both exist
                if ok[left] and ok[right]:
                    xy[k] = (src[left] + src[right]) / 2.0
                    present[k] = True
            elif ok[j]:
                xy[k] = src[j]
                present[k] = True
        people.append((xy, present))
    return people


def limb_polygon(p: Sequence[float], q: Sequence[float], stick_width: int = STICK_WIDTH) -> np.ndarray:
    """The ``cv2.ellipse2Poly`` vertices of the limb between (x, y) points p and q, computed with
    the official float steps (``**0.5`` for the length, truncation with ``int``)."""
    (x1, y1), (x2, y2) = p, q
    mean_x, mean_y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    length = ((y1 - y2) ** 2 + (x1 - x2) ** 2) ** 0.5
    angle = math.degrees(math.atan2(y1 - y2, x1 - x2))
    return cv2.ellipse2Poly((int(mean_x), int(mean_y)), (int(length / 2), stick_width), int(angle), 0, 360, 1)


def _normalised(people: Iterable[tuple[np.ndarray, np.ndarray]], width: int, height: int):
    """ControlNet 1.1 and controlnet_aux keep keypoints as fractions of the image and multiply them
    back by the canvas size when drawing; the round trip is kept so ``int()`` sees the same float."""
    size = np.array([float(width), float(height)])
    return [((xy / size) * size, present) for xy, present in people]


def draw_openpose18(
    canvas: np.ndarray, people: Sequence[tuple[np.ndarray, np.ndarray]], style: str = "v11"
) -> np.ndarray:
    """Draw OpenPose-18 people ((x, y) [18, 2] in canvas pixels, present [18]) on an RGB uint8
    canvas and return it (``style`` "v11": ControlNet 1.1; "v10": ControlNet 1.0 blending)."""
    if style == "v11":
        people = _normalised(people, canvas.shape[1], canvas.shape[0])
        for i, (a, b) in enumerate(LIMBS):  # limb-major, then person, as the official loops
            for xy, present in people:
                if present[a] and present[b]:
                    cv2.fillConvexPoly(canvas, limb_polygon(xy[a], xy[b]), COLORS[i])
        canvas = (canvas * LIMB_ALPHA).astype(np.uint8)
        for k in range(len(OPENPOSE18_KEYPOINTS)):
            for xy, present in people:
                if present[k]:
                    cv2.circle(canvas, (int(xy[k, 0]), int(xy[k, 1])), RADIUS, COLORS[k], thickness=-1)
        return canvas
    if style == "v10":
        for k in range(len(OPENPOSE18_KEYPOINTS)):
            for xy, present in people:
                if present[k]:
                    cv2.circle(canvas, (int(xy[k, 0]), int(xy[k, 1])), RADIUS, COLORS[k], thickness=-1)
        for i, (a, b) in enumerate(LIMBS):
            for xy, present in people:
                if present[a] and present[b]:
                    limb = canvas.copy()
                    cv2.fillConvexPoly(limb, limb_polygon(xy[a], xy[b]), COLORS[i])
                    canvas = cv2.addWeighted(canvas, 1.0 - LIMB_ALPHA, limb, LIMB_ALPHA, 0)
        return canvas
    raise SpbenchError(f"unknown OpenPose-18 drawing style {style!r}: use 'v11' or 'v10'")


def render_openpose18(sample: Sample, transform: CanvasTransform, style: str = "v11") -> np.ndarray:
    """The sample's people as an OpenPose-18 image in the frame of ``transform``: uint8 [H, W, 3]."""
    canvas = np.zeros((transform.height, transform.width, 3), dtype=np.uint8)
    return draw_openpose18(canvas, openpose18_people(sample, transform), style)


def render_annotator_sized(sample: Sample, kind: str = KIND, resolution: int = ANNOTATOR_RESOLUTION) -> Image.Image:
    """What the official annotator gives for the sample's image: drawn at :func:`annotator_size`."""
    return Image.fromarray(render_openpose18(sample, annotator_frame(sample, resolution), STYLES[kind]))


def resize_as_pipeline(image: Image.Image, width: int, height: int) -> Image.Image:
    """diffusers' resize of a PIL control image: ``image.resize((w, h), LANCZOS)`` (identity at the
    same size)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def render_openpose18_official(sample: Sample, transform: CanvasTransform, kind: str = KIND) -> Image.Image:
    """Drawn at the annotator's size, then brought onto the canvas: ``stretch`` resizes it to the
    canvas as the pipeline does; ``letterbox`` resizes it to the letterboxed image's size and pastes
    it where :func:`spbench.canvas.image_to_canvas` puts the image (bands black)."""
    full = render_annotator_sized(sample, kind)
    size = (transform.width, transform.height)
    if transform.mode == "stretch":
        return resize_as_pipeline(full, *size)
    if transform.mode == "letterbox":
        w = max(1, round(sample.width * transform.scale_x))
        h = max(1, round(sample.height * transform.scale_y))
        out = Image.new("RGB", size)
        out.paste(resize_as_pipeline(full, w, h), (round_half_up(transform.offset_x), round_half_up(transform.offset_y)))
        return out
    raise SpbenchError(
        f"canvas mode {transform.mode!r} has no official {kind} rendering: use stretch or letterbox, "
        "or generation.condition_render=native"
    )


def openpose18_image(sample: Sample, transform: CanvasTransform) -> Image.Image:
    """Condition kind ``openpose18`` drawn on the canvas (ControlNet 1.1 drawing)."""
    return Image.fromarray(render_openpose18(sample, transform, STYLES[KIND]))


def openpose18_blend_image(sample: Sample, transform: CanvasTransform) -> Image.Image:
    """Condition kind ``openpose18-blend`` drawn on the canvas (ControlNet 1.0 / T2I-Adapter drawing)."""
    return Image.fromarray(render_openpose18(sample, transform, STYLES[BLEND_KIND]))


# kind -> renderer used under generation.condition_render=official (annotator size, then LANCZOS)
OFFICIAL_RENDERERS = {
    KIND: lambda sample, transform: render_openpose18_official(sample, transform, KIND),
    BLEND_KIND: lambda sample, transform: render_openpose18_official(sample, transform, BLEND_KIND),
}


# ---- which format a checkpoint was trained on ---------------------------------------------------

# The pose condition kinds a pose ControlNet / T2I-Adapter baseline can be fed (method.options.condition).
POSE_CONDITIONS = ("openpose", KIND, BLEND_KIND)
# Public checkpoints (hub ids; matched without regard to case, as the hub resolves them) -> the kind
# drawn as their training conditions were, and where that is read from.
TRAINED_ON: dict[str, tuple[str, str]] = {
    "lllyasviel/control_v11p_sd15_openpose": (
        KIND, "ControlNet 1.1 OpenPose; annotator of lllyasviel/ControlNet-v1-1-nightly (annotator/openpose)"),
    "lllyasviel/sd-controlnet-openpose": (
        BLEND_KIND, "ControlNet 1.0 control_sd15_openpose in diffusers format; annotator of lllyasviel/ControlNet (annotator/openpose)"),
    "TencentARC/t2iadapter_openpose_sd14v1": (
        BLEND_KIND, "T2I-Adapter openpose SD1.4 (March 2023); annotator of TencentARC/T2I-Adapter branch SD "
                    "(ldm/modules/extra_condition/openpose), ControlNet 1.0's drawing"),
}
_TRAINED_ON_LOWER = {k.lower(): v for k, v in TRAINED_ON.items()}


def trained_condition(checkpoint: str | None) -> str | None:
    """The condition kind a known public checkpoint was trained on; None for any other."""
    if not checkpoint:
        return None
    entry = _TRAINED_ON_LOWER.get(str(checkpoint).strip().rstrip("/").lower())
    return entry[0] if entry else None


def pose_condition(option: str | None, checkpoint: str | None, schema: str | None = None) -> str:
    """The pose condition kind of a pose ControlNet / T2I-Adapter run: ``method.options.condition``
    when set, else the format the checkpoint was trained on (:data:`TRAINED_ON`), else ``openpose``
    (the SP-Ctrl paper's rendering, which its baselines were trained on). With ``schema`` the
    OpenPose-18 kinds are checked to find the keypoints they need."""
    if option is None:
        kind = trained_condition(checkpoint) or "openpose"
    elif option in POSE_CONDITIONS:
        kind = option
    else:
        raise SpbenchError(
            f"method.options.condition={option!r} is not a pose condition kind: use one of "
            f"{', '.join(POSE_CONDITIONS)} (--set method.options.condition=KIND)"
        )
    if schema is not None and kind in STYLES:
        coco_to_openpose18(schema)
    return kind
