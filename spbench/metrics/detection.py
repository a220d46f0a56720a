"""Detection AP.75 (paper §4.1): Grounding-DINO prompted with the category name, its boxes scored
against the ground-truth boxes with COCO box AP.

Conventions (recorded in the result's ``evaluation.det``):
- one prompt per (image, category of its sample), Grounding-DINO's format: the lower-case name and
  a dot ("dog.", "polar bear.", "person."). Its detections get that category, so no phrase
  matching is needed and an image with two species is scored per species;
- detection score and box as ``post_process_grounded_object_detection`` and the official demo
  compute them: max sigmoid over the prompt's tokens, centre boxes to corners scaled to the image;
  images are canvas-sized, so boxes are in canvas pixels;
- no score cut by default (``evaluation.det_box_threshold: 0.0``): COCO-style, the 100 best
  detections per image and category are kept (COCOeval's maxDets);
- ground truth: the box of every instance with a labelled keypoint, mapped to the canvas (area =
  canvas box area, used only by COCO's size ranges; we report the "all" range). An instance
  without one is not in the condition, so no method is asked to generate it: it is neither
  ground truth nor prompted for;
- pycocotools ``COCOeval(iouType="bbox")`` with its defaults: per-category AP averaged over
  categories, IoU .50:.05:.95, maxDets 100. AP.75 is the paper's number; percent, rounded to 10
  decimals (so the oracle's perfect score is exactly 100.0);
- per k and over all k pooled; spread: mean and sample std of AP.75 over k.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

from spbench.canvas import CanvasTransform
from spbench.data.records import Sample
from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, coco_ap, spread_over_k, unique_entries

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


def scored_instances(sample: Sample) -> list[tuple[int, object]]:
    """(index in ``sample.instances``, instance) of the instances detection scores: those with a
    labelled keypoint."""
    return [(j, inst) for j, inst in enumerate(sample.instances) if inst.labelled]


def scored_categories(sample: Sample) -> tuple[str, ...]:
    return tuple(dict.fromkeys(inst.category for _, inst in scored_instances(sample)))


class OracleDetector:
    """The ground-truth boxes on the canvas with score 1.0: the metric's upper bound."""

    name = "oracle"

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        _check_inputs(images, samples, transforms)
        return [[{"category": i.category, "bbox": list(t.bbox(i.bbox)), "score": 1.0} for _, i in scored_instances(s)]
                for s, t in zip(samples, transforms)]


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
        """(scores [M], boxes [M, 4] as x, y, w, h in image pixels) per (image, text), best first."""
        import torch

        out = []
        for i in range(0, len(images), self.batch_size):
            imgs, txts = images[i:i + self.batch_size], texts[i:i + self.batch_size]
            inputs = self.processor(images=imgs, text=txts, return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode():
                pred = self.model(**inputs)
            # As post_process_grounded_object_detection: max sigmoid over the text tokens (padding
            # is -inf, so 0), centre boxes to corners scaled to the image; no phrase decoding.
            scores = pred.logits.float().sigmoid().max(dim=-1).values.cpu()
            cx, cy, w, h = pred.pred_boxes.float().cpu().unbind(-1)
            for b, im in enumerate(imgs):
                width, height = im.size
                xywh = torch.stack([(cx[b] - w[b] / 2) * width, (cy[b] - h[b] / 2) * height,
                                    w[b] * width, h[b] * height], -1)
                keep = scores[b] > self.box_threshold
                s, boxes = scores[b][keep], xywh[keep]
                order = torch.argsort(s, descending=True, stable=True)[: self.max_detections]
                out.append((s[order].double().numpy(), boxes[order].double().numpy()))
        return out

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        _check_inputs(images, samples, transforms)
        pairs = [(i, c) for i, s in enumerate(samples) for c in scored_categories(s)]
        found = self.detect([images[i].convert("RGB") for i, _ in pairs], [prompt_text(c) for _, c in pairs])
        results: list[list[dict]] = [[] for _ in samples]
        for (i, category), (scores, boxes) in zip(pairs, found):
            results[i] += [{"category": category, "bbox": b.tolist(), "score": float(s)} for s, b in zip(scores, boxes)]
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

    from spbench.models.tiny_tokenizer import TINY_WORDS

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *letters, *("##" + c for c in letters),
             *dict.fromkeys(TINY_WORDS)]
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
    from spbench.metrics.perturbed import PerturbedOracleDetector, perturbed_seed

    if spec is None:
        raise SpbenchError("no detector configured: set models.detector (e.g. IDEA-Research/grounding-dino-tiny)")
    spec = os.fspath(spec)
    if spec == "oracle":
        return OracleDetector()
    seed = perturbed_seed(spec)
    if seed is not None:
        return PerturbedOracleDetector(seed)
    if spec.startswith("tiny://"):
        if spec != TINY_GROUNDING_DINO:
            raise SpbenchError(f"unknown tiny detector {spec!r}: use {TINY_GROUNDING_DINO}")
        model, processor = build_tiny_grounding_dino()
        return GroundingDinoDetector(model, processor, spec, device=device, **kwargs)
    return GroundingDinoDetector.load(spec, device=device, **kwargs)


