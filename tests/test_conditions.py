"""Condition rendering, checked against pixels worked out by hand (not against the code's output).

Geometry reminders used below: a keypoint at canvas (x, y) is a filled radius-4 circle centred on
pixel (row=int(y), col=int(x)), which covers the pixels 4 away along the axes; a limb is an
ellipse around its midpoint with half-axes (length/2, 4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from spbench.canvas import CanvasTransform
from spbench.conditions import (
    CONDITIONS,
    condition_grid,
    image_to_canvas,
    index_map_to_rgb,
    render_condition,
    render_heatmaps,
    render_index_map,
    render_openpose,
)
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError

K = 17
IDENTITY_64 = CanvasTransform.fit(64, 64, 64)  # original coords == canvas coords


def instance(points: dict[int, tuple[float, float, int]]) -> Instance:
    """An instance with the given keypoints (index -> x, y, v); all others unlabelled."""
    kps = tuple(points.get(k, (0.0, 0.0, 0)) for k in range(K))
    return Instance(category="dog", bbox=(0, 0, 10, 10), area=100.0, keypoints=kps)


def sample(*instances: Instance, schema: str = "ap10k", size: tuple[int, int] = (64, 64)) -> Sample:
    return Sample(
        sample_id="t-1", image_id=1, file="t.jpg", width=size[0], height=size[1], schema=schema,
        instances=instances, prompt_template="A dog<KPT>",
    )


# AP-10K: keypoint 0 left_eye, 1 right_eye, 2 nose; limb 0 = eye-eye, limb 1 = left_eye-nose.
EYES = {0: (20.0, 32.0, 2), 1: (44.0, 32.0, 2)}


def px(img: np.ndarray, x: int, y: int) -> tuple:
    v = img[y, x]
    return tuple(int(c) for c in v) if np.ndim(v) else int(v)


# ---- OpenPose ------------------------------------------------------------------------------


def test_openpose_keypoints_limb_and_background():
    img = render_openpose(sample(instance(EYES)), IDENTITY_64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert px(img, 20, 32) == (255, 0, 0)  # keypoint 0: PALETTE[0] at full intensity
    assert px(img, 44, 32) == (255, 85, 0)  # keypoint 1: PALETTE[1]
    # Limb 0 midpoint (32, 32) is 12 px from either keypoint: 0.6 * (255, 0, 0), 255*0.6 = 153.
    assert px(img, 32, 32) == (153, 0, 0)
    assert px(img, 32, 35) == (153, 0, 0)  # inside the stick (half-width 4)
    assert px(img, 32, 40) == (0, 0, 0)  # 8 px off the limb axis
    assert px(img, 5, 5) == (0, 0, 0)
    assert px(img, 60, 60) == (0, 0, 0)


def test_openpose_skips_invisible_keypoints_and_their_limbs():
    nose_hidden = render_openpose(sample(instance({**EYES, 2: (32.0, 50.0, 0)})), IDENTITY_64)
    assert px(nose_hidden, 32, 50) == (0, 0, 0)  # the nose itself
    assert px(nose_hidden, 26, 41) == (0, 0, 0)  # midpoint of limb 1 (left_eye-nose)
    # The same pose with the nose visible does draw both, so the check above means something:
    # nose = PALETTE[2] = (255, 170, 0); limb 1 = 0.6 * (255, 85, 0) = (153, 51, 0).
    nose_shown = render_openpose(sample(instance({**EYES, 2: (32.0, 50.0, 1)})), IDENTITY_64)
    assert px(nose_shown, 32, 50) == (255, 170, 0)
    assert px(nose_shown, 26, 41) == (153, 51, 0)


def test_openpose_truncates_coordinates():
    # (20.9, 32.9) is drawn at pixel (20, 32): the circle reaches (16, 32) (4 px left of 20) but
    # not (25, 33), which a rounded centre (21, 33) would cover.
    img = render_openpose(sample(instance({0: (20.9, 32.9, 2)})), IDENTITY_64)
    assert px(img, 16, 32) == (255, 0, 0)
    assert px(img, 25, 33) == (0, 0, 0)


def test_openpose_draws_all_coco_limbs():
    # COCO-17 limb 17 (1-based 4-6) joins left_ear (3) and left_shoulder (5): PALETTE[17] * 0.6.
    s = sample(instance({3: (10.0, 32.0, 2), 5: (50.0, 32.0, 2)}), schema="coco17")
    img = render_openpose(s, IDENTITY_64)
    assert px(img, 30, 32) == (153, 0, 51)  # 0.6 * (255, 0, 85)
    assert px(img, 10, 32) == (255, 255, 0)  # keypoint 3: PALETTE[3]
    assert px(img, 50, 32) == (85, 255, 0)  # keypoint 5: PALETTE[5]


def test_openpose_later_instances_draw_over_earlier():
    a = instance({0: (32.0, 32.0, 2)})
    b = instance({1: (32.0, 32.0, 2)})
    assert px(render_openpose(sample(a, b), IDENTITY_64), 32, 32) == (255, 85, 0)
    assert px(render_openpose(sample(b, a), IDENTITY_64), 32, 32) == (255, 0, 0)


# ---- spatial-pose index map -------------------------------------------------------------------


def test_index_map_values():
    m = render_index_map(sample(instance(EYES)), IDENTITY_64)
    assert m.shape == (64, 64) and m.dtype == np.uint8
    assert m[32, 20] == 1 and m[32, 44] == 2  # keypoint k -> k + 1
    assert m[32, 32] == 51  # limb 0 -> 51 + 0
    assert m[5, 5] == 0 and m[40, 32] == 0
    assert set(np.unique(m)) == {0, 1, 2, 51}


def test_index_map_limb_value_follows_limb_index():
    m = render_index_map(sample(instance({**EYES, 2: (32.0, 50.0, 2)})), IDENTITY_64)
    assert m[50, 32] == 3  # nose, keypoint 2
    assert m[41, 26] == 52  # limb 1 (left_eye-nose)
    assert m[41, 38] == 53  # limb 2 (right_eye-nose), midpoint (38, 41)


def test_index_map_skips_invisible_and_draws_all_coco_limbs():
    m = render_index_map(sample(instance({**EYES, 2: (32.0, 50.0, 0)})), IDENTITY_64)
    assert m[50, 32] == 0 and m[41, 26] == 0
    # COCO-17 has 19 limbs; limb 17 (left_ear-left_shoulder) is value 51 + 17 = 68, as in the
    # official Human-Art maps (data/demo/*/pose_kptindex.png of the official repository).
    ear_shoulder = instance({3: (10.0, 32.0, 2), 5: (50.0, 32.0, 2)})
    coco = render_index_map(sample(ear_shoulder, schema="coco17"), IDENTITY_64)
    assert coco[32, 10] == 4 and coco[32, 50] == 6
    assert coco[32, 30] == 68
    assert set(np.unique(coco)) == {0, 4, 6, 68}


def test_canvas_transform_is_applied():
    # (100, 50) on a 200x100 image, 64x64 stretch canvas: (100 * 64/200, 50 * 64/100) = (32, 32).
    t = CanvasTransform.fit(200, 100, 64)
    s = sample(instance({2: (100.0, 50.0, 2)}), size=(200, 100))
    m = render_index_map(s, t)
    assert m[32, 32] == 3
    assert m[36, 32] == 3 and m[37, 32] == 0  # radius stays 4 canvas pixels
    assert px(render_openpose(s, t), 32, 32) == (255, 170, 0)
    # Letterbox: scale 0.32, offset (0, 16); (0, 0) -> (0, 16).
    letterbox = CanvasTransform.fit(200, 100, 64, "letterbox")
    lb = render_index_map(sample(instance({2: (0.0, 0.0, 2)}), size=(200, 100)), letterbox)
    assert lb[16, 0] == 3 and lb[0, 0] == 0


def test_index_map_to_rgb_gives_distinct_colours():
    values = [0, *range(1, 18), *range(51, 68)]
    rgb = index_map_to_rgb(np.array([values], dtype=np.uint8))
    assert rgb.shape == (1, len(values), 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert len({tuple(c) for c in rgb[0]}) == len(values)


# ---- heatmaps -----------------------------------------------------------------------------------


def test_heatmap_peak_and_neighbour():
    h = render_heatmaps(sample(instance({3: (10.0, 40.0, 2)})), IDENTITY_64, size=64, sigma=2.0)
    assert h.shape == (K, 64, 64) and h.dtype == np.float32
    assert h[3, 40, 10] == pytest.approx(1.0)  # row = y, column = x
    assert h[3, 40, 11] == pytest.approx(math.exp(-1 / 8))  # exp(-1 / (2 * 2^2))
    assert h[3, 41, 10] == pytest.approx(math.exp(-1 / 8))
    assert h[3, 41, 11] == pytest.approx(math.exp(-2 / 8))
    assert np.unravel_index(h[3].argmax(), h[3].shape) == (40, 10)
    assert not h[np.arange(K) != 3].any()  # unlabelled keypoints: all-zero maps


def test_heatmap_instances_sum_and_invisible_is_zero():
    a = instance({0: (32.0, 32.0, 2), 1: (20.0, 20.0, 0)})
    h = render_heatmaps(sample(a, a), IDENTITY_64)
    assert h[0, 32, 32] == pytest.approx(2.0)  # summed, not clamped
    assert not h[1].any()


def test_heatmap_scales_canvas_to_heatmap():
    # Canvas 128x128, heatmap 64: canvas (64, 32) -> heatmap (32, 16).
    s = sample(instance({0: (64.0, 32.0, 2)}), size=(128, 128))
    h = render_heatmaps(s, CanvasTransform.fit(128, 128, 128))
    assert h[0, 16, 32] == pytest.approx(1.0)
    assert h[0, 16, 33] == pytest.approx(math.exp(-1 / 8))


def test_heatmap_sigma():
    h = render_heatmaps(sample(instance({0: (32.0, 32.0, 2)})), IDENTITY_64, sigma=1.0)
    assert h[0, 32, 34] == pytest.approx(math.exp(-4 / 2))


# ---- registry, canvas images, grid --------------------------------------------------------------


def test_render_condition_kinds():
    s = sample(instance(EYES))
    rgb = render_condition("openpose", s, IDENTITY_64)
    assert rgb.mode == "RGB" and rgb.size == (64, 64) and rgb.getpixel((20, 32)) == (255, 0, 0)
    idx = render_condition("spatial-pose", s, IDENTITY_64)
    assert idx.mode == "L" and idx.getpixel((32, 32)) == 51 and idx.getpixel((44, 32)) == 2
    assert set(CONDITIONS) == {"openpose", "spatial-pose", "openpose18", "openpose18-blend"}


def test_render_condition_unknown_kind_suggests():
    with pytest.raises(SpbenchError, match="did you mean 'openpose'"):
        render_condition("open-pose", sample(instance(EYES)), IDENTITY_64)


def test_image_to_canvas_stretch_and_letterbox():
    white = Image.new("RGB", (200, 100), (255, 255, 255))
    st = image_to_canvas(white, CanvasTransform.fit(200, 100, 64))
    assert st.size == (64, 64) and st.getpixel((0, 0)) == (255, 255, 255)
    # Letterbox: scale 0.32 -> 64x32 image pasted at (0, 16); rows 0-15 and 48-63 black.
    lb = image_to_canvas(white, CanvasTransform.fit(200, 100, 64, "letterbox"))
    assert lb.size == (64, 64)
    assert lb.getpixel((10, 15)) == (0, 0, 0) and lb.getpixel((10, 16)) == (255, 255, 255)
    assert lb.getpixel((10, 47)) == (255, 255, 255) and lb.getpixel((10, 48)) == (0, 0, 0)


def test_condition_grid_size():
    s = sample(instance(EYES))
    grid = condition_grid([(s, IDENTITY_64, Image.new("RGB", (64, 64))), (s, IDENTITY_64, None)])
    assert grid.mode == "RGB" and grid.size == (4 * 64, 2 * 64)
    # The OpenPose tile of row 2 sits at x = 64, y = 64; its keypoint 1 at (44, 32).
    assert grid.getpixel((64 + 44, 64 + 32)) == (255, 85, 0)
    with pytest.raises(SpbenchError):
        condition_grid([])


def test_sample_without_instances_renders_empty():
    s = sample()
    assert not render_openpose(s, IDENTITY_64).any()
    assert not render_index_map(s, IDENTITY_64).any()
    assert render_heatmaps(s, IDENTITY_64).shape == (K, 64, 64)
    assert not render_heatmaps(s, IDENTITY_64).any()


def test_wrong_keypoint_count_is_a_user_error():
    short = Instance(category="dog", bbox=(0, 0, 1, 1), area=1.0, keypoints=((1.0, 1.0, 2),) * 5)
    with pytest.raises(SpbenchError, match="5 keypoints"):
        render_openpose(sample(short), IDENTITY_64)
