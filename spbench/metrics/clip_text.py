"""The text CLIP-Score compares an image with (``evaluation.clip_text``): ``descriptions`` (the
paper's) is the manifest prompt with every keypoint token replaced by its description
(``<left-eye>`` -> ``left eye``, so SP-Ctrl's `` <<left-eye>, <nose>>`` reads
`` <left eye, nose>``, the official prompt built without tokens); ``tokens`` the manifest prompt
verbatim; ``caption`` the sample's prompt without any keypoint part (what the baselines are given)."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.schemas import KeypointSchema

TEXT_RULES = ("descriptions", "tokens", "caption")
TEXT_WORDS = {"descriptions": "manifest prompt, keypoint tokens replaced by their descriptions",
              "tokens": "manifest prompt verbatim", "caption": "the sample's caption without keypoints"}


def check_text_rule(rule: str) -> None:
    if rule not in TEXT_RULES:
        raise SpbenchError(f"unknown evaluation.clip_text {rule!r}: use one of {', '.join(TEXT_RULES)}")


def clip_text(prompt: str, schema: KeypointSchema, rule: str = "descriptions", caption: str | None = None) -> str:
    """The text CLIP scores for a manifest prompt (see the module doc for the rules)."""
    if rule == "tokens":
        return prompt
    if rule == "caption":
        if caption is None:
            raise SpbenchError("clip text rule 'caption' needs the sample's caption")
        return caption
    check_text_rule(rule)
    for token, description in zip(schema.tokens, schema.descriptions):
        prompt = prompt.replace(token, description)
    return prompt
