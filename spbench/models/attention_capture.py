"""Capture cross-attention probabilities of chosen layers: for KCL's heatmap loss (training) and for
the attention maps of `spbench attention`.

``capture_cross_attention(model, blocks, layer)`` swaps the processors of the ``layer`` attention
modules (``attn2``: cross-attention) under the named blocks for :class:`CaptureAttnProcessor`,
yields the :class:`AttentionStore` they write to, and puts the original processors back on exit.

The processor leaves the layer's output exactly as diffusers computes it (it calls
``AttnProcessor2_0``), and beside it records ``softmax(Q·Kᵀ/√d)`` with Q computed without
gradient: the heatmap loss then reaches the text tokens (through K) and the keys' projection,
never the image features through Q (the paper: otherwise appearance collapses).
Heads are averaged at capture time ([B, H'·W', 77]) to keep memory small.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from spbench.errors import SpbenchError


class AttentionStore:
    """Maps recorded while ``recording`` is on; ``take()`` hands them over and empties the store."""

    def __init__(self):
        self.maps: list[tuple[str, torch.Tensor]] = []
        self.recording = False

    @contextmanager
    def record(self):
        self.recording = True
        try:
            yield self
        finally:
            self.recording = False

    def take(self) -> list[torch.Tensor]:
        maps = [m for _, m in self.maps]
        self.maps.clear()
        return maps

    def clear(self) -> None:
        self.maps.clear()

    def __len__(self) -> int:
        return len(self.maps)


def _capture_processor_class():
    from diffusers.models.attention_processor import AttnProcessor2_0

    class CaptureAttnProcessor(AttnProcessor2_0):
        """diffusers' AttnProcessor2_0 that also records detached-query attention probabilities."""

        def __init__(self, store: AttentionStore, name: str):
            super().__init__()
            self.store = store
            self.name = name

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
            # Also computed (not kept) whenever autograd is on: gradient checkpointing re-runs this
            # forward during backward and must find the same operations as the first time.
            if encoder_hidden_states is not None and (self.store.recording or torch.is_grad_enabled()):
                probs = self.probabilities(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
                if self.store.recording:
                    self.store.maps.append((self.name, probs))
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

        @staticmethod
        def probabilities(attn, hidden_states, encoder_hidden_states, attention_mask=None, temb=None):
            """[B, H'W', T] head-averaged softmax(QKᵀ/√d), Q without gradient (same preprocessing
            as diffusers' processors: spatial norm, 4-D inputs, group norm, cross norm)."""
            if attn.spatial_norm is not None:
                hidden_states = attn.spatial_norm(hidden_states, temb)
            if hidden_states.ndim == 4:
                b, c, h, w = hidden_states.shape
                hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
            batch, tokens = encoder_hidden_states.shape[0], encoder_hidden_states.shape[1]
            if attention_mask is not None:
                attention_mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
            if attn.group_norm is not None:
                hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
            with torch.no_grad():  # Q detached: the loss must not reach the image features
                query = attn.head_to_batch_dim(attn.to_q(hidden_states))
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            key = attn.head_to_batch_dim(attn.to_k(context))
            probs = attn.get_attention_scores(query, key, attention_mask)  # [B·heads, HW, T]
            return probs.view(batch, attn.heads, probs.shape[1], probs.shape[2]).mean(dim=1)

    return CaptureAttnProcessor


def capture_processor(store: AttentionStore, name: str):
    return _capture_processor_class()(store, name)


def chosen_processors(processors: dict, blocks, layer: str) -> list[str]:
    """Keys of ``model.attn_processors`` (``down_blocks.2.attentions.0.transformer_blocks.0.attn2.processor``)
    whose module is named ``layer`` and sits under one of ``blocks``."""
    chosen = []
    for key in processors:
        module = key[: -len(".processor")] if key.endswith(".processor") else key
        if module.split(".")[-1] == layer and any(module.startswith(b.rstrip(".") + ".") for b in blocks):
            chosen.append(key)
    return chosen


def chosen_layers(model, blocks=("down_blocks.2",), layer: str = "attn2") -> list[str]:
    """The processor keys of ``model`` that the capture replaces; a one-line error when none."""
    if not hasattr(model, "attn_processors"):
        raise SpbenchError(f"{type(model).__name__} has no attention layers to read the keypoint tokens from: use --kcl-source unet")
    processors = model.attn_processors
    chosen = chosen_processors(processors, blocks, layer)
    if not chosen:
        names = sorted({".".join(k.split(".")[:2]) for k in processors if k.count(".") > 1})
        raise SpbenchError(
            f"no {layer!r} attention layers under {', '.join(blocks)} in {type(model).__name__}; "
            f"blocks with attention: {', '.join(names)}"
        )
    return chosen


@contextmanager
def capture_cross_attention(model, blocks=("down_blocks.2",), layer: str = "attn2"):
    """Install capturing processors on ``model``'s chosen layers; restore the originals on exit."""
    chosen = chosen_layers(model, blocks, layer)
    original = dict(model.attn_processors)
    store = AttentionStore()
    swapped = {k: (capture_processor(store, k[: -len(".processor")]) if k in chosen else p) for k, p in original.items()}
    model.set_attn_processor(swapped)
    try:
        yield store
    finally:
        model.set_attn_processor(dict(original))
        store.clear()
