"""Condition kinds ``openpose18`` / ``openpose18-blend``: the OpenPose-18 body images the public SD1.5
OpenPose checkpoints were trained on, checked against pixels computed by hand from the official
annotators' rules (lllyasviel/ControlNet-v1-1-nightly and lllyasviel/ControlNet
``annotator/openpose/util.py`` ``draw_bodypose``; controlnet_aux ``dwpose/wholebody.py`` for the
COCO -> OpenPose mapping), and the ControlNet / T2I-Adapter baselines choosing them by checkpoint."""

import cv2
import numpy as np
import pytest
from PIL import Image

from spbench import harness
from spbench.canvas import CanvasTransform
from spbench.conditions import CONDITIONS, render_condition
from spbench.conditions.openpose18 import (
    annotator_size,
    limb_polygon,
    openpose18_people,
    pose_condition,
    render_annotator_sized,
    supports_schema,
)
from spbench.data.records import Instance, Sample
from spbench.errors import SpbenchError
from spbench.generation.engine import manifest_row
from spbench.run.folder import RunFolder
from spbench.run.requests import MethodContext, Request

COCO = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle")
BLACK = (0, 0, 0)


def person(**points) -> Instance:
    """A COCO-17 person with the named keypoints visible at (x, y), the others unlabelled."""
    kps = tuple((*points[n], 2) if n in points else (0.0, 0.0, 0) for n in COCO)
    return Instance("person", (0, 0, 1, 1), 1.0, kps)


def sample(*people, width=64, height=64, schema="coco17") -> Sample:
    return Sample("s", 1, "s.jpg", width, height, schema, tuple(people), "a person")


def draw(kind, s) -> np.ndarray:
    """Native rendering on a canvas the size of the image (scale exactly 1)."""
    return np.asarray(render_condition(kind, s, CanvasTransform.fit(s.width, s.height, (s.width, s.height)), "native"))


def px(image, x, y):
    return tuple(int(c) for c in image[y, x])


def test_coco17_maps_to_openpose18_by_name_with_the_neck_from_both_shoulders():
    coords = {n: (100.0 + 10 * i, 1.0 + 5 * i) for i, n in enumerate(COCO)}
    (xy, present), = openpose18_people(sample(person(**coords)), CanvasTransform.fit(64, 64, (64, 64)))
    # OpenPose slot <- COCO index (controlnet_aux dwpose: openpose_idx <- mmpose_idx; 0, 5, 11 stay)
    expected = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    for slot, j in enumerate(expected):
        if j is None:  # the neck: midpoint of left (5) and right (6) shoulder
            assert tuple(xy[slot]) == (155.0, 28.5)  # (150 + 160) / 2, (26 + 31) / 2
        else:
            assert tuple(xy[slot]) == (100.0 + 10 * j, 1.0 + 5 * j), slot
    assert present.all()

    one_shoulder = {n: p for n, p in coords.items() if n != "left_shoulder"}
    (_, present), = openpose18_people(sample(person(**one_shoulder)), CanvasTransform.fit(64, 64, (64, 64)))
    assert not present[1] and not present[5] and present[2]


def test_annotator_size_is_short_side_512_rounded_to_64_halves_to_even():
    assert annotator_size(640, 480) == (704, 512)   # 682.7 / 64 = 10.67 -> 11
    assert annotator_size(500, 375) == (704, 512)
    assert annotator_size(333, 500) == (512, 768)   # 768.8 / 64 = 12.01 -> 12
    assert annotator_size(544, 512) == (512, 512)   # 8.5 -> 8 (np.round: halves to even)
    assert annotator_size(608, 512) == (640, 512)   # 9.5 -> 10
    assert annotator_size(256, 320) == (512, 640)


