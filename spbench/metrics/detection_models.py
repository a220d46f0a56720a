"""The detectors of Detection AP.75: one interface, ``predict(images, samples, transforms)`` ->
per image, ``{"category", "bbox": [x, y, w, h] in canvas pixels, "score"}`` for each detection.
Images must be canvas-sized (the transform defines the frame).

- :class:`GroundingDinoDetector`: transformers' Grounding-DINO, one prompt per (image, category
  of its sample), Grounding-DINO's format: the lower-case name and a dot ("dog.", "polar bear.",
  "person."); its detections get that category. Score and box as
  ``post_process_grounded_object_detection`` computes them; no score cut by default
  (``evaluation.det_box_threshold: 0.0``), the 100 best per image and category kept (COCOeval's
  maxDets). ``tiny://grounding-dino`` is a tiny random one for tests.
- :class:`OracleDetector` (``oracle``): the ground-truth boxes, score 1; AP 100 by construction.
- :class:`PerturbedOracleDetector` (``perturbed-oracle[:SEED]``): the ground-truth boxes jittered
  by :mod:`spbench.metrics.perturbed`'s seeded fractions of their size, seeded scores.
"""

from __future__ import annotations

import os

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.detection import scored_categories, scored_instances
from spbench.metrics.model_specs import is_tiny, oracle_model, tiny_builder
from spbench.metrics.perturbed import box_fractions, jitter_bbox, perturbed_name

TINY_GROUNDING_DINO = "tiny://grounding-dino"
MAX_DETECTIONS = 100  # COCOeval's largest maxDets: more per image and category never count


def prompt_text(category: str) -> str:
    return category.strip().lower() + "."


def _check_inputs(images, samples, transforms) -> None:
    if not (len(images) == len(samples) == len(transforms)):
        raise SpbenchError(f"detector got {len(images)} images, {len(samples)} samples, {len(transforms)} transforms")
    for im, s, t in zip(images, samples, transforms):
        if im is not None and tuple(im.size) != (t.width, t.height):
            raise SpbenchError(f"sample {s.sample_id}: image is {im.size[0]}x{im.size[1]} but its canvas is "
                               f"{t.width}x{t.height}; detection boxes are scored in the canvas frame")


class OracleDetector:
    """The ground-truth boxes on the canvas with score 1.0: the metric's upper bound."""

    name = "oracle"

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        _check_inputs(images, samples, transforms)
        return [[{"category": i.category, "bbox": list(t.bbox(i.bbox)), "score": 1.0} for _, i in scored_instances(s)]
                for s, t in zip(samples, transforms)]


