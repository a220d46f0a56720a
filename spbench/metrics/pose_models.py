"""Pose estimators for Pose mAP, one interface, top-down on the condition's GT boxes.

``predict(images, samples, transforms)`` (canvas protocol) returns, for each image, one [K, 3]
array (x, y, score) per instance of its sample, in canvas pixels. Images must be canvas-sized: the
transform defines the frame, and a silent resize here would hide a mismatch upstream.

``predict_boxes(images, samples, crop_boxes, settings)`` (official protocol) takes images at the
original size and one crop window per instance (None: no prediction) and returns one [K, 3]
array or None per instance, in original-image pixels; the ViTPose model crops and decodes as the
official evaluation does (:mod:`spbench.metrics.topdown_crop`, :mod:`spbench.metrics.heatmap_decode`).

- :class:`VitPosePoseModel`: transformers' ViTPose / ViTPose++ (``dataset_index`` picks the
  ViTPose++ expert: 0 COCO, 1 AIC, 2 MPII, 3 AP-10K, 4 APT-36K, 5 COCO-WholeBody).
- :class:`OraclePoseModel`: the condition keypoints themselves; scores 100 AP by construction.
- :class:`PerturbedOraclePoseModel` (``perturbed-oracle[:SEED]``): the condition keypoints moved
  by :mod:`spbench.metrics.perturbed`'s seeded offsets proportional to their box; AP strictly
  between 0 and 100, sensitive to sigmas, OKS areas, frame and ignored ground truth.
- :func:`build_tiny_vitpose`: a tiny random ViTPose for tests ("tiny://vitpose").
"""

from __future__ import annotations

import os
import warnings
from typing import Protocol

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.model_specs import is_tiny, oracle_model, tiny_builder
from spbench.metrics.perturbed import keypoint_fractions, perturbed_name
from spbench.schemas import get_schema

TINY_VITPOSE = "tiny://vitpose"


class PoseModel(Protocol):
    def predict(self, images: list, samples: list[Sample], transforms: list[CanvasTransform]) -> list[list[np.ndarray]]: ...

    def predict_boxes(self, images: list, samples: list[Sample], crop_boxes: list[list], settings) -> list[list]: ...


def _check_inputs(images: list, samples: list[Sample], transforms: list[CanvasTransform]) -> None:
    if not (len(images) == len(samples) == len(transforms)):
        raise SpbenchError(f"pose model got {len(images)} images, {len(samples)} samples, {len(transforms)} transforms")
    for im, s, t in zip(images, samples, transforms):
        if im is not None and tuple(im.size) != (t.width, t.height):
            raise SpbenchError(
                f"sample {s.sample_id}: image is {im.size[0]}x{im.size[1]} but its canvas is "
                f"{t.width}x{t.height}; score images in the frame the condition was drawn in"
            )


def _check_original_size(images: list, samples: list[Sample], crop_boxes: list[list]) -> None:
    if not (len(images) == len(samples) == len(crop_boxes)):
        raise SpbenchError(f"pose model got {len(images)} images, {len(samples)} samples, {len(crop_boxes)} box lists")
    for im, s, b in zip(images, samples, crop_boxes):
        if len(b) != len(s.instances):
            raise SpbenchError(f"sample {s.sample_id}: {len(b)} crop windows for {len(s.instances)} instances")
        if im is not None and tuple(im.size) != (s.width, s.height):
            raise SpbenchError(f"sample {s.sample_id}: image is {im.size[0]}x{im.size[1]}, the official protocol "
                               f"scores it at the original size {s.width}x{s.height}")


def canvas_boxes(sample: Sample, transform: CanvasTransform) -> list[list[float]]:
    """GT boxes [x, y, w, h] in the canvas frame (at least 1 px wide and high)."""
    out = []
    for inst in sample.instances:
        x, y, w, h = transform.bbox(inst.bbox)
        out.append([x, y, max(w, 1.0), max(h, 1.0)])
    return out


class OraclePoseModel:
    """Returns the condition keypoints (canvas frame) with score 1.0: the metric's upper bound."""

    name = "oracle"

    def predict(self, images, samples, transforms):
        _check_inputs(images, samples, transforms)
        out = []
        for s, t in zip(samples, transforms):
            out.append([np.concatenate([t.points(i.xy), np.ones((len(i.keypoints), 1))], axis=1) for i in s.instances])
        return out

    def predict_boxes(self, images, samples, crop_boxes, settings):
        """The condition keypoints (original frame), score 1.0, for each instance given a window."""
        _check_original_size(images, samples, crop_boxes)
        return [[None if b is None else np.concatenate([i.xy, np.ones((len(i.keypoints), 1))], axis=1)
                 for i, b in zip(s.instances, bs)] for s, bs in zip(samples, crop_boxes)]


