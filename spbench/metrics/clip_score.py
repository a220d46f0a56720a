"""CLIP-Score (paper §4.1): ``100 · max(cos(image, text), 0)`` with CLIP ViT-L/14, averaged per
category, then over categories.

Conventions (recorded in the result's ``evaluation.clip``):
- text (``evaluation.clip_text``): ``descriptions`` (default, the paper's) scores the manifest
  prompt with every keypoint token replaced by its description (``<left-eye>`` -> ``left eye``,
  so SP-Ctrl's `` <<left-eye>, <nose>>`` reads `` <left eye, nose>``, the official prompt built
  without tokens); ``tokens`` scores the manifest prompt verbatim; ``caption`` scores the
  sample's prompt without any keypoint part (what the baselines are given);
- texts longer than CLIP's 77-token context are truncated by the tokenizer (keeping the end
  token) and counted in ``num_truncated_texts``;
- images: CLIP's own processor (ViT-L/14: shortest side to 224, bicubic, centre crop 224);
- grouping (``evaluation.clip_group_by``): ``auto`` (default) is the species (the first
  instance's category) for AP-10K and the scene for Human-Art (whose images are labelled by
  scene: its JSON calls that field ``category``; every instance is a ``person``); ``category``,
  ``scene`` and ``none`` (one group: the plain mean) can be set explicitly;
- per k and over all k pooled; spread: mean and sample std of the score over k.
"""

from __future__ import annotations

import statistics

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k, unique_entries
from spbench.schemas import KeypointSchema, get_schema

TEXT_RULES = ("descriptions", "tokens", "caption")
TEXT_WORDS = {"descriptions": "manifest prompt, keypoint tokens replaced by their descriptions",
              "tokens": "manifest prompt verbatim", "caption": "the sample's caption without keypoints"}
GROUP_RULES = ("auto", "category", "scene", "none")
GROUP_WORDS = {"category": "the sample's first instance category (AP-10K: species)",
               "scene": "the sample's scene (Human-Art's image category)", "none": "one group: the plain mean"}
TINY_CLIP = "tiny://clip"
CONTEXT_LENGTH = 77  # CLIP's text context


def clip_text(prompt: str, schema: KeypointSchema, rule: str = "descriptions", caption: str | None = None) -> str:
    """The text CLIP scores for a manifest prompt (see the module doc for the rules)."""
    if rule == "tokens":
        return prompt
    if rule == "caption":
        if caption is None:
            raise SpbenchError("clip text rule 'caption' needs the sample's caption")
        return caption
    if rule != "descriptions":
        raise SpbenchError(f"unknown evaluation.clip_text {rule!r}: use one of {', '.join(TEXT_RULES)}")
    for token, description in zip(schema.tokens, schema.descriptions):
        prompt = prompt.replace(token, description)
    return prompt


def resolve_group_by(rule: str, schema_name: str) -> str:
    if rule not in GROUP_RULES:
        raise SpbenchError(f"unknown evaluation.clip_group_by {rule!r}: use one of {', '.join(GROUP_RULES)}")
    if rule == "auto":
        return "scene" if schema_name == "coco17" else "category"
    return rule


def group_of(sample, group_by: str) -> str:
    if group_by == "category":
        return sample.categories[0] if sample.categories else ""
    if group_by == "scene":
        return sample.scene
    return "all"


def clip_score_value(cosine: float) -> float:
    return 100.0 * max(float(cosine), 0.0)


class ClipScoreEvaluator(Evaluator):
    name = "clip"

    def __init__(self, group_by: str = "category"):
        self.group_by = group_by
        self.reset()

    def reset(self) -> None:
        self._entries: list[dict] = []

    def update(self, sample_id: str, k: int, group: str, cosine: float, text: str = "",
               truncated: bool = False) -> None:
        """Record image k of a sample: its group and the cosine of its image and text features."""
        self._entries.append({"sample_id": sample_id, "k": int(k), "group": str(group), "cosine": float(cosine),
                              "text": text, "truncated": bool(truncated)})

    def state(self) -> dict:
        return {"metric": self.name, "group_by": self.group_by, "entries": list(self._entries)}

    def merge(self, states: list[dict]) -> "ClipScoreEvaluator":
        for st in states:
            if st.get("group_by") != self.group_by:
                raise SpbenchError(f"cannot merge CLIP states grouped by {st.get('group_by')!r} into {self.group_by!r}")
            self._entries.extend(st["entries"])
        return self

    @staticmethod
    def _aggregate(entries: list[dict]) -> dict:
        groups: dict[str, list[float]] = {}
        for e in entries:
            groups.setdefault(e["group"], []).append(clip_score_value(e["cosine"]))
        per_group = {g: {"score": statistics.fmean(v), "num_images": len(v)} for g, v in sorted(groups.items())}
        return {
            "score": statistics.fmean(g["score"] for g in per_group.values()) if per_group else None,
            "score_image_mean": statistics.fmean(v for vs in groups.values() for v in vs) if groups else None,
            "num_images": len(entries),
            "num_categories": len(per_group),
            "per_category": per_group,
        }

    def compute(self) -> dict:
        """``{"score", "per_k": {"0": {"score", ...}}, "mean_over_k", "std_over_k", "per_category", ...}``;
        ``score`` is category-averaged, ``score_image_mean`` the plain mean over images."""
        entries = unique_entries(self._entries)
        result = self._aggregate(entries)
        by_k: dict[int, list[dict]] = {}
        for e in entries:
            by_k.setdefault(e["k"], []).append(e)
        result["per_k"] = {str(k): self._aggregate(by_k[k]) for k in sorted(by_k)}
        for v in result["per_k"].values():
            v.pop("per_category")
        result.update(spread_over_k(result["per_k"], "score"))
        result["group_by"] = self.group_by
        result["num_truncated_texts"] = sum(e["truncated"] for e in entries)
        return result

    def records(self) -> list[dict]:
        return [{"sample_id": e["sample_id"], "k": e["k"], "category": e["group"],
                 "score": clip_score_value(e["cosine"]), "cosine": e["cosine"], "text": e["text"],
                 "truncated": e["truncated"]} for e in unique_entries(self._entries)]


