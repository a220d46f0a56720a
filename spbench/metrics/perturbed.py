"""Perturbed oracles: diagnostic scoring models whose answer is known and not trivial.

The oracles (``oracle``) return the ground truth and score 100 by construction, so they cannot
tell a right OKS sigma table, OKS area or scoring frame from a wrong one (OKS is 1 at zero
distance whatever the sigmas). The perturbed oracles return the ground truth moved by fixed,
seeded offsets proportional to each instance's box, so their AP lies strictly between 0 and 100
and moves when any of those definitions moves; ``results/expected/tiny-sample.yaml`` checks it.

Spec: ``perturbed-oracle`` (seed 0) or ``perturbed-oracle:SEED``, for ``--pose-model`` and
``models.detector``. A score from one is a diagnostic (``pose@perturbed-oracle``,
``pose@perturbed-oracle-4``; ``det`` flagged ``diagnostic``), never a result.

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


def jitter_box(box, fractions) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    a, b, c, d = (float(v) for v in fractions)
    return [x + a * w, y + b * h, w * (1 + c), h * (1 + d)]


class PerturbedOraclePoseModel:
    """The condition keypoints moved by seeded offsets proportional to their box, seeded scores."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = PERTURBED if self.seed == 0 else f"{PERTURBED}:{self.seed}"

    def _moved(self, sample, index: int, xy: np.ndarray, box) -> np.ndarray:
        _, _, w, h = box
        frac, score = keypoint_fractions(self.seed, sample.sample_id, index, len(xy))
        moved = xy + frac * np.array([w, h], dtype=np.float64)
        return np.concatenate([moved, np.full((len(xy), 1), score)], axis=1)

    def predict(self, images, samples, transforms):
        """Canvas frame: offsets scaled by the instance's canvas box."""
        from spbench.metrics.pose_models import _check_inputs

        _check_inputs(images, samples, transforms)
        return [[self._moved(s, j, t.points(inst.xy), t.bbox(inst.bbox)) for j, inst in enumerate(s.instances)]
                for s, t in zip(samples, transforms)]

    def predict_boxes(self, images, samples, boxes, settings):
        """Official protocol (original frame): offsets scaled by the instance's own box; None
        where the protocol gives no crop window."""
        from spbench.metrics.pose_models import _check_original_size

        _check_original_size(images, samples, boxes)
        return [[None if b is None else self._moved(s, j, inst.xy, inst.bbox)
                 for j, (inst, b) in enumerate(zip(s.instances, bs))] for s, bs in zip(samples, boxes)]


class PerturbedOracleDetector:
    """The ground-truth boxes on the canvas, jittered by seeded fractions of their size, seeded scores."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = PERTURBED if self.seed == 0 else f"{PERTURBED}:{self.seed}"

    def predict(self, images, samples, transforms) -> list[list[dict]]:
        from spbench.metrics.detection import _check_inputs, scored_instances

        _check_inputs(images, samples, transforms)
        out = []
        for s, t in zip(samples, transforms):
            found = []
            for j, inst in scored_instances(s):
                fractions, score = box_fractions(self.seed, s.sample_id, j)
                found.append({"category": inst.category, "bbox": jitter_box(t.bbox(inst.bbox), fractions), "score": score})
            out.append(found)
        return out