class PerturbedOracleDetector:
    """The ground-truth boxes on the canvas, jittered by seeded fractions of their size, seeded scores."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = perturbed_name(self.seed)

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        _check_inputs(images, samples, transforms)
        out = []
        for s, t in zip(samples, transforms):
            found = []
            for j, inst in scored_instances(s):
                fractions, score = box_fractions(self.seed, s.sample_id, j)
                found.append({"category": inst.category, "bbox": jitter_bbox(t.bbox(inst.bbox), fractions), "score": score})
            out.append(found)
        return out


class GroundingDinoDetector:
    """transformers' Grounding-DINO (``AutoModelForZeroShotObjectDetection``) and its processor."""

    def __init__(self, model, processor, name: str, device: str = "cpu", batch_size: int = 8,
                 box_threshold: float = 0.0, max_detections: int = MAX_DETECTIONS):
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.box_threshold = float(box_threshold)
        self.max_detections = int(max_detections)

    @classmethod
    def load(cls, spec: str, **kwargs) -> "GroundingDinoDetector":
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        from spbench.models.hub import load_pretrained

        kw = dict(role="detector (Grounding-DINO)", setting="models.detector")
        model = load_pretrained(AutoModelForZeroShotObjectDetection, spec, **kw)
        processor = load_pretrained(AutoProcessor, spec, **kw)
        return cls(model, processor, spec, **kwargs)

    def detect(self, images: list, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(scores [M], bboxes [M, 4] as x, y, w, h in image pixels) per (image, text), best first."""
        import torch

        out = []
        for i in range(0, len(images), self.batch_size):
            imgs, txts = images[i:i + self.batch_size], texts[i:i + self.batch_size]
            inputs = self.processor(images=imgs, text=txts, return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode():
                pred = self.model(**inputs)
            # As post_process_grounded_object_detection: max sigmoid over the text tokens (padding
            # is -inf, so 0), centre boxes to [x, y, w, h] scaled to the image; no phrase decoding.
            scores = pred.logits.float().sigmoid().max(dim=-1).values.cpu()
            cx, cy, w, h = pred.pred_boxes.float().cpu().unbind(-1)
            for b, im in enumerate(imgs):
                width, height = im.size
                xywh = torch.stack([(cx[b] - w[b] / 2) * width, (cy[b] - h[b] / 2) * height,
                                    w[b] * width, h[b] * height], -1)
                keep = scores[b] > self.box_threshold
                s, bboxes = scores[b][keep], xywh[keep]
                order = torch.argsort(s, descending=True, stable=True)[: self.max_detections]
                out.append((s[order].double().numpy(), bboxes[order].double().numpy()))
        return out

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        _check_inputs(images, samples, transforms)
        pairs = [(i, c) for i, s in enumerate(samples) for c in scored_categories(s)]
        found = self.detect([images[i].convert("RGB") for i, _ in pairs], [prompt_text(c) for _, c in pairs])
        results: list[list[dict]] = [[] for _ in samples]
        for (i, category), (scores, bboxes) in zip(pairs, found):
            results[i] += [{"category": category, "bbox": b.tolist(), "score": float(s)} for s, b in zip(scores, bboxes)]
        return results


def build_tiny_grounding_dino(seed: int = 0):
    """A tiny random Grounding-DINO (Swin embed 8, BERT hidden 8, d_model 32, 2 decoder layers,
    30 queries, 128 px input: the smallest whose coarsest feature level is 2×2, as GroupNorm needs
    for a single image) and its processor; the BERT vocabulary (special tokens, letters,
    word pieces and the prompt words) is written to a temporary folder and loaded with
    ``from_pretrained``, the one way transformers 5 reads a vocabulary file."""
    import tempfile

    import torch
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    from spbench.models.tiny_tokenizer import small_bert_vocab

    vocab = small_bert_vocab()
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "vocab.txt"), "w") as f:
            f.write("\n".join(vocab) + "\n")
        tokenizer = BertTokenizer.from_pretrained(folder)
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=128,
                      out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=8, max_position_embeddings=32)
    # decoder_layers >= 2: the box refinement of a single decoder layer does not build.
    config = GroundingDinoConfig(
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=30, num_feature_levels=4, encoder_n_points=2,
        decoder_n_points=2, backbone_config=swin, text_config=text, max_text_len=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 128})
    return model, GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def load_detector(spec: str | os.PathLike | None, device: str = "cpu", **kwargs):
    """``"oracle"``, ``"perturbed-oracle[:SEED]"`` (:mod:`spbench.metrics.perturbed`),
    ``"tiny://grounding-dino"`` or a hub id / folder of a transformers Grounding-DINO."""
    if spec is None:
        raise SpbenchError("no detector configured: set models.detector (e.g. IDEA-Research/grounding-dino-tiny)")
    spec = os.fspath(spec)
    oracle = oracle_model(spec, OracleDetector, PerturbedOracleDetector)
    if oracle is not None:
        return oracle
    if is_tiny(spec, TINY_GROUNDING_DINO, "detector"):
        model, processor = tiny_builder(spec)()
        return GroundingDinoDetector(model, processor, spec, device=device, **kwargs)
    return GroundingDinoDetector.load(spec, device=device, **kwargs)