def test_limb_polygon_takes_truncated_centre_half_length_and_angle():
    # p=(10, 10), q=(30, 21): mean (20, 15.5) -> (20, 15); length sqrt(521) = 22.83 -> int(11.41) = 11;
    # angle degrees(atan2(10 - 21, 10 - 30)) = -151.19 -> int() = -151 (floor would give -152)
    expected = cv2.ellipse2Poly((20, 15), (11, 4), -151, 0, 360, 1)
    np.testing.assert_array_equal(limb_polygon((10, 10), (30, 21)), expected)
    # a horizontal limb from (10, 20) to (40, 20): centre (25, 20), half-axes (15, 4)
    poly = limb_polygon((10, 20), (40, 20))
    assert (poly[:, 0].min(), poly[:, 0].max(), poly[:, 1].min(), poly[:, 1].max()) == (10, 40, 16, 24)


# right shoulder (OpenPose 2, colour 2 = (255, 170, 0)) and right elbow (OpenPose 3, (255, 255, 0)):
# limb 2 = (2, 3), colour (255, 170, 0); a limb over black is 0.6 of it = (153, 102, 0).
ARM = sample(person(right_shoulder=(10.0, 20.0), right_elbow=(40.0, 20.0)))


def test_openpose18_limb_at_six_tenths_and_circles_on_top():
    img = draw("openpose18", ARM)
    assert px(img, 25, 20) == (153, 102, 0)   # limb centre
    assert px(img, 25, 23) == (153, 102, 0)   # 3 px off the axis: inside the half-width 4
    assert px(img, 18, 20) == (153, 102, 0)   # beside the shoulder circle (8 px away)
    assert px(img, 25, 25) == BLACK           # 5 px off the axis
    assert px(img, 10, 20) == (255, 170, 0)   # shoulder circle centre, full colour
    assert px(img, 40, 20) == (255, 255, 0)   # elbow circle centre
    assert px(img, 38, 20) == (255, 255, 0)   # circle over the limb: the circle wins
    assert px(img, 40, 23) == (255, 255, 0)   # 3 px from the elbow
    assert px(img, 46, 20) == BLACK
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert colours == {BLACK, (153, 102, 0), (255, 170, 0), (255, 255, 0)}


def test_openpose18_blend_draws_circles_first_and_blends_each_limb_over_them():
    img = draw("openpose18-blend", ARM)
    assert px(img, 25, 20) == (153, 102, 0)   # round(0.4 * 0 + 0.6 * (255, 170, 0))
    # elbow circle (255, 255, 0) under the limb: round(0.4 * (255, 255, 0) + 0.6 * (255, 170, 0))
    assert px(img, 38, 20) == (255, 204, 0)
    assert px(img, 40, 23) == (255, 255, 0)   # circle outside the limb: unchanged
    assert px(img, 25, 25) == BLACK


def test_two_people_limbs_cross_limb_by_limb_not_person_by_person():
    # Listed first: B's vertical right forearm (OpenPose 3 -> 4, limb 3, colour (255, 255, 0)).
    b = person(right_elbow=(30.0, 10.0), right_wrist=(30.0, 50.0))
    # Then A's horizontal right upper arm (limb 2, colour (255, 170, 0)); they cross at (30, 30).
    a = person(right_shoulder=(10.0, 30.0), right_elbow=(50.0, 30.0))
    s = sample(b, a)
    # ControlNet 1.1 loops limb 0..16 over all people: limb 3 (B) is filled after limb 2 (A) and
    # overwrites it; then the canvas is scaled by 0.6: (255, 255, 0) -> (153, 153, 0).
    assert px(draw("openpose18", s), 30, 30) == (153, 153, 0)
    # ControlNet 1.0 blends: limb 2 -> (153, 102, 0); limb 3 over it:
    # round(0.4 * 153 + 0.6 * 255) = round(214.2) = 214, round(0.4 * 102 + 0.6 * 255) = round(193.8) = 194
    assert px(draw("openpose18-blend", s), 30, 30) == (214, 194, 0)


