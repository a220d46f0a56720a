"""Perturbed oracles: diagnostic scoring models whose answer is known and not trivial.

The oracles (``oracle``) return the ground truth and score 100 by construction, so they cannot
tell a right OKS sigma table, OKS area or scoring frame from a wrong one (OKS is 1 at zero
distance whatever the sigmas). The perturbed oracles return the ground truth moved by fixed,
seeded offsets proportional to each instance's box, so their AP lies strictly between 0 and 100
and moves when any of those definitions moves; ``results/expected/tiny-sample.yaml`` checks it.

Spec: ``perturbed-oracle`` (seed 0) or ``perturbed-oracle:SEED``, for ``--pose-model`` and
``models.detector``. A score from one is a diagnostic (``pose@perturbed-oracle``,
``pose@perturbed-oracle-4``; ``det`` flagged ``diagnostic``), never a result.

This module holds the spec and the seeded offsets; the models that apply them stand beside the
real ones: :class:`~spbench.metrics.pose_models.PerturbedOraclePoseModel` and
:class:`~spbench.metrics.detection_models.PerturbedOracleDetector`.

The offsets and scores depend only on (seed, sample id, instance index): not on the image, k,
batch or process. Each instance draws its own magnitude ``m``, as a fraction of its box, and its
own score ``s ~ U(0.3, 1)``, independent of ``m``:

- pose: ``m ~ U(0.01, 0.12)``; keypoint j moves by ``(ρ_j cos θ_j · w, ρ_j sin θ_j · h)`` with
  ``ρ_j ~ m · U(0.5, 1.5)``, ``θ_j ~ U(0, 2π)``, and (w, h) the instance's box in the frame the
  protocol predicts in (canvas box for ``predict``, original box for ``predict_boxes``); every
  keypoint scored ``s`` (so the detection score is ``s`` under either protocol's rescoring);
- boxes: ``m ~ U(0, 0.25)``; ``x += a·m·w, y += b·m·h, w *= 1 + c·m, h *= 1 + d·m`` with a, b, c, d
  ``~ U(-1, 1)``, on the canvas box; score ``s``.

Why scores that do not follow the error: COCO AP ranks detections by score, and a miss ranked
below every hit of its category changes no precision that counts. With all scores equal (the
file order decides) or with the best poses first, a false positive that an ignored ground truth
absorbs, or a match that a wrong sigma or frame loses, could never move AP; with scores
independent of the error, misses and hits interleave and AP answers to them, for most seeds (the
expected file's header says which seed it uses and why).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from spbench.errors import SpbenchError

PERTURBED = "perturbed-oracle"
POSE_MAGNITUDE = (0.01, 0.12)
BOX_MAGNITUDE = (0.0, 0.25)
SCORE_RANGE = (0.3, 1.0)  # above the 0.2 keypoint-score threshold of mmpose's rescoring
_POSE_STREAM, _BOX_STREAM = 1, 2


def perturbed_seed(spec) -> int | None:
    """The seed of a perturbed-oracle spec (``perturbed-oracle`` -> 0, ``perturbed-oracle:7`` ->
    7), None for any other spec; a malformed seed is an error."""
    if not isinstance(spec, str) or not (spec == PERTURBED or spec.startswith(PERTURBED + ":")):
        return None
    text = spec[len(PERTURBED) + 1:] if spec != PERTURBED else "0"
    if not (text.isascii() and text.isdigit()):
        raise SpbenchError(f"model {spec!r}: the perturbed oracle's seed must be a whole number >= 0, "
                           f"as in {PERTURBED}:3")
    return int(text)


def perturbed_name(seed: int) -> str:
    """The spec, and model name, of the perturbed oracle of ``seed``."""
    return PERTURBED if seed == 0 else f"{PERTURBED}:{seed}"


def is_perturbed(spec) -> bool:
    """Whether ``spec`` names a perturbed oracle (its seed is checked by :func:`perturbed_seed`)."""
    return isinstance(spec, str) and (spec == PERTURBED or spec.startswith(PERTURBED + ":"))


def _rng(seed: int, stream: int, sample_id: str, index: int) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, stream, key, index])


def keypoint_fractions(seed: int, sample_id: str, index: int, num_keypoints: int) -> tuple[np.ndarray, float]:
    """[K, 2] offsets of instance ``index`` of a sample, as fractions of its box (w, h), and its score."""
    rng = _rng(seed, _POSE_STREAM, sample_id, index)
    m = rng.uniform(*POSE_MAGNITUDE)
    rho = m * rng.uniform(0.5, 1.5, num_keypoints)
    theta = rng.uniform(0.0, 2 * math.pi, num_keypoints)
    score = rng.uniform(*SCORE_RANGE)
    return np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=1), float(score)


def box_fractions(seed: int, sample_id: str, index: int) -> tuple[np.ndarray, float]:
    """(a·m, b·m, c·m, d·m) of instance ``index`` of a sample (see the module doc), and its score."""
    rng = _rng(seed, _BOX_STREAM, sample_id, index)
    m = rng.uniform(*BOX_MAGNITUDE)
    fractions = m * rng.uniform(-1.0, 1.0, 4)
    return fractions, float(rng.uniform(*SCORE_RANGE))


def jitter_bbox(bbox, fractions) -> list[float]:
    """An [x, y, w, h] box moved and resized by (a·m, b·m, c·m, d·m) (see the module doc)."""
    x, y, w, h = (float(v) for v in bbox)
    a, b, c, d = (float(v) for v in fractions)
    return [x + a * w, y + b * h, w * (1 + c), h * (1 + d)]
