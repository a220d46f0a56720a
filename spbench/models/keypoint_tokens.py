"""Keypoint Concept Learning (KCL) at inference: keypoint tokens in the tokenizer, the text
encoder and the prompt.

One token per schema keypoint (``<left-front-paw>``) is added to the CLIP tokenizer; its
embedding row starts as the embedding of the keypoint word ("paw"; the mean of its pieces when
the tokenizer splits it), as in textual inversion, or comes from a trained ``learned_embeds.bin``
(``torch.save`` of ``{token: tensor[dim]}``). The prompt is built the official way
(:func:`keypoint_prompt`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from spbench.data.records import KPT_PLACEHOLDER, Sample
from spbench.errors import SpbenchError
from spbench.schemas import KeypointSchema, get_schema

LEARNED_EMBEDS = "learned_embeds.bin"


def add_keypoint_tokens(tokenizer, text_encoder, schema: KeypointSchema, learned: dict | None = None) -> list[int]:
    """Add ``schema.tokens`` to ``tokenizer`` (and, if given, rows to ``text_encoder``); returns
    their ids in keypoint order. Tokens already present are left as they are, so calling it twice
    adds nothing and keeps trained rows. New rows: ``learned[token]``, else the init word's embedding."""
    vocab = tokenizer.get_vocab()
    new = [t for t in schema.tokens if t not in vocab]
    if new:
        tokenizer.add_tokens(new)
    ids = tokenizer.convert_tokens_to_ids(list(schema.tokens))
    if text_encoder is None or not new:
        return ids
    embeddings = text_encoder.get_input_embeddings()
    if embeddings.weight.shape[0] < len(tokenizer):
        # Rows are set below, so diffusers-style mean initialisation would be wasted work.
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = text_encoder.get_input_embeddings()
    with torch.no_grad():
        for token, word, token_id in zip(schema.tokens, schema.init_words, ids):
            if token not in new:
                continue
            row = learned[token] if learned else init_word_embedding(tokenizer, embeddings.weight, word)
            embeddings.weight[token_id] = row.to(embeddings.weight)
    return ids


def init_word_embedding(tokenizer, weight: torch.Tensor, word: str) -> torch.Tensor:
    """The embedding of ``word``: its token's row, or the mean of its pieces' rows."""
    pieces = tokenizer.encode(word, add_special_tokens=False)
    return weight[pieces].mean(dim=0)