def test_the_neck_is_drawn_only_with_both_shoulders():
    both = draw("openpose18", sample(person(left_shoulder=(41.0, 20.0), right_shoulder=(20.0, 20.0))))
    assert px(both, 30, 20) == (255, 85, 0)   # neck (OpenPose 1) at int(30.5) = 30, colour 1
    assert px(both, 24, 20) == (255, 170, 0)  # right-shoulder circle (OpenPose 2) at x 16..24
    assert px(both, 25, 22) == (153, 0, 0)    # limb 0 neck-right shoulder: 0.6 * (255, 0, 0)
    assert px(both, 36, 22) == (153, 51, 0)   # limb 1 neck-left shoulder: 0.6 * (255, 85, 0)
    one = draw("openpose18", sample(person(right_shoulder=(20.0, 20.0), left_elbow=(41.0, 20.0))))
    assert px(one, 30, 20) == BLACK and px(one, 25, 22) == BLACK


def test_coordinates_follow_the_official_float_steps():
    # ControlNet 1.1 keeps keypoints as fractions of the image: x = 29 on a 50-wide image becomes
    # 29 / 50 * 50 = 28.999999999999996 -> int() = 28; ControlNet 1.0 keeps pixels (29).
    assert 29 / 50 * 50 < 29
    s = sample(person(nose=(29.0, 10.0)), width=50, height=50)
    v11, v10 = draw("openpose18", s), draw("openpose18-blend", s)
    assert px(v11, 24, 10) == (255, 0, 0) and px(v11, 33, 10) == BLACK   # disc of radius 4 about x = 28
    assert px(v10, 24, 10) == BLACK and px(v10, 33, 10) == (255, 0, 0)   # about x = 29


# 640 x 480: annotator image 704 x 512; right shoulder (OpenPose 2) and right elbow (OpenPose 3)
WIDE = sample(person(right_shoulder=(320.0, 240.0), right_elbow=(320.0, 400.0)), width=640, height=480)


def test_official_render_is_the_annotator_image_resized_as_diffusers_resizes_it():
    annotator = render_annotator_sized(WIDE)
    assert annotator.size == (704, 512)
    a = np.asarray(annotator)
    # (320, 240) * (704 / 640, 512 / 480) = (352, 256); the elbow (320, 400) -> (352, 426.67) -> row 426
    assert px(a, 352, 256) == (255, 170, 0) and px(a, 357, 256) == BLACK
    assert px(a, 352, 426) == (255, 255, 0)

    # stretch: diffusers resizes a PIL control image with PIL LANCZOS (VaeImageProcessor.resize,
    # resample="lanczos"; T2I-Adapter's _preprocess_adapter_image: PIL_INTERPOLATION["lanczos"])
    official = render_condition("openpose18", WIDE, CanvasTransform.fit(640, 480, 512), "official")
    np.testing.assert_array_equal(np.asarray(official), np.asarray(annotator.resize((512, 512), Image.Resampling.LANCZOS)))

    # letterbox: the resized annotator image sits where the image does (512 x 384 at y 64), bands black
    boxed = np.asarray(render_condition("openpose18", WIDE, CanvasTransform.fit(640, 480, 512, "letterbox"), "official"))
    assert not boxed[:64].any() and not boxed[448:].any()
    np.testing.assert_array_equal(boxed[64:448], np.asarray(annotator.resize((512, 384), Image.Resampling.LANCZOS)))