class PerturbedOraclePoseModel:
    """The condition keypoints moved by seeded offsets proportional to their box, seeded scores."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = perturbed_name(self.seed)

    def _moved(self, sample, index: int, xy: np.ndarray, bbox) -> np.ndarray:
        _, _, w, h = bbox
        frac, score = keypoint_fractions(self.seed, sample.sample_id, index, len(xy))
        moved = xy + frac * np.array([w, h], dtype=np.float64)
        return np.concatenate([moved, np.full((len(xy), 1), score)], axis=1)

    def predict(self, images, samples, transforms):
        """Canvas frame: offsets scaled by the instance's canvas box."""
        _check_inputs(images, samples, transforms)
        return [[self._moved(s, j, t.points(inst.xy), t.bbox(inst.bbox)) for j, inst in enumerate(s.instances)]
                for s, t in zip(samples, transforms)]

    def predict_boxes(self, images, samples, crop_boxes, settings):
        """Official protocol (original frame): offsets scaled by the instance's own box; None
        where the protocol gives no crop window."""
        _check_original_size(images, samples, crop_boxes)
        return [[None if b is None else self._moved(s, j, inst.xy, inst.bbox)
                 for j, (inst, b) in enumerate(zip(s.instances, bs))] for s, bs in zip(samples, crop_boxes)]


