"""Tiny text towers for the tiny SDXL / SD3 / FLUX models, built offline with fixed seeds.

SDXL, SD3 and FLUX read prompts with CLIP text encoders (CLIP-L, and CLIP-G for SDXL and SD3)
and, for SD3 and FLUX, a T5 encoder. Their real tokenizers cannot be downloaded here, so the
tiny models use spbench's offline CLIP tokenizer (:mod:`spbench.models.tiny_tokenizer`) and the
T5 tokenizer below: a T5TokenizerFast around a ``tokenizers`` Unigram model with T5's special
tokens (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2), T5's Metaspace pre-tokenisation and its ``</s>``
after every text, whose vocabulary is the benchmark's prompt words, letters and digits. It is
built in-process, so it works with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import string

import torch

from spbench.models.tiny_tokenizer import TINY_WORDS

T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # T5's ids 0, 1, 2


def build_tiny_t5_tokenizer(extra_words=(), model_max_length: int = 512):
    """A T5TokenizerFast with a small Unigram vocabulary (whole prompt words, else characters)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import Unigram
    from transformers import T5TokenizerFast

    words = list(dict.fromkeys(w for w in [*TINY_WORDS, *extra_words] if w.isalpha()))
    # Unigram scores are log-probabilities: whole words score above the sum of their characters,
    # so a known word stays one token; anything else falls back to single characters.
    vocab = [(s, 0.0) for s in T5_SPECIALS] + [("▁", -2.0)]
    vocab += [("▁" + w, -1.0) for w in words]
    vocab += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    vocab += [("▁" + c, -3.0) for c in string.ascii_letters + string.digits]
    backend = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # T5TokenizerFast adds T5's "</s>" after each text (its post-processor) and keeps this backend.
    return T5TokenizerFast(tokenizer_object=backend, extra_ids=0, model_max_length=model_max_length,
                           eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def tiny_clip_text_encoder(tokenizer, seed: int, hidden: int = 32, projection: bool = False, layers: int = 2):
    """A CLIP text encoder (``CLIPTextModelWithProjection`` when ``projection``: its pooled output
    is projected, as CLIP-G's in SDXL and both CLIPs' in SD3) sized for ``tokenizer``."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=hidden,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)
    return model.requires_grad_(False).eval()


def tiny_t5_encoder(tokenizer, seed: int, d_model: int = 32, layers: int = 2):
    """A T5 encoder (T5 v1.1's gated-GELU feed-forward, as SD3's and FLUX's T5-XXL) for ``tokenizer``."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=layers,
        num_heads=4, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    return model.requires_grad_(False).eval()


def wake_zero_initialised(model: torch.nn.Module, seed: int, prefixes: tuple[str, ...],
                          scale: float = 0.05) -> torch.nn.Module:
    """Give a freshly built ControlNet's zero-initialised layers (the all-zero parameters under
    ``prefixes``) small random values (seeded).

    diffusers builds every ControlNet with its output projections set to zero, as training starts,
    so an untrained one does not change the base model's output and its condition would play no
    part in a tiny run. A trained checkpoint has non-zero values there; the tiny ones get random
    ones so that the condition reaches the image."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.startswith(prefixes) and p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model