@pytest.mark.slow  # imports diffusers' adapter pipeline (seconds)
def test_official_render_equals_what_the_diffusers_pipelines_feed_the_model():
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.pipelines.t2i_adapter.pipeline_stable_diffusion_adapter import _preprocess_adapter_image

    annotator = render_annotator_sized(WIDE, "openpose18-blend")
    official = render_condition("openpose18-blend", WIDE, CanvasTransform.fit(640, 480, 512), "official")
    ours = np.asarray(official, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    controlnet = VaeImageProcessor(do_convert_rgb=True, do_normalize=False).preprocess(annotator, height=512, width=512)
    np.testing.assert_array_equal(ours, controlnet.numpy())
    np.testing.assert_array_equal(ours, _preprocess_adapter_image(annotator, 512, 512).numpy())


def test_openpose18_needs_human_keypoint_names():
    animal = Sample("a", 1, "a.jpg", 64, 64, "ap10k", (Instance("dog", (0, 0, 1, 1), 1.0, ((5.0, 5.0, 2),) * 17),), "a dog")
    with pytest.raises(SpbenchError, match="openpose18.*ap10k.*condition kind 'openpose'"):
        draw("openpose18", animal)
    assert "openpose" in CONDITIONS and draw("openpose", animal).any()  # the paper's kind still draws it
    assert supports_schema("coco17") and not supports_schema("ap10k")


def test_condition_choice_by_checkpoint_and_option():
    assert pose_condition(None, "lllyasviel/control_v11p_sd15_openpose") == "openpose18"
    assert pose_condition(None, "Lllyasviel/Control_v11p_sd15_openpose/") == "openpose18"
    assert pose_condition(None, "lllyasviel/sd-controlnet-openpose") == "openpose18-blend"
    assert pose_condition(None, "TencentARC/t2iadapter_openpose_sd14v1") == "openpose18-blend"
    assert pose_condition(None, "./weights/my-controlnet") == "openpose"
    assert pose_condition(None, None) == "openpose"
    assert pose_condition("openpose", "lllyasviel/control_v11p_sd15_openpose") == "openpose"
    with pytest.raises(SpbenchError, match="method.options.condition='openpose-18'"):
        pose_condition("openpose-18", None)


@pytest.mark.parametrize("method, checkpoint, kind", [
    ("controlnet", "lllyasviel/control_v11p_sd15_openpose", "openpose18"),
    ("t2i-adapter", "TencentARC/t2iadapter_openpose_sd14v1", "openpose18-blend"),
    ("controlnet", None, "openpose"),
])
def test_public_checkpoint_runs_feed_and_record_the_format_they_were_trained_on(tmp_path, method, checkpoint, kind):
    flags = {"method.name": method, "method.checkpoint": checkpoint, "dataset.name": "sample", "dataset.split": "humanart"}
    prep = harness.prepare(flags, "tiny", [], str(tmp_path))
    m = prep.method_cls(MethodContext(prep.config))  # nothing is loaded: no hub access
    assert m.condition == kind
    s = prep.split.samples[0]
    req = Request(s, 0, 0, CanvasTransform.fit(s.width, s.height, 64), prep.split.image_path(s))
    row = manifest_row(prep.run, m, req)
    assert row["condition"]["kind"] == kind and row["condition"]["render"] == m.condition_render
    np.testing.assert_array_equal(np.asarray(m.condition_image(req)),
                                  np.asarray(render_condition(kind, s, req.transform, m.condition_render)))


def test_option_overrides_and_a_run_folder_refuses_to_mix_conditions(tmp_path):
    flags = {"method.name": "controlnet", "method.checkpoint": "lllyasviel/control_v11p_sd15_openpose",
             "dataset.name": "sample", "dataset.split": "humanart"}
    prep = harness.prepare(flags, "tiny", ["method.options.condition=openpose"], str(tmp_path))
    assert prep.method_cls(MethodContext(prep.config)).condition == "openpose"
    with pytest.raises(SpbenchError, match="openpose18.*ap10k"):  # checked before any model loads
        p = harness.prepare({**flags, "dataset.split": "ap10k"}, "tiny", [], str(tmp_path))
        p.method_cls(MethodContext(p.config))

    run = RunFolder(tmp_path / "run")
    samples = list(prep.split.samples)
    run.start(prep.config, {"method": {"condition": "openpose"}}, samples)
    run.start(prep.config, {"method": {"condition": "openpose"}}, samples)  # resuming: same kind
    with pytest.raises(SpbenchError, match="conditioned on 'openpose', this one on 'openpose18'"):
        run.start(prep.config, {"method": {"condition": "openpose18"}}, samples)

