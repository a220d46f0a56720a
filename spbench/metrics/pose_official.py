"""The ``official`` pose protocol: Pose mAP as the official SP-Ctrl evaluation computes it.

Sources (github DREAMXFAR/SP-Ctrl, ``tools/eval_vitpose_metrics/``; mmpose tags as noted):

- Images: the official inference resizes each generated 512x512 image back to the original
  image size with ``Image.resize((width, height), Image.BILINEAR)``
  (``inference/gen_keypoint_w_controlnet*.py``); keypoints are predicted in that frame and
  scored against the original annotations (boxes, areas unscaled).
- Which images: ``test.py::copy2dir`` copies ``<image>/0.jpg`` of every prompt into the folder
  the AP-10K config reads (``img_prefix=.../test_data_cache/``): only k = 0 is scored. The repo
  has no copy step for Human-Art (its config reads ``test_humanart_cache``); we assume the same
  k = 0, and say so in the record.
- AP-10K (``config/animal/.../ap10k/geneval_ViTPose_huge_ap10k_256x192.py``, mmpose 0.24.0 per
  ``vitpose_requirements.txt``): GT boxes (``use_gt_bbox=True``), input 192x256, heatmap 48x64,
  ``TopDownAffine()`` without UDP, ``flip_test=True``, ``shift_heatmap=True``,
  ``post_process='default'`` (Gaussian target); rescoring with ``vis_thr=0.2`` times box score 1;
  ``oks_nms`` at ``oks_thr=0.9`` (``use_nms`` defaults to True); COCOeval per category.
- Human-Art (``config/humanart/geneval_td-hm_ViTPose-huge_8xb64-210e_humanart-256x192.py``,
  mmpose 1.x): ``UDPHeatmap`` codec (192x256 -> 48x64, DARK-UDP decoding, blur kernel 11),
  ``TopdownAffine(use_udp=True)``, ``flip_test=True``, ``flip_mode='heatmap'``,
  ``shift_heatmap=False``; ``CocoMetric`` defaults: ``score_mode='bbox_keypoint'``,
  ``keypoint_score_thr=0.2``, ``nms_mode='oks_nms'``, ``nms_thr=0.9``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from PIL import Image

from spbench.canvas import CanvasTransform

from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.topdown_boxes import CropBox, topdown_boxes
from spbench.schemas import get_schema


@dataclass(frozen=True)
class OfficialPose:
    """One dataset's official top-down settings."""

    dataset: str
    source: str  # the config and library the settings come from
    box_rule: str  # spbench.metrics.topdown_boxes.BOX_RULES
    udp: bool  # UDP crop and decoding (mmpose 1.x UDPHeatmap) or mmpose 0.x 'default'
    flip_shift: bool  # shift_heatmap of the flip test
    nms_thr: float
    vis_thr: float  # keypoints above it count toward the rescored detection score
    scored_k: tuple[int, ...]
    k_source: str
    input_size: tuple[int, int] = (192, 256)  # (w, h)
    padding: float = 1.25

    @property
    def aspect(self) -> float:
        return self.input_size[0] / self.input_size[1]

    @property
    def decoding(self) -> str:
        if self.udp:
            return "mmpose 1.x UDPHeatmap: DARK-UDP refinement (blur kernel 11), x / (W - 1) * window"
        return "mmpose 0.x post_process='default': argmax + 0.25 px toward the higher neighbour, x * window / W"

    def to_dict(self) -> dict:
        return asdict(self)


OFFICIAL: dict[str, OfficialPose] = {
    "ap10k": OfficialPose(
        dataset="AP-10K",
        source="SP-Ctrl tools/eval_vitpose_metrics geneval_ViTPose_huge_ap10k_256x192.py, mmpose 0.24.0",
        box_rule="mmpose0", udp=False, flip_shift=True, nms_thr=0.9, vis_thr=0.2,
        scored_k=(0,), k_source="test.py copy2dir copies <image>/0.jpg only",
    ),
    "coco17": OfficialPose(
        dataset="Human-Art",
        source="SP-Ctrl tools/eval_vitpose_metrics geneval_td-hm_ViTPose-huge_8xb64-210e_humanart-256x192.py, mmpose 1.x",
        box_rule="mmpose1", udp=True, flip_shift=False, nms_thr=0.9, vis_thr=0.2,
        scored_k=(0,), k_source="assumed as AP-10K: the repo has no copy step for test_humanart_cache",
    ),
}


def official_settings(schema: str) -> OfficialPose:
    """The official settings of a built-in schema's dataset; a schema file borrows those of the
    built-in schema its ``official_protocol`` names (crop, decoding, NMS: its own sigmas and flip pairs)."""
    if schema not in OFFICIAL:
        try:
            borrowed = get_schema(schema).official_protocol
        except SpbenchError:  # not a schema at all: the message below says what the protocol covers
            borrowed = None
        if borrowed in OFFICIAL:
            return dataclasses.replace(OFFICIAL[borrowed], source=OFFICIAL[borrowed].source + f"; applied to keypoint "
                                       f"schema {schema} (its schema file's official_protocol: {borrowed})")
        raise SpbenchError(f"the official pose protocol is defined for AP-10K and Human-Art, not keypoint schema "
                           f"{schema!r}: use --protocol canvas (or name official_protocol: ap10k or coco17 in its schema file)")
    return OFFICIAL[schema]


def scoring_frame(sample: Sample, canvas: dict) -> CanvasTransform:
    """The frame the official protocol scores ``sample`` in: its original image (the identity
    from annotation coordinates), whatever the canvas (``canvas``, the manifest's transform) was."""
    return CanvasTransform(int(sample.width), int(sample.height), 1.0, 1.0)


def in_frame(sample: Sample, frame: CanvasTransform) -> Sample:
    """``sample`` with its size, keypoints, boxes and areas mapped into ``frame`` (itself when the
    frame is the original image)."""
    if (frame.width, frame.height, frame.scale_x, frame.scale_y, frame.offset_x, frame.offset_y) == \
            (sample.width, sample.height, 1.0, 1.0, 0.0, 0.0):
        return sample
    instances = []
    for inst in sample.instances:
        xy = frame.points(inst.xy)
        keypoints = tuple((float(x), float(y), int(v)) if v > 0 else (0.0, 0.0, 0)
                          for (x, y), (_, _, v) in zip(xy, inst.keypoints))
        instances.append(dataclasses.replace(inst, keypoints=keypoints, bbox=frame.bbox(inst.bbox),
                                             area=frame.area(inst.area)))
    return dataclasses.replace(sample, width=frame.width, height=frame.height, instances=tuple(instances))


def to_original_size(image: Image.Image, sample: Sample) -> Image.Image:
    """The generated image resized back to the original image size, as the official inference."""
    return image.resize((int(sample.width), int(sample.height)), Image.BILINEAR)


def sample_boxes(sample: Sample, settings: OfficialPose) -> list[CropBox | None]:
    """The crop window of each instance of ``sample`` (None: the official evaluation predicts none)."""
    return topdown_boxes(sample.instances, sample.width, sample.height, settings.box_rule, settings.aspect, settings.padding)