class VitPosePoseModel:
    """transformers' ``VitPoseForPoseEstimation`` with its ``VitPoseImageProcessor``.

    Crops of all GT boxes are batched across images (``batch_size`` crops per forward). With
    ``flip_test`` the heatmaps of the horizontally flipped crop, swapped back with the schema's
    flip pairs, are averaged in. ``predict`` (canvas protocol) crops and decodes with the
    transformers processor (no heatmap shift); ``predict_boxes`` (official protocol) crops,
    flips back and decodes as the official mmpose configs do.
    """

    def __init__(self, model_id_or_path: str, dataset_index: int | None = None, device: str = "cpu",
                 batch_size: int = 32, flip_test: bool = True):
        from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor

        from spbench.models.hub import load_pretrained

        _require_scipy()
        model = load_pretrained(VitPoseForPoseEstimation, model_id_or_path, role="pose model", setting="models.pose")
        processor = load_pretrained(VitPoseImageProcessor, model_id_or_path, role="pose model", setting="models.pose")
        self._setup(model, processor, str(model_id_or_path), dataset_index, device, batch_size, flip_test)

    @classmethod
    def from_modules(cls, model, processor, *, name: str = "in-memory", dataset_index: int | None = None,
                     device: str = "cpu", batch_size: int = 32, flip_test: bool = True) -> "VitPosePoseModel":
        _require_scipy()
        self = cls.__new__(cls)
        self._setup(model, processor, name, dataset_index, device, batch_size, flip_test)
        return self

    def _setup(self, model, processor, name, dataset_index, device, batch_size, flip_test):
        self.name = name
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.flip_test = flip_test
        self.num_experts = int(getattr(model.config.backbone_config, "num_experts", 1))
        # A folder made by `spbench convert vitpose --head X` records which expert its head belongs to.
        head_index = getattr(model.config, "head_dataset_index", None)
        if head_index is not None and dataset_index is not None and dataset_index != head_index:
            raise SpbenchError(f"pose model {name!r} keeps the head of dataset_index {head_index}, not {dataset_index}: "
                               f"set models.pose_dataset_index={head_index}")
        dataset_index = head_index if dataset_index is None else dataset_index
        if self.num_experts > 1:
            if dataset_index is None:
                raise SpbenchError(
                    f"pose model {name!r} is a ViTPose++ with {self.num_experts} experts: set its "
                    f"dataset_index (0 COCO, 1 AIC, 2 MPII, 3 AP-10K, 4 APT-36K, 5 COCO-WholeBody)"
                )
            if not 0 <= dataset_index < self.num_experts:
                raise SpbenchError(f"dataset_index {dataset_index} out of range for {self.num_experts} experts of {name!r}")
        self.dataset_index = dataset_index if self.num_experts > 1 else None
        self._warned_head = False

    def _check_head(self, schema) -> None:
        n = int(self.model.config.num_labels)
        if n != schema.num_keypoints:
            raise SpbenchError(
                f"pose model {self.name!r} predicts {n} keypoints, schema {schema.name!r} has {schema.num_keypoints}"
            )
        labels = " ".join(str(v).lower() for v in (self.model.config.id2label or {}).values())
        # transformers' ViTPose++ conversions keep only the COCO head: the AP-10K expert's
        # features then decode into human keypoints, in COCO order.
        if schema.name == "ap10k" and not self._warned_head and any(w in labels for w in ("ear", "wrist", "ankle")):
            self._warned_head = True
            warnings.warn(
                f"pose model {self.name!r} has a human (COCO) keypoint head but the samples use AP-10K "
                f"keypoints; Pose mAP needs a checkpoint whose head predicts AP-10K keypoints",
                stacklevel=3,
            )

    def _heatmaps(self, pixel_values, flip_pairs):
        import torch

        out = []
        for i in range(0, len(pixel_values), self.batch_size):
            pv = pixel_values[i:i + self.batch_size].to(self.device, dtype=next(self.model.parameters()).dtype)
            kwargs = {}
            if self.dataset_index is not None:
                kwargs["dataset_index"] = torch.full((len(pv),), self.dataset_index, dtype=torch.long, device=self.device)
            hm = self.model(pv, **kwargs).heatmaps
            if self.flip_test:
                hm_flip = self.model(pv.flip(-1), flip_pairs=flip_pairs, **kwargs).heatmaps
                hm = (hm + hm_flip) * 0.5
            out.append(hm.float().cpu())
        return torch.cat(out)

    def predict(self, images, samples, transforms):
        import torch
        from transformers.models.vitpose.modeling_vitpose import VitPoseEstimatorOutput

        _check_inputs(images, samples, transforms)
        results: list[list[np.ndarray]] = [[] for _ in samples]
        # Chunks of whole images with about batch_size crops each; images without instances skip.
        todo = [i for i, s in enumerate(samples) if s.instances]
        chunks, cur, n = [], [], 0
        for i in todo:
            if cur and n + len(samples[i].instances) > self.batch_size:
                chunks.append(cur)
                cur, n = [], 0
            cur.append(i)
            n += len(samples[i].instances)
        if cur:
            chunks.append(cur)

        for chunk in chunks:
            schema = get_schema(samples[chunk[0]].schema)
            if any(samples[i].schema != schema.name for i in chunk):
                raise SpbenchError("pose model got samples of different keypoint schemas in one call")
            self._check_head(schema)
            flip_pairs = torch.tensor(schema.flip_pairs, dtype=torch.long, device=self.device)
            boxes = [canvas_boxes(samples[i], transforms[i]) for i in chunk]
            imgs = [images[i].convert("RGB") for i in chunk]
            inputs = self.processor(imgs, boxes=boxes, return_tensors="pt")
            with torch.inference_mode():
                heatmaps = self._heatmaps(inputs["pixel_values"], flip_pairs)
            poses = self.processor.post_process_pose_estimation(VitPoseEstimatorOutput(heatmaps=heatmaps), boxes=boxes)
            for i, per_image in zip(chunk, poses):
                results[i] = [
                    np.concatenate([p["keypoints"].numpy().astype(np.float64).reshape(-1, 2),
                                    p["scores"].numpy().astype(np.float64).reshape(-1, 1)], axis=1)
                    for p in per_image
                ]
        return results

    def predict_boxes(self, images, samples, crop_boxes, settings):
        """Official top-down (images at the original size): our crop of each window, the model's
        heatmaps with the flip test of ``settings``, our decoding."""
        from spbench.metrics.heatmap_decode import decode_default, decode_udp
        from spbench.metrics.topdown_crop import crop, to_pixel_values

        _check_original_size(images, samples, crop_boxes)
        results: list[list] = [[None] * len(s.instances) for s in samples]
        todo = [(i, j) for i, bs in enumerate(crop_boxes) for j, b in enumerate(bs) if b is not None]
        if not todo:
            return results
        schema = get_schema(samples[todo[0][0]].schema)
        if any(s.schema != schema.name for s in samples):
            raise SpbenchError("pose model got samples of different keypoint schemas in one call")
        self._check_head(schema)
        self._check_input_size(settings.input_size)
        arrays: dict[int, np.ndarray] = {}
        for start in range(0, len(todo), self.batch_size):
            part = todo[start:start + self.batch_size]
            crops = []
            for i, j in part:
                if i not in arrays:
                    arrays[i] = np.asarray(images[i].convert("RGB"))
                crops.append(crop(arrays[i], crop_boxes[i][j], settings.input_size, settings.udp))
            heatmaps = self._flip_tested_heatmaps(to_pixel_values(crops), schema.flip_pairs, settings.flip_shift)
            windows = [crop_boxes[i][j] for i, j in part]
            decoded = decode_udp(heatmaps, windows) if settings.udp else decode_default(heatmaps, windows)
            for (i, j), pose in zip(part, decoded):
                results[i][j] = pose
        return results

    def _check_input_size(self, input_size: tuple[int, int]) -> None:
        h, w = (int(v) for v in self.model.config.backbone_config.image_size)
        if (w, h) != tuple(input_size):
            raise SpbenchError(f"pose model {self.name!r} takes {w}x{h} inputs, the official protocol crops "
                               f"{input_size[0]}x{input_size[1]}")

    def _flip_tested_heatmaps(self, pixel_values, flip_pairs, shift: bool) -> np.ndarray:
        """Heatmaps [N, K, h, w] as numpy; with flip_test, averaged with those of the mirrored
        crop put back by :func:`~spbench.metrics.heatmap_decode.flip_back` (mmpose's order)."""
        import torch

        from spbench.metrics.heatmap_decode import flip_back

        pv = pixel_values.to(self.device, dtype=next(self.model.parameters()).dtype)
        kwargs = {}
        if self.dataset_index is not None:
            kwargs["dataset_index"] = torch.full((len(pv),), self.dataset_index, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            hm = self.model(pv, **kwargs).heatmaps.float().cpu().numpy()
            if self.flip_test:
                mirrored = self.model(pv.flip(-1), **kwargs).heatmaps.float().cpu().numpy()
                hm = (hm + flip_back(mirrored, flip_pairs, shift)) * 0.5
        return hm


def _require_scipy() -> None:
    # VitPoseImageProcessor crops with scipy; without it, it fails with a NameError deep inside.
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise SpbenchError("the ViTPose pose model needs scipy: pip install scipy") from None


def build_tiny_vitpose(num_keypoints: int = 17, num_experts: int = 1):
    """A tiny random ViTPose (hidden 32, 2 layers, 2 heads, 256x192 input, patch 16) and a
    default processor, built offline; seeded, so the same call gives the same weights."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessor

    backbone = VitPoseBackboneConfig(
        image_size=[256, 192], patch_size=[16, 16], hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, mlp_ratio=2, num_experts=num_experts, part_features=8 if num_experts > 1 else 0,
        out_indices=[2],
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=num_keypoints, use_simple_decoder=True)
    torch.manual_seed(0)
    model = VitPoseForPoseEstimation(config).eval()
    processor = VitPoseImageProcessor(size={"height": 256, "width": 192})
    return model, processor


def save_tiny_vitpose(path: str | os.PathLike, num_keypoints: int = 17, num_experts: int = 1) -> str:
    """Write the tiny ViTPose as a model folder (``save_pretrained``), loadable like a hub download."""
    model, processor = build_tiny_vitpose(num_keypoints, num_experts)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def load_pose_model(spec: str | os.PathLike | dict, dataset_index: int | None = None, device: str = "cpu",
                    num_keypoints: int = 17):
    """``"oracle"``, ``"perturbed-oracle[:SEED]"``, ``"tiny://vitpose"`` or a hub id / folder of a
    transformers ViTPose. ``num_keypoints``: the keypoint schema's K, the heatmaps the tiny ViTPose's
    head is built with (a real model's head is what its checkpoint has, checked against the schema).

    A dict spec: ``{"model": ..., "dataset_index": ..., "batch_size": ..., "flip_test": ...}``.
    The tiny model gets enough experts for ``dataset_index`` so expert routing is exercised.
    """
    kwargs: dict = {}
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("model", None) or spec.pop("name", None)
        if not name:
            raise SpbenchError(f"pose model spec {spec!r} needs a 'model' entry")
        dataset_index = spec.pop("dataset_index", dataset_index)
        device = spec.pop("device", device)
        unknown = set(spec) - {"batch_size", "flip_test"}
        if unknown:
            raise SpbenchError(f"unknown pose model settings {sorted(unknown)}: use batch_size, flip_test, dataset_index")
        kwargs = spec
        spec = name
    spec = os.fspath(spec)
    oracle = oracle_model(spec, OraclePoseModel, PerturbedOraclePoseModel)
    if oracle is not None:
        return oracle
    if is_tiny(spec, TINY_VITPOSE, "pose model"):
        experts = 1 if dataset_index is None else max(2, dataset_index + 1)
        model, processor = tiny_builder(spec)(num_keypoints, experts)
        return VitPosePoseModel.from_modules(model, processor, name=spec, dataset_index=dataset_index, device=device, **kwargs)
    if _looks_like_path(spec) and not os.path.isdir(spec):
        raise SpbenchError(
            f"pose model folder {spec} does not exist: convert the paper's mmpose checkpoint into it with "
            f"`spbench convert vitpose CHECKPOINT.pth {spec}` (ViTPose++ for AP-10K: add --head ap10k), "
            "or pass another model with --pose-model / --set models.pose="
        )
    return VitPosePoseModel(spec, dataset_index=dataset_index, device=device, **kwargs)


def _looks_like_path(spec: str) -> bool:
    """Hub ids are "org/name"; a spec starting like a path is meant as a local folder."""
    return spec.startswith((".", "/", "~"))
