"""The real-size builders' CLIP tokenizer is CLIP's: written as the hub holds it (vocab.json +
merges.txt), loaded with ``CLIPTokenizer.from_pretrained``, 49,408 tokens, and the same ids as
open_clip's own tokenizer. (The real-size models themselves: ``tests/test_real_layouts.py``, slow.)"""

from __future__ import annotations

import pytest

from spbench.models.real_size import CLIP_VOCAB_SIZE, clip_tokenizer

PROMPTS = [
    "a photo of a zebra standing in the savanna",
    "There are several dogs; left_eye, right-knee!!",
    "Ünïcödé café 東京 😀 antelope's tails",
    "a photo of a person dancing with [left shoulder] and <right wrist>",
    "hello   world 123456",
]


def test_clip_tokenizer_is_clips(tmp_path):
    simple = pytest.importorskip("open_clip.tokenizer").SimpleTokenizer()
    tokenizer = clip_tokenizer(tmp_path / "tokenizer")
    assert {p.name for p in (tmp_path / "tokenizer").iterdir()} == {
        "vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}
    assert len(tokenizer) == CLIP_VOCAB_SIZE == len(simple.encoder)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    for prompt in PROMPTS:
        expected = [simple.encoder["<start_of_text>"], *simple.encode(prompt), simple.encoder["<end_of_text>"]]
        assert tokenizer(prompt)["input_ids"] == expected, prompt
    assert tokenizer("a photo of")["input_ids"] == [49406, 320, 1125, 539, 49407]  # CLIP's published ids
