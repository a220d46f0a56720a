"""An offline CLIP tokenizer for tiny models.

The real SD1.5 tokenizer (49,408 BPE tokens) cannot be downloaded here, so tiny profiles use a
CLIPTokenizer with the same pre-tokenisation (lower-case, byte-level, ``</w>`` word ends) and a
small vocabulary: every single byte, plus whole-word merges for the words of the benchmark's
prompts. Words outside that list fall back to byte-level pieces, as with any BPE.
"""

from __future__ import annotations

import re

# Words that get whole-word tokens: the prompt templates, scenes, species, keypoint words.
TINY_WORDS = """
a an the of in on is are there some several this photo good close clear stands lying severl
grass savanna forest shrub mud rock snowfield zoo human habitation swamp riverside desert gobi
mugshot dark wild and with person man woman dancing dance cartoon painting sculpture statue
dog cat horse zebra cow sheep bear lion tiger deer antelope monkey elephant giraffe fox wolf
rabbit squirrel otter panda leopard cheetah bison rhino hippo buffalo
left right eye nose neck root tail shoulder elbow front back paw hip knee ear wrist ankle
""".split()

SPECIAL_BOS = "<|startoftext|>"
SPECIAL_EOS = "<|endoftext|>"


def small_bert_vocab(words=TINY_WORDS) -> list[str]:
    """A small BERT WordPiece vocabulary for Grounding-DINO's text tower offline (bert-base-uncased's
    30,522-word vocab.txt ships with no installed package): BERT's specials, ".", ",", the letters,
    their "##" word pieces and ``words`` whole. Any lower-case word tokenizes; the ids are not
    bert-base-uncased's."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *letters, *("##" + c for c in letters),
            *dict.fromkeys(words)]


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


def build_vocab_and_merges(words=TINY_WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merge rules that turn each word of ``words`` into one token.

    A word "paw" becomes the merges ("p", "a") -> "pa", ("pa", "w</w>") -> "paw</w>": merged left
    to right, the last character carrying the end-of-word suffix, as CLIP's BPE does.
    """
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    seen = set(tokens)
    for word in dict.fromkeys(w.lower() for w in words if re.fullmatch(r"[a-z]+", w.lower())):
        if len(word) < 2:
            continue
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + "</w>" if i == len(word) - 1 else ch
            merged = left + right
            if merged not in seen:
                merges.append((left, right))
                tokens.append(merged)
                seen.add(merged)
            left = merged
    tokens += [SPECIAL_BOS, SPECIAL_EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def build_tiny_tokenizer(extra_words=()):
    from transformers import CLIPTokenizer

    words = [w.lower() for w in list(TINY_WORDS) + list(extra_words) if re.fullmatch(r"[a-z]+", w.lower())]
    vocab, merges = build_vocab_and_merges(words)
    # BPE applies merges by rank across the whole word, so one word's chain can be pre-empted by
    # another's earlier merge ("an" inside "man"). Join such leftover pieces with merges ranked
    # last: they only fire once no earlier merge applies, so words already whole stay whole.
    for _ in range(4):
        tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
        split = [tokenizer.tokenize(w) for w in words]
        split = [pieces for pieces in split if len(pieces) > 1]
        if not split:
            break
        known = set(merges)
        for pieces in split:
            left = pieces[0]
            for right in pieces[1:]:
                if (left, right) not in known:
                    merges.append((left, right))
                    known.add((left, right))
                vocab.setdefault(left + right, len(vocab))
                left += right
        # Special tokens stay last in the vocabulary, as in CLIP's.
        for special in (SPECIAL_BOS, SPECIAL_EOS):
            vocab[special] = vocab.pop(special)
        vocab = {token: i for i, token in enumerate(vocab)}
    return tokenizer
