"""FID (paper §4.1) between the generated images and the real images of the split: the metric,
its evaluator. Per k and over all k pooled; spread: mean and sample std of FID over k.

The parts, each recorded in the result's ``evaluation.fid``:
- the extractor and its resize to 299×299 (``models.inception``, ``evaluation.fid_resize``):
  :mod:`spbench.metrics.fid_inception`;
- the streamed statistics (float64 sums of features and of their outer products, and counts,
  per k) and the Fréchet distance: :mod:`spbench.metrics.fid_moments`;
- the reference statistics of the split's real images on the canvas, and their cache:
  :mod:`spbench.metrics.fid_reference`;
- scoring a run (generated images as written, canvas size): :mod:`spbench.metrics.fid_scoring`;
- each generated image's features too (float32, as the extractor gives them), so that the
  bootstrap interval over prompts can recompute FID on resampled prompts
  (:class:`spbench.metrics.bootstrap.FidResampler`).
"""

from __future__ import annotations

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k
from spbench.metrics.fid_moments import Moments, _pack, _unpack, frechet_distance


class FidEvaluator(Evaluator):
    """FID has no per-image value: its records list the images that entered it. Besides the
    moments it keeps each image's features (float32), which the bootstrap resamples."""

    name = "fid"
    sums_images = True  # per-k feature moments

    def __init__(self, extractor: str, num_features: int):
        self.extractor = extractor
        self.num_features = int(num_features)
        super().__init__(extractor=extractor, num_features=self.num_features)

    def reset(self) -> None:
        super().reset()
        self._generated: dict[int, Moments] = {}
        self._features: dict[tuple[str, int], np.ndarray] = {}  # float32 [D] per image
        self._reference: Moments | None = None
        self._reference_settings: dict | None = None

    def update(self, keys: list[tuple[str, int]], features: np.ndarray) -> None:
        """Add generated images (``(sample_id, k)`` each) with their features [N, D]; an image
        already recorded here is skipped (padded last batches)."""
        raw = np.asarray(features)
        features = raw.astype(np.float64)
        if features.shape != (len(keys), self.num_features):
            raise SpbenchError(f"FID got features of shape {features.shape} for {len(keys)} images, "
                               f"expected ({len(keys)}, {self.num_features}) from {self.extractor}")
        rows_by_k: dict[int, list[int]] = {}
        for i, (sample_id, k) in enumerate(keys):
            if self._add(sample_id, k, {}):
                rows_by_k.setdefault(int(k), []).append(i)
                self._features[(str(sample_id), int(k))] = raw[i].astype(np.float32)
        for k, rows in rows_by_k.items():
            self._generated.setdefault(k, Moments(self.num_features)).add(features[rows])

    def set_reference(self, moments: Moments, settings: dict) -> None:
        if moments.sum.shape != (self.num_features,):
            raise SpbenchError(f"FID reference statistics have {moments.sum.shape[0]} features, "
                               f"expected {self.num_features}")
        self._reference, self._reference_settings = moments, dict(settings)

    def _extra_state(self) -> dict:
        return {
            "generated": {str(k): m.to_state() for k, m in self._generated.items()},
            "reference": self._reference.to_state() if self._reference is not None else None,
            "reference_settings": self._reference_settings,
            "feature_keys": [[s, k] for s, k in sorted(self._features)],
            "features": _pack(np.stack([self._features[key] for key in sorted(self._features)])
                              if self._features else np.zeros((0, self.num_features)), "f4"),
        }

    def _merge_extra(self, state: dict) -> None:
        for k, m in state["generated"].items():
            target = self._generated.setdefault(int(k), Moments(self.num_features))
            target += Moments.from_state(m)
        if "features" in state:
            for (s, k), row in zip(state["feature_keys"], _unpack(state["features"])):
                self._features[(str(s), int(k))] = row.astype(np.float32)
        if state.get("reference") is not None:
            if self._reference is not None and state["reference_settings"] != self._reference_settings:
                raise SpbenchError("FID: processes used different reference statistics")
            if self._reference is None:
                self._reference = Moments.from_state(state["reference"])
                self._reference_settings = state["reference_settings"]

    def feature_rows(self) -> tuple[list[tuple[str, int]], np.ndarray]:
        """The scored images ``(sample_id, k)``, sorted, and their features, float32 [N, D]."""
        keys = sorted(self._features)
        rows = np.stack([self._features[key] for key in keys]) if keys else np.zeros((0, self.num_features), np.float32)
        return keys, rows

    @property
    def reference(self) -> Moments | None:
        """The reference statistics (None until :meth:`set_reference`)."""
        return self._reference

    def compute(self) -> dict:
        """``{"fid", "per_k": {"0": {"fid", "num_generated"}}, "mean_over_k", "std_over_k",
        "num_generated", "num_reference", ...}``; a FID over fewer than two images is None."""
        if self._reference is None:
            raise SpbenchError("FID has no reference statistics (they are computed on the main process)")
        pooled = Moments(self.num_features)
        per_k = {}
        for k in sorted(self._generated):
            m = self._generated[k]
            pooled += m
            per_k[str(k)] = {"fid": frechet_distance(m, self._reference), "num_generated": m.n}
        result = {"fid": frechet_distance(pooled, self._reference), "per_k": per_k}
        result.update(spread_over_k(per_k, "fid"))
        result.update(num_generated=pooled.n, num_reference=self._reference.n, extractor=self.extractor,
                      num_features=self.num_features, reference_settings=self._reference_settings)
        return result
