"""Keypoint tokens during training (KCL, textual-inversion style).

The tokens, their initialisation and the prompt format are :mod:`spbench.models.keypoint_tokens`'
(the same code generation uses). Here: only those rows train — :class:`FrozenRows` puts every
other row back after each optimiser step (AdamW's weight decay and momentum would otherwise move
them too) — and the rows are written to / read back from a checkpoint's ``learned_embeds.bin``.
"""

from __future__ import annotations

import torch


class FrozenRows:
    """Keeps every embedding row except ``trainable_ids`` at its value when constructed."""

    def __init__(self, embedding: torch.nn.Embedding, trainable_ids: list[int]):
        self.embedding = embedding
        self.frozen = torch.ones(embedding.weight.shape[0], dtype=torch.bool, device=embedding.weight.device)
        self.frozen[list(trainable_ids)] = False
        self.original = embedding.weight.detach()[self.frozen].clone()

    @torch.no_grad()
    def restore(self) -> None:
        self.embedding.weight[self.frozen] = self.original.to(self.embedding.weight.dtype)


def save_rows(path, tokenizer, text_encoder, schema) -> None:
    """The keypoint rows as the official ``learned_embeds.bin``, written atomically."""
    import io

    from spbench.files import atomic_write_bytes

    weight = text_encoder.get_input_embeddings().weight
    ids = tokenizer.convert_tokens_to_ids(list(schema.tokens))
    buf = io.BytesIO()
    torch.save({t: weight[i].detach().float().cpu().clone() for t, i in zip(schema.tokens, ids)}, buf)
    atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def load_rows(path, tokenizer, text_encoder, schema) -> None:
    """Overwrite the keypoint rows with a ``learned_embeds.bin`` (the tokens exist already)."""
    from spbench.models.keypoint_tokens import load_learned_embeds

    weight = text_encoder.get_input_embeddings().weight
    learned = load_learned_embeds(path, schema, weight.shape[1])
    for token, tid in zip(schema.tokens, tokenizer.convert_tokens_to_ids(list(schema.tokens))):
        weight[tid] = learned[token].to(weight)