# -- the evaluator -------------------------------------------------------------------------------------

def box_iou(a, b) -> float:
    """IoU of two [x, y, w, h] boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class DetectionEvaluator(Evaluator):
    name = "det"

    def __init__(self, use_categories: bool = True, diagnostic: bool = False):
        self.use_categories = use_categories
        self.diagnostic = diagnostic  # scored by an oracle: a check of the metric, not a result
        self.reset()

    def reset(self) -> None:
        self._entries: list[dict] = []

    def update(self, sample: Sample, transform: CanvasTransform, k: int, detections: list[dict]) -> None:
        """Record image k of ``sample``: its GT boxes mapped to the canvas, and the detections
        (``{"category", "bbox": [x, y, w, h] in canvas pixels, "score"}``)."""
        gts = []
        for _, inst in scored_instances(sample):
            x, y, w, h = transform.bbox(inst.bbox)
            gts.append({"category": inst.category, "bbox": [x, y, w, h], "area": w * h})
        dets = []
        for d in detections:
            box = np.asarray(d["bbox"], dtype=np.float64)
            if box.shape != (4,) or not np.isfinite(box).all() or not np.isfinite(d["score"]):
                raise SpbenchError(f"sample {sample.sample_id} image {k}: a detection has box {d['bbox']!r} "
                                   f"and score {d['score']!r}; expected finite [x, y, w, h] and score")
            dets.append({"category": str(d["category"]), "bbox": box.tolist(), "score": float(d["score"])})
        self._entries.append({"sample_id": sample.sample_id, "k": int(k), "gts": gts, "dets": dets})

    def state(self) -> dict:
        return {"metric": self.name, "use_categories": self.use_categories, "entries": list(self._entries)}

    def merge(self, states: list[dict]) -> "DetectionEvaluator":
        for st in states:
            if st.get("use_categories") != self.use_categories:
                raise SpbenchError("cannot merge detection states with different use_categories")
            self._entries.extend(st["entries"])
        return self

    def _coco(self, entries: list[dict]):
        from pycocotools.coco import COCO

        cats = sorted({x["category"] for e in entries for x in e["gts"] + e["dets"]})
        cat_id = {c: j + 1 for j, c in enumerate(cats)}
        images, gts, dts = [], [], []
        for img_id, e in enumerate(entries, start=1):
            images.append({"id": img_id, "file_name": f"{e['sample_id']}_{e['k']}"})
            for g in e["gts"]:
                gts.append({"id": len(gts) + 1, "image_id": img_id, "category_id": cat_id[g["category"]],
                            "bbox": g["bbox"], "area": g["area"], "iscrowd": 0})
            for d in e["dets"]:
                dts.append({"image_id": img_id, "category_id": cat_id[d["category"]], "bbox": d["bbox"],
                            "score": d["score"]})
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": images, "annotations": gts,
                          "categories": [{"id": i, "name": c} for c, i in cat_id.items()]}
            gt.createIndex()
            dt = gt.loadRes(dts) if dts else None
        return gt, dt

    def _evaluate(self, gt, dt, img_ids: list[int], counts: dict) -> dict:
        out = {"AP75": None, "AP": None, "AP50": None, **counts}
        if counts["num_instances"] == 0:
            return out
        if dt is None:  # ground truth but not one detection anywhere: nothing found
            return {**out, "AP75": 0.0, "AP": 0.0, "AP50": 0.0}
        out.update(coco_ap(gt, dt, "bbox", img_ids, self.use_categories))
        return out

    def compute(self) -> dict:
        """``{"AP75", "AP", "AP50"`` (percent, all images pooled), ``"per_k": {"0": {...}}``,
        ``"mean_over_k", "std_over_k"`` (of AP75), counts``}``."""
        entries = unique_entries(self._entries)
        gt, dt = self._coco(entries) if entries else (None, None)
        ids_by_k: dict[int, list[int]] = {}
        for img_id, e in enumerate(entries, start=1):
            ids_by_k.setdefault(e["k"], []).append(img_id)

        def counts(ids):
            chosen = [entries[i - 1] for i in ids]
            return {"num_images": len(ids), "num_instances": sum(len(e["gts"]) for e in chosen),
                    "num_detections": sum(len(e["dets"]) for e in chosen)}

        all_ids = list(range(1, len(entries) + 1))
        result = self._evaluate(gt, dt, all_ids, counts(all_ids))
        result["per_k"] = {str(k): self._evaluate(gt, dt, ids, counts(ids)) for k, ids in sorted(ids_by_k.items())}
        result.update(spread_over_k(result["per_k"], "AP75"))
        result["use_categories"] = self.use_categories
        if self.diagnostic:
            result["diagnostic"] = True
        return result

    def records(self) -> list[dict]:
        """Per image: for each GT box, the best IoU with a detection of its category (and that
        detection's score); not COCOeval's matching."""
        out = []
        for e in unique_entries(self._entries):
            insts = []
            for g in e["gts"]:
                same = [d for d in e["dets"] if d["category"] == g["category"]]
                best = max(same, key=lambda d: box_iou(g["bbox"], d["bbox"]), default=None)
                insts.append({"category": g["category"], "bbox": g["bbox"],
                              "iou": box_iou(g["bbox"], best["bbox"]) if best else 0.0,
                              "score": best["score"] if best else None})
            out.append({"sample_id": e["sample_id"], "k": e["k"], "instances": insts, "num_detections": len(e["dets"])})
        return out


# -- scoring a run ----------------------------------------------------------------------------------------

def detection_settings(ctx) -> dict:
    ev = ctx.config.get("evaluation", {})
    threshold = ev.get("det_box_threshold")
    return {"box_threshold": float(0.0 if threshold is None else threshold),
            "batch_size": int(ev.get("det_batch_size") or 8)}


def score_detection(ctx, rows: list[dict], progress=None) -> DetectionEvaluator:
    """Grounding-DINO on every generated image, prompted per category of its sample."""
    settings = detection_settings(ctx)
    if not 0.0 <= settings["box_threshold"] < 1.0:
        raise SpbenchError(f"evaluation.det_box_threshold must be in [0, 1), got {settings['box_threshold']}")
    from spbench.results.models import is_diagnostic_model

    spec = ctx.config["models"].get("detector")
    diagnostic = is_diagnostic_model(spec)
    evaluator = DetectionEvaluator(diagnostic=diagnostic)
    evaluator.description = {
        "model": spec, "prompt": "per category of the sample's instances with a labelled keypoint: '<name>.' (lower case)",
        "frame": "canvas", "boxes": "ground truth of the instances with a labelled keypoint, mapped to the canvas",
        "score": "max sigmoid over the prompt's tokens (as post_process_grounded_object_detection)",
        "box_threshold": settings["box_threshold"],
        "max_detections": f"{MAX_DETECTIONS} per image and category (COCOeval maxDets)",
        "evaluation": "pycocotools COCOeval bbox, per-category AP averaged; headline AP.75",
        "spread": "mean and sample std (ddof=1) of AP75 over k",
    }
    if diagnostic:
        evaluator.description["diagnostic"] = True
    if not rows:
        return evaluator
    detector = load_detector(spec, device=ctx.device, **({} if diagnostic else settings))
    task = progress.add_task("scoring detection", total=len(rows)) if progress else None
    for batch, images in ctx.image_batches(rows, settings["batch_size"]):
        samples = [ctx.samples[r["sample_id"]] for r in batch]
        transforms = [CanvasTransform(**r["canvas"]) for r in batch]
        found = detector.predict(images, samples, transforms)
        for r, s, t, d in zip(batch, samples, transforms, found, strict=True):
            evaluator.update(s, t, r["k"], d)
        if progress:
            progress.advance(task, len(batch))
    return evaluator
