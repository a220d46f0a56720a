"""Conditions drawn as the official SP-Ctrl code draws them (generation.condition_render=official),
checked against pixels worked out by hand and against the official repository's own index map.

Facts from the official code (github DREAMXFAR/SP-Ctrl) these tests pin down:
- index maps and OpenPose images are drawn at the original image size (keypoint radius 4, stick 4);
- inference resizes the index map with torchvision ``Resize((512, 512), NEAREST)`` on a tensor:
  torch's rule, target pixel i samples source pixel ``floor(i * src / dst)``, not PIL's
  pixel-centre rule ``floor((i + 0.5) * src / dst)``; OpenPose images with PIL BILINEAR;
- training resizes the shorter side to 512 (index map NEAREST on a PIL image, i.e. PIL's rule;
  image BILINEAR) and centre-crops 512x512;
- Human-Art (COCO-17) index maps hold all 19 limbs (values 51..69); the OpenPose drawing zips the
  limbs with 18 colours, so it never draws the 19th; the SPR embeds only values 51..67.

A radius-4 filled circle (cv2.circle, as the official drawing) centred on pixel (cx, cy) covers,
on row cy + dy, the columns cx - HALF[|dy|] .. cx + HALF[|dy|]: 9 + 2 * (7 + 7 + 5 + 1) = 49 pixels,
the size of every keypoint disc in the official demo maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from spbench.canvas import CanvasTransform
from spbench.conditions import render_condition
from spbench.conditions.official import (
    official_training_crop,
    original_frame,
    torch_nearest_indices,
)
from spbench.data.records import Instance, Sample, Split
from spbench.errors import SpbenchError
from spbench.methods.base import Method
from spbench.models.spr import SpatialPoseRepresentation
from spbench.run.requests import MethodContext
from spbench.schemas import AP10K, COCO17
from spbench.training.dataset import TrainingDataset, official_condition, official_image_tensor

HALF = {0: 4, 1: 3, 2: 3, 3: 2, 4: 0}
DATA = Path(__file__).parent / "data"


def disc(canvas: np.ndarray, cx: int, cy: int, value) -> None:
    """Paint the radius-4 disc described above (by the table, not by cv2)."""
    for dy, half in HALF.items():
        for row in {cy - dy, cy + dy}:
            if 0 <= row < canvas.shape[0]:
                canvas[row, max(cx - half, 0) : cx + half + 1] = value


def instance(points: dict[int, tuple[float, float, int]]) -> Instance:
    kps = tuple(points.get(k, (0.0, 0.0, 0)) for k in range(17))
    return Instance(category="dog", bbox=(0, 0, 10, 10), area=100.0, keypoints=kps)


def sample(*instances: Instance, schema: str = "ap10k", size=(40, 30)) -> Sample:
    return Sample(sample_id="t-1", image_id=1, file="t.png", width=size[0], height=size[1], schema=schema,
                  instances=instances, prompt_template="A dog<KPT>")


# AP-10K left_eye (k0, value 1) and neck (k3, value 4): no limb joins them, so only two discs.
# int() puts them on pixels (10, 8) and (29, 21) of the 40x30 original.
TWO = sample(instance({0: (10.7, 8.2, 2), 3: (29.0, 21.9, 2)}))
CANVAS_16 = CanvasTransform.fit(40, 30, 16)

# Which source pixel each of the 16 target pixels samples (worked out by hand).
# torch nearest: floor(i * 40/16 = 2.5 i) and floor(i * 30/16 = 1.875 i).
TORCH_COLS = [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 30, 32, 35, 37]
TORCH_ROWS = [0, 1, 3, 5, 7, 9, 11, 13, 15, 16, 18, 20, 22, 24, 26, 28]
# PIL NEAREST (pixel centres): floor((i + 0.5) * 2.5) and floor((i + 0.5) * 1.875).
PIL_COLS = [1, 3, 6, 8, 11, 13, 16, 18, 21, 23, 26, 28, 31, 33, 36, 38]
PIL_ROWS = [0, 2, 4, 6, 8, 10, 12, 14, 15, 17, 19, 21, 23, 25, 27, 29]


def test_torch_nearest_rule_by_hand_and_against_torchvision():
    assert torch_nearest_indices(40, 16).tolist() == TORCH_COLS
    assert torch_nearest_indices(30, 16).tolist() == TORCH_ROWS
    # The official call (inference/gen_keypoint_w_controlnet.py) on a map whose value is its
    # column (resp. row) gives the same indices; PIL's NEAREST gives the pixel-centre ones.
    cols = np.tile(np.arange(40, dtype=np.uint8), (30, 1))
    rows = np.tile(np.arange(30, dtype=np.uint8)[:, None], (1, 40))
    resize = transforms.Resize((16, 16), antialias=True, interpolation=transforms.InterpolationMode.NEAREST)
    official = lambda grid: resize(torch.as_tensor(grid, dtype=torch.float32)[None])[0].numpy()
    assert (official(cols) == np.array(TORCH_COLS)[None, :]).all()
    assert (official(rows) == np.array(TORCH_ROWS)[:, None]).all()
    assert np.array(Image.fromarray(cols).resize((16, 16), Image.NEAREST))[0].tolist() == PIL_COLS
    assert np.array(Image.fromarray(rows).resize((16, 16), Image.NEAREST))[:, 0].tolist() == PIL_ROWS


def test_torch_nearest_matches_torchvision_on_many_sizes():
    # The float32 scale matters on large, odd sizes; check the official sizes' neighbourhood.
    resize_to = lambda a, h, w: transforms.Resize((h, w), interpolation=transforms.InterpolationMode.NEAREST)(a)
    for src, dst in [(433, 512), (500, 512), (1000, 512), (729, 512), (4032, 512), (3024, 512), (7, 512), (999, 333)]:
        line = torch.arange(src, dtype=torch.float32)[None, None, :]  # value = source column
        expected = resize_to(line, 1, dst)[0, 0].long().tolist()
        assert torch_nearest_indices(src, dst).tolist() == expected, (src, dst)


def test_official_index_map_two_keypoints_by_hand():
    m = np.asarray(render_condition("spatial-pose", TWO, CANVAS_16, mode="official"))
    expected = np.zeros((16, 16), dtype=np.uint8)
    # Disc of value 1 at (10, 8): sampled rows 5, 7, 9, 11 (targets 3-6) are dy = -3, -1, 1, 3;
    # |dy| = 3 spans columns 8..12 -> sampled 10, 12 (targets 4, 5); |dy| = 1 spans 7..13 -> 7, 10, 12.
    expected[3, 4:6] = expected[6, 4:6] = 1
    expected[4, 3:6] = expected[5, 3:6] = 1
    # Disc of value 4 at (29, 21): rows 18, 20, 22, 24 (targets 10-13) are dy = -3, -1, 1, 3;
    # columns 27..31 -> 27, 30 (targets 11, 12); 26..32 -> 27, 30, 32 (targets 11-13).
    expected[10, 11:13] = expected[13, 11:13] = 4
    expected[11, 11:14] = expected[12, 11:14] = 4
    assert m.shape == (16, 16)
    np.testing.assert_array_equal(m, expected)


def test_native_draws_on_the_canvas_instead():
    native = np.asarray(render_condition("spatial-pose", TWO, CANVAS_16, mode="native"))
    # Canvas points: (10.7 * 0.4, 8.2 * 16/30) -> pixel (4, 4); (29.0 * 0.4, 21.9 * 16/30) -> (11, 11);
    # full 49-pixel discs 4 canvas pixels wide, where the official map keeps 10 pixels of each.
    expected = np.zeros((16, 16), dtype=np.uint8)
    disc(expected, 4, 4, 1)
    disc(expected, 11, 11, 4)
    np.testing.assert_array_equal(native, expected)
    official = np.asarray(render_condition("spatial-pose", TWO, CANVAS_16, mode="official"))
    assert [(official == v).sum() for v in (1, 4)] == [10, 10]
    assert [(native == v).sum() for v in (1, 4)] == [49, 49]


def test_official_openpose_is_a_bilinear_resize_of_the_original_size_drawing():
    # One keypoint (left_eye: PALETTE[0] = red) on the 40x30 original, drawn by hand.
    s = sample(instance({0: (20.0, 15.0, 2)}))
    original = np.zeros((30, 40, 3), dtype=np.uint8)
    disc(original, 20, 15, (255, 0, 0))
    expected = Image.fromarray(original).resize((16, 16), Image.BILINEAR)  # the official call
    out = render_condition("openpose", s, CANVAS_16, mode="official")
    assert out.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_official_letterbox_places_the_resized_map_in_the_box():
    # 40x30 into 16x16: scale 0.4, a 16x12 map at rows 2..13; rows torch-sampled floor(2.5 i).
    box = CanvasTransform.fit(40, 30, 16, "letterbox")
    m = np.asarray(render_condition("spatial-pose", TWO, box, mode="official"))
    expected = np.zeros((16, 16), dtype=np.uint8)
    # Disc 1 at (10, 8): sampled rows 5, 7, 10, 12 (i = 2..5 -> canvas rows 4..7), dy = -3, -1, 2, 4.
    expected[4, 4:6] = 1  # columns 8..12 -> 10, 12
    expected[5, 3:6] = expected[6, 3:6] = 1  # 7..13 -> 7, 10, 12
    expected[7, 4] = 1  # column 10 only
    # Disc 4 at (29, 21): rows 17, 20, 22, 25 (i = 7, 8, 9, 10 -> canvas 9..12), dy = -4, -1, 1, 4.
    expected[10, 11:14] = expected[11, 11:14] = 4  # 26..32 -> 27, 30, 32
    # dy = +-4 keeps column 29 only, which no target column samples.
    np.testing.assert_array_equal(m, expected)
    assert not m[:2].any() and not m[14:].any()


def test_render_mode_is_validated():
    with pytest.raises(SpbenchError, match=r"generation\.condition_render 'offical'.*official, native"):
        render_condition("spatial-pose", TWO, CANVAS_16, mode="offical")


# ---- Human-Art: 19 limbs ------------------------------------------------------------------------

# COCO-17: left_ear 3, right_ear 4, left_shoulder 5, right_shoulder 6. Limbs (0-based) 7 = 6-7
# (shoulders, value 58), 17 = 4-6 (left ear-shoulder, 68), 18 = 5-7 (right ear-shoulder, 69).
EARS_SHOULDERS = instance({3: (10.0, 20.0, 2), 5: (50.0, 20.0, 2), 4: (10.0, 50.0, 2), 6: (50.0, 50.0, 2)})


def test_humanart_index_map_holds_limbs_68_and_69():
    s = sample(EARS_SHOULDERS, schema="coco17", size=(64, 64))
    m = np.asarray(render_condition("spatial-pose", s, original_frame(s), mode="official"))
    assert m[20, 30] == 68 and m[50, 30] == 69 and m[35, 50] == 58
    assert m[20, 10] == 4 and m[50, 10] == 5 and m[20, 50] == 6 and m[50, 50] == 7
    assert set(np.unique(m)) == {0, 4, 5, 6, 7, 58, 68, 69}
    assert len(COCO17.index_map_limbs) == 19 and len(AP10K.index_map_limbs) == 17


def test_openpose_does_not_draw_cocos_19th_limb():
    s = sample(EARS_SHOULDERS, schema="coco17", size=(64, 64))
    rgb = np.asarray(render_condition("openpose", s, original_frame(s), mode="official"))
    assert tuple(rgb[20, 30]) == (153, 0, 51)  # limb 17: 0.6 * PALETTE[17] = 0.6 * (255, 0, 85)
    assert tuple(rgb[50, 30]) == (0, 0, 0)  # limb 18 (right ear-shoulder): no 19th colour, not drawn
    assert tuple(rgb[35, 50]) == (0, 153, 51)  # limb 7: 0.6 * PALETTE[7] = 0.6 * (0, 255, 85)


def test_spr_looks_nothing_up_for_68_and_69():
    # The official SPR loops over values 51..67 only: 68 and 69 come out as background (zeros).
    spr = SpatialPoseRepresentation(3, skeleton_type="one").eval()
    index = torch.tensor([[[0, 51, 67, 68, 69]]])
    with torch.no_grad():
        out = spr(index)[0, :, 0]
    assert out[:, 1].tolist() == [1.0, 1.0, 1.0] and out[:, 2].tolist() == [1.0, 1.0, 1.0]
    assert not out[:, 0].any() and not out[:, 3].any() and not out[:, 4].any()


# ---- the official repository's own map -----------------------------------------------------------

# AP-10K val image 222 (500x433), annotation 361 as in the official data/ap10k/val_split1.jsonl.
KP_222 = [132, 150, 2, 0, 0, 0, 128, 180, 2, 202, 183, 2, 384, 143, 2, 227, 234, 2, 226, 276, 2, 209, 349, 2,
          278, 231, 2, 302, 278, 2, 328, 335, 2, 352, 219, 2, 389, 256, 2, 387, 342, 2, 384, 210, 2,
          413, 234, 2, 413, 331, 2]
AP10K_222 = Sample(
    sample_id="ap10k-000000000222", image_id=222, file="000000000222.jpg", width=500, height=433, schema="ap10k",
    instances=(Instance(category="antelope", bbox=(103, 70, 336, 298), area=100128,
                        keypoints=tuple(tuple(KP_222[i:i + 3]) for i in range(0, 51, 3))),),
    prompt_template="A good photo of antelope<KPT>",
)


def official_222() -> np.ndarray:
    # data/demo/ap10k_000000000222/pose_kptindex.png of github DREAMXFAR/SP-Ctrl (MIT licence,
    # see tests/data/README.md): the official offline index map at the original size.
    return np.array(Image.open(DATA / "spctrl_ap10k_000000000222_pose_kptindex.png").convert("L"))


def test_ap10k_222_matches_the_official_map_pixel_for_pixel():
    official = official_222()
    assert official.shape == (433, 500)
    ours = np.asarray(render_condition("spatial-pose", AP10K_222, original_frame(AP10K_222), mode="official"))
    np.testing.assert_array_equal(ours, official)


def test_ap10k_222_on_the_canvas_equals_the_official_inference_resize():
    # What inference/gen_keypoint_w_controlnet.py feeds the pipeline: the map as a float tensor,
    # Resize((512, 512), NEAREST).
    tensor = torch.as_tensor(official_222(), dtype=torch.float32)[None]
    resize = transforms.Resize((512, 512), antialias=True, interpolation=transforms.InterpolationMode.NEAREST)
    expected = resize(tensor)[0].numpy().astype(np.uint8)
    transform = CanvasTransform.fit(500, 433, 512)
    ours = np.asarray(render_condition("spatial-pose", AP10K_222, transform, mode="official"))
    np.testing.assert_array_equal(ours, expected)
    # Drawn natively on the canvas the same pose differs on many pixels (discs 4 canvas px wide).
    native = np.asarray(render_condition("spatial-pose", AP10K_222, transform, mode="native"))
    assert (native != expected).sum() > 1000


# ---- training: the official preprocess (shorter side to the canvas, centre crop) -------------------

# A 40x30 original trained at 16: Resize(16) makes it 21x16 (int(16 * 40 / 30) = 21), CenterCrop(16)
# starts at column int(round(5 / 2)) = 2 (round half to even), row 0.
NOSE = sample(instance({2: (20.0, 15.0, 2)}))  # value 3 at pixel (20, 15)
# PIL NEAREST 40 -> 21: floor((j + 0.5) * 40 / 21), then columns 2..17 of the 21.
CROP_COLS = [4, 6, 8, 10, 12, 14, 16, 18, 20, 21, 23, 25, 27, 29, 31, 33]


def test_official_training_crop_transform():
    t = official_training_crop(40, 30, 16)
    assert (t.width, t.height, t.offset_x, t.offset_y) == (16, 16, -2.0, 0.0)
    assert t.scale_x == pytest.approx(21 / 40) and t.scale_y == pytest.approx(16 / 30)
    # The nose (20, 15) lands on (20 * 21/40 - 2, 15 * 16/30) = (8.5, 8).
    np.testing.assert_allclose(t.points([[20.0, 15.0]]), [[8.5, 8.0]])
    # A tall image crops rows: 30x50 -> 16x26 (int(16 * 50 / 30) = 26), top int(round(5)) = 5.
    tall = official_training_crop(30, 50, 16)
    assert (tall.offset_x, tall.offset_y) == (0.0, -5.0)


def test_official_training_condition_by_hand():
    original = np.zeros((30, 40), dtype=np.uint8)
    disc(original, 20, 15, 3)
    cropped = np.asarray(official_condition(Image.fromarray(original), "spatial-pose", 16))
    expected = np.zeros((16, 16), dtype=np.uint8)
    # Sampled rows (PIL_ROWS) 12, 14, 15, 17, 19 (targets 6-10) are dy = -3, -1, 0, 2, 4; sampled
    # columns CROP_COLS 16, 18, 20, 21, 23 are targets 6-10.
    expected[6, 7:10] = 3  # columns 18..22 -> 18, 20, 21
    expected[7, 7:11] = 3  # 17..23 -> 18, 20, 21, 23
    expected[8, 6:11] = 3  # 16..24 -> 16, 18, 20, 21, 23
    expected[9, 7:11] = 3  # 17..23
    expected[10, 8] = 3  # column 20 only
    np.testing.assert_array_equal(cropped, expected)


class _Drawn(Method):
    """A method that only draws its condition (training data checks need no model)."""

    name = "drawn"
    condition = "spatial-pose"

    def load(self):
        pass

    def generate(self, prompts, conditions, latents, settings):
        raise NotImplementedError


def test_training_dataset_official_mode(tmp_path):
    # A 40x30 image whose column x is grey level 6x: the official image pipeline is torchvision's.
    pixels = np.tile((np.arange(40, dtype=np.uint8) * 6)[None, :, None], (30, 1, 3))
    Image.fromarray(pixels).save(tmp_path / "t.png")
    split = Split("test", "train", (NOSE,), root=str(tmp_path))
    method = _Drawn(MethodContext({"generation": {"condition_render": "official"}}))
    item = TrainingDataset(split, method, canvas=16, heatmaps=True)[0]

    reference = transforms.Compose([  # the official preprocess of the image
        transforms.Resize(16, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(16), transforms.ToTensor(), transforms.Normalize([0.5], [0.5]),
    ])
    with Image.open(tmp_path / "t.png") as im:
        expected_image = reference(im.convert("RGB"))
    assert torch.equal(item["pixel_values"], expected_image)

    condition = item["condition"]
    assert condition.shape == (1, 16, 16) and condition.dtype == torch.int64
    assert condition[0, 8].tolist() == [0] * 6 + [3] * 5 + [0] * 5  # the middle row worked out above
    # Heatmaps are drawn in the crop: the nose (8.5, 8) * 64/16 = (34, 32) is the Gaussian's centre.
    heat = item["heatmaps"][2]
    assert heat[32, 34] == pytest.approx(1.0)

    native_method = _Drawn(MethodContext({"generation": {"condition_render": "native"}}))
    native = TrainingDataset(split, native_method, canvas=16)[0]["condition"]
    assert (native[0] == 3).sum() == 49  # on the stretched canvas: the whole radius-4 disc


def test_training_dataset_rejects_an_unknown_mode(tmp_path):
    split = Split("test", "train", (NOSE,), root=str(tmp_path))
    method = _Drawn(MethodContext({"generation": {"condition_render": "exact"}}))
    with pytest.raises(SpbenchError, match=r"generation\.condition_render 'exact'"):
        TrainingDataset(split, method, canvas=16)


# ---- recorded and guarded in the run folder ---------------------------------------------------


def _run_config(render: str | None) -> dict:
    gen = {"steps": 2, "canvas": 16, "canvas_mode": "stretch", "seed": 0}
    if render is not None:
        gen["condition_render"] = render
    return {"dataset": {"name": "test"}, "method": {"name": "drawn"}, "generation": gen}


def test_manifest_row_records_how_the_condition_was_drawn(tmp_path):
    from spbench.generation.engine import manifest_row
    from spbench.run.folder import RunFolder
    from spbench.run.requests import Request

    method = _Drawn(MethodContext(_run_config("official")))
    row = manifest_row(RunFolder(tmp_path), method, Request(TWO, 0, 1, CANVAS_16))
    assert row["condition"] == {"kind": "spatial-pose", "file": "conditions/t-1.png", "render": "official"}


def test_a_run_folder_refuses_another_condition_render(tmp_path):
    from spbench.run.folder import RunFolder

    RunFolder(tmp_path / "r").start(_run_config("official"), {}, [TWO])
    RunFolder(tmp_path / "r").start(_run_config("official"), {}, [TWO])  # same settings: resumes
    with pytest.raises(SpbenchError, match=r"generation\.condition_render: 'official' there, 'native' now"):
        RunFolder(tmp_path / "r").start(_run_config("native"), {}, [TWO])
    # A run.json from before the setting existed was drawn on the canvas: it resumes only as native.
    RunFolder(tmp_path / "old").start(_run_config(None), {}, [TWO])
    with pytest.raises(SpbenchError, match=r"generation\.condition_render: 'native' there, 'official' now"):
        RunFolder(tmp_path / "old").start(_run_config("official"), {}, [TWO])
    RunFolder(tmp_path / "old").start(_run_config("native"), {}, [TWO])