# -- the model ------------------------------------------------------------------------------------

class ClipScorer:
    """A transformers ``CLIPModel`` and its ``CLIPProcessor``: cosines of image and text features."""

    def __init__(self, model, processor, name: str, device: str = "cpu", batch_size: int = 32):
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_length = min(CONTEXT_LENGTH, int(model.config.text_config.max_position_embeddings))

    @classmethod
    def load(cls, spec: str, device: str = "cpu", batch_size: int = 32) -> "ClipScorer":
        if spec is None:
            raise SpbenchError("no CLIP model configured: set models.clip (e.g. openai/clip-vit-large-patch14)")
        if str(spec).startswith("tiny://"):
            if spec != TINY_CLIP:
                raise SpbenchError(f"unknown tiny CLIP {spec!r}: use {TINY_CLIP}")
            model, processor = build_tiny_clip()
        else:
            from transformers import CLIPModel, CLIPProcessor

            from spbench.models.hub import load_pretrained

            model = load_pretrained(CLIPModel, spec, role="CLIP model", setting="models.clip")
            processor = load_pretrained(CLIPProcessor, spec, role="CLIP model", setting="models.clip")
        return cls(model, processor, str(spec), device, batch_size)

    def cosines(self, images: list, texts: list[str]) -> tuple[list[float], list[bool]]:
        """Cosine similarity of each image with its text, and whether the text was truncated."""
        import torch

        if len(images) != len(texts):
            raise SpbenchError(f"CLIP-Score got {len(images)} images and {len(texts)} texts")
        cos, truncated = [], []
        for i in range(0, len(images), self.batch_size):
            imgs, txts = images[i:i + self.batch_size], texts[i:i + self.batch_size]
            lengths = [len(ids) for ids in self.processor.tokenizer(txts, verbose=False)["input_ids"]]
            truncated += [n > self.max_length for n in lengths]
            pixels = self.processor(images=imgs, return_tensors="pt")["pixel_values"]
            tokens = self.processor(text=txts, return_tensors="pt", padding=True, truncation=True,
                                    max_length=self.max_length)
            with torch.inference_mode():
                img = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
                txt = _features(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                             attention_mask=tokens["attention_mask"].to(self.device)))
            img = img.float() / img.float().norm(dim=-1, keepdim=True)
            txt = txt.float() / txt.float().norm(dim=-1, keepdim=True)
            cos += (img * txt).sum(-1).cpu().tolist()
        return cos, truncated


def _features(out):
    # transformers 5 returns a model output whose pooler_output is the projected feature; 4.x a tensor.
    import torch

    return out if torch.is_tensor(out) else out.pooler_output


def build_tiny_clip(seed: int = 0):
    """A tiny random CLIP (ViT 32 px / patch 8, 2-layer text and vision towers, 16-d projection)
    with the offline tiny tokenizer and OpenAI's image normalisation, built offline."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    return model, processor


# -- scoring a run ----------------------------------------------------------------------------------

def clip_settings(ctx) -> dict:
    ev = ctx.config.get("evaluation", {})
    return {
        "text": ctx.overrides.get("clip_text") or ev.get("clip_text") or "descriptions",
        "group_by": ctx.overrides.get("clip_group_by") or ev.get("clip_group_by") or "auto",
        "batch_size": int(ev.get("clip_batch_size") or 32),
    }


def score_clip(ctx, rows: list[dict], progress=None) -> ClipScoreEvaluator:
    """CLIP-Score of every generated image against its (keypoint-described) prompt."""
    settings = clip_settings(ctx)
    schema_name = next(iter(ctx.samples.values())).schema
    schema = get_schema(schema_name)
    if settings["text"] not in TEXT_RULES:
        raise SpbenchError(f"unknown evaluation.clip_text {settings['text']!r}: use one of {', '.join(TEXT_RULES)}")
    group_by = resolve_group_by(settings["group_by"], schema_name)
    spec = ctx.config["models"].get("clip")
    evaluator = ClipScoreEvaluator(group_by)
    evaluator.description = {
        "model": spec,
        "score": "100 * max(cos(image, text), 0) per image; mean per category, then over categories",
        "text": TEXT_WORDS[settings["text"]],
        "truncation": f"texts truncated to {CONTEXT_LENGTH} tokens by the CLIP tokenizer",
        "category": GROUP_WORDS[group_by] + (" (clip_group_by auto)" if settings["group_by"] == "auto" else ""),
        "images": "generated canvas images through CLIP's own image processor",
        "spread": "mean and sample std (ddof=1) of the score over k",
    }
    if not rows:
        return evaluator
    scorer = ClipScorer.load(spec, device=ctx.device, batch_size=settings["batch_size"])
    task = progress.add_task("scoring CLIP", total=len(rows)) if progress else None
    for batch, images in ctx.image_batches(rows, settings["batch_size"]):
        samples = [ctx.samples[r["sample_id"]] for r in batch]
        texts = [clip_text(r["prompt"], schema, settings["text"], s.prompt) for r, s in zip(batch, samples)]
        cos, truncated = scorer.cosines(images, texts)
        for r, s, t, c, cut in zip(batch, samples, texts, cos, truncated, strict=True):
            evaluator.update(r["sample_id"], r["k"], group_of(s, group_by), c, t, cut)
        if progress:
            progress.advance(task, len(batch))
    return evaluator