def load_learned_embeds(path: str | os.PathLike, schema: KeypointSchema, dim: int) -> dict[str, torch.Tensor]:
    """Read ``{token: tensor[dim]}`` (weights only) and check it holds exactly the schema's tokens."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refuses non-tensor content with several exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpbenchError(f"cannot read keypoint-token embeddings {path}: {first} — expected torch.save of {{token: tensor[{dim}]}}") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpbenchError(f"keypoint-token embeddings {path}: expected a dict {{token: tensor[{dim}]}}, got {type(data).__name__}")
    missing = [t for t in schema.tokens if t not in data]
    extra = sorted(set(data) - set(schema.tokens))
    if missing or extra:
        raise SpbenchError(
            f"keypoint-token embeddings {path} do not match the {schema.name} keypoints: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'} — use the learned_embeds.bin trained for this dataset's keypoints")
    wrong = {t: tuple(v.shape) for t, v in data.items() if v.reshape(-1).shape[0] != dim or v.ndim > 2}
    if wrong:
        token, shape = next(iter(wrong.items()))
        raise SpbenchError(f"keypoint-token embeddings {path}: {token} has shape {shape} but the text encoder's width is {dim} — the file belongs to another base model")
    return {t: data[t].reshape(dim).float() for t in schema.tokens}


def save_learned_embeds(path: str | os.PathLike, tokenizer, text_encoder, schema: KeypointSchema) -> None:
    """Write the keypoint rows as the official ``learned_embeds.bin``."""
    weight = text_encoder.get_input_embeddings().weight
    ids = tokenizer.convert_tokens_to_ids(list(schema.tokens))
    torch.save({t: weight[i].detach().float().cpu().clone() for t, i in zip(schema.tokens, ids)}, path)


def visible_keypoints(sample: Sample) -> list[bool]:
    """Per schema keypoint: labelled (v >= 1) in at least one instance."""
    n = get_schema(sample.schema).num_keypoints
    return [any(inst.keypoints[k][2] >= 1 for inst in sample.instances) for k in range(n)]


def keypoint_prompt(sample: Sample) -> str:
    """The official KCL prompt: the template's ``<KPT>`` becomes ``"<" + ", ".join(tokens of the
    visible keypoints) + ">"``, with one space before it where the template has none. That gives
    both official strings: AP-10K's ``"A photo of dog <<left-eye>, <nose>> in the grass"`` (its
    code inserts ``" <" + … + ">"`` right after the species) and Human-Art's training prompt
    ``"caption. <<nose>, <left-eye>>"`` (its code appends ``"<" + … + ">"`` to ``"caption. "``).
    With no visible keypoint the placeholder is removed (AP-10K's code would leave ``" <>"``)."""
    tokens = [t for t, seen in zip(get_schema(sample.schema).tokens, visible_keypoints(sample)) if seen]
    template = sample.prompt_template
    text = "<" + ", ".join(tokens) + ">" if tokens else ""
    at = template.find(KPT_PLACEHOLDER)
    if text and at > 0 and not template[at - 1].isspace():
        text = " " + text
    return template.replace(KPT_PLACEHOLDER, text).strip()


def prompt_length(tokenizer, prompt: str) -> tuple[int, bool]:
    """(tokens including start and end, longer than the tokenizer's limit — 77 for CLIP)."""
    n = len(tokenizer(prompt, truncation=False).input_ids)
    return n, n > tokenizer.model_max_length


def keypoint_name_embeddings(tokenizer, text_encoder, schema: KeypointSchema) -> torch.Tensor:
    """[K, D] pooled CLIP text embeddings of the keypoint names ("left front paw"): SPR's
    text-initialised E0, as the official script computes it."""
    inputs = tokenizer(list(schema.descriptions), padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(input_ids=inputs.input_ids.to(text_encoder.device)).pooler_output.float().cpu()


class KeypointPrompts:
    """What a method needs for KCL at inference: prompts with keypoint tokens, the tokens in the
    tokenizer and text encoder, and prompt-length facts for the manifest (without the big models)."""

    def __init__(self, schema: str, base: str, learned_path: str | None = None, enabled: bool = True):
        self.schema = get_schema(schema)
        self.base = base
        self.learned_path = learned_path
        self.enabled = enabled
        self._tokenizer = None
        self._warned: set[str] = set()

    @property
    def tokenizer(self):
        """The base model's tokenizer (only the tokenizer is loaded until :meth:`attach`)."""
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer(self.base)
            if self.enabled:
                add_keypoint_tokens(self._tokenizer, None, self.schema)
        return self._tokenizer

    def attach(self, tokenizer, text_encoder) -> None:
        """Add the tokens to the loaded tokenizer and text encoder (learned rows if a file is set)."""
        if self.enabled:
            dim = text_encoder.get_input_embeddings().weight.shape[1]
            learned = load_learned_embeds(self.learned_path, self.schema, dim) if self.learned_path else None
            add_keypoint_tokens(tokenizer, text_encoder, self.schema, learned)
        self._tokenizer = tokenizer

    def prompt(self, sample: Sample) -> str:
        if sample.schema != self.schema.name:
            raise SpbenchError(f"sample {sample.sample_id} uses keypoint schema {sample.schema!r} but this run's keypoint tokens are {self.schema.name!r}'s: set --set method.options.schema={sample.schema}")
        text = keypoint_prompt(sample) if self.enabled else sample.prompt
        n, truncated = prompt_length(self.tokenizer, text)
        if truncated and sample.sample_id not in self._warned:
            self._warned.add(sample.sample_id)
            warnings.warn(f"prompt of {sample.sample_id} has {n} tokens; CLIP keeps the first {self.tokenizer.model_max_length} (manifest: prompt_truncated)", stacklevel=2)
        return text

    def manifest_fields(self, sample: Sample) -> dict:
        n, truncated = prompt_length(self.tokenizer, self.prompt(sample))
        return {"prompt_tokens": n, "prompt_truncated": truncated}

    def identity(self) -> dict:
        if not self.enabled:
            return {"keypoint_tokens": "off"}
        rows = self.learned_path or "initialised from the keypoint words (untrained)"
        return {"keypoint_tokens": {"schema": self.schema.name, "embeddings": str(rows)}}


def default_learned_path(folder: str | os.PathLike | None) -> str | None:
    """The ``learned_embeds.bin`` of a checkpoint folder: inside it (a final ``save_pretrained``
    and spbench's own checkpoints), else beside it in the parent — the official training writes
    ``checkpoint-N/controlnet/`` and ``checkpoint-N/learned_embeds.bin``, and the official
    inference reads ``controlnet_path/../learned_embeds.bin``."""
    if not folder or not Path(folder).is_dir():
        return None
    for candidate in (Path(folder, LEARNED_EMBEDS), Path(folder).resolve().parent / LEARNED_EMBEDS):
        if candidate.is_file():
            return str(candidate)
    return None


def require_learned_path(learned: str | None, checkpoint: str | None, allow_untrained: bool, method: str) -> None:
    """A trained checkpoint runs with trained keypoint-token rows, or not at all: the word-initialised
    rows would silently score another model. Runs without a checkpoint (training's starting point,
    tiny machinery checks) keep the word rows; ``method.options.allow_untrained_tokens`` lets a
    checkpoint run with them on purpose."""
    if learned is not None or checkpoint is None or allow_untrained:
        return
    raise SpbenchError(
        f"checkpoint {checkpoint} has no {LEARNED_EMBEDS} (looked in the folder and its parent): {method} needs its "
        f"trained keypoint tokens — pass the file with --set method.options.learned_embeds=FILE, or run with "
        f"untrained tokens on purpose with --set method.options.allow_untrained_tokens=true"
    )


def _load_tokenizer(base: str):
    from spbench.models.stable_diffusion import is_tiny

    if is_tiny(base):
        from spbench.models.tiny_tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import CLIPTokenizer

    from spbench.models.hub import load_pretrained

    return load_pretrained(CLIPTokenizer, base, role="Stable Diffusion tokenizer", setting="models.base", subfolder="tokenizer")
