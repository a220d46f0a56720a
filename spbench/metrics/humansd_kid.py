"""KID as HumanSD configures it: torchmetrics' ``KernelInceptionDistance(subset_size=1000,
normalize=True)`` on the 2048-d Inception features (:mod:`spbench.metrics.humansd_inception`).

KID is the unbiased MMD² with the polynomial kernel ``k(x, y) = (x·y / d + 1)³`` (d the feature
size), over ``subsets`` (100) random subsets of ``subset_size`` real and as many generated
features; the result is the mean over subsets and their standard deviation (population,
``unbiased=False``), as torchmetrics computes them. Each subset draws ``randperm`` of the real,
then of the generated features, from one generator seeded ``kid_seed`` (torchmetrics draws from
torch's global generator, unseeded), so a KID is reproducible, and equal to torchmetrics' after
``torch.manual_seed(kid_seed)`` on the same features.

With fewer than ``subset_size`` real or generated images the subset size is the smaller count
(torchmetrics refuses; HumanSD's ``calculate_kid`` returns None until there are more generated
images than the subset size); the record gives the size used. ``kid_x10`` is 10 x KID, the scale
of HumanSD's README table.
"""

from __future__ import annotations

import base64

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k


def poly_mmd(real, fake, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> float:
    """Unbiased MMD² of two equal-size feature sets [m, d] with the polynomial kernel (float64)."""
    import torch

    x, y = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    m = x.shape[0]
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx, k_yy, k_xy = ((a @ b.T * gamma + coef) ** degree for a, b in ((x, x), (y, y), (x, y)))
    off = lambda k: k.sum() - torch.diagonal(k).sum()  # noqa: E731
    return float((off(k_xx) + off(k_yy)) / (m * (m - 1)) - 2 * k_xy.sum() / m ** 2)


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float | None, float | None, int]:
    """(mean, population std, subset size used) of KID over ``subsets`` seeded random subsets."""
    import torch

    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    n = min(int(subset_size), len(real), len(fake))
    if n < 2:
        return None, None, n
    generator = torch.Generator().manual_seed(int(seed))
    scores = []
    for _ in range(int(subsets)):
        r = real[torch.randperm(len(real), generator=generator)[:n].numpy()]
        f = fake[torch.randperm(len(fake), generator=generator)[:n].numpy()]
        scores.append(poly_mmd(r, f))
    values = np.array(scores)
    return float(values.mean()), float(values.std()), n


def pack(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def unpack(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").reshape(-1, dim).copy()


class KidEvaluator(Evaluator):
    """One entry per generated image with its features; the real features are set on the main process."""

    name = "humansd-kid"

    def __init__(self, extractor: str, num_features: int, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                 scale: int = 10):
        self.extractor, self.num_features = extractor, int(num_features)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        self.scale = int(scale)  # the published table's multiplier: kid_x10 (HumanSD), kid_x100 (GRPose, Human-Art)
        super().__init__(extractor=extractor, num_features=self.num_features, subsets=self.subsets,
                         subset_size=self.subset_size, seed=self.seed, scale=self.scale)

    @property
    def scaled_key(self) -> str:
        return f"kid_x{self.scale}"

    def reset(self) -> None:
        super().reset()
        self._reference: np.ndarray | None = None
        self._reference_settings: dict | None = None

    def update(self, keys: list[tuple[str, int]], features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float64)
        if features.shape != (len(keys), self.num_features):
            raise SpbenchError(f"KID got features of shape {features.shape} for {len(keys)} images, "
                               f"expected ({len(keys)}, {self.num_features}) from {self.extractor}")
        for (sample_id, k), f in zip(keys, features):
            self._add(sample_id, k, {"features": pack(f)})

    def set_reference(self, features: np.ndarray, settings: dict) -> None:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise SpbenchError(f"KID reference features have shape {features.shape}, expected (N, {self.num_features})")
        self._reference, self._reference_settings = features, dict(settings)

    def _extra_state(self) -> dict:
        ref = None if self._reference is None else pack(self._reference)
        return {"reference": ref, "reference_settings": self._reference_settings}

    def _merge_extra(self, state: dict) -> None:
        if state.get("reference") is not None and self._reference is None:
            self._reference = unpack(state["reference"], self.num_features)
            self._reference_settings = state["reference_settings"]

    def _kid(self, entries: list[dict]) -> dict:
        fake = np.concatenate([unpack(e["features"], self.num_features) for e in entries]) if entries else \
            np.zeros((0, self.num_features))
        mean, std, n = kid(self._reference, fake, self.subsets, self.subset_size, self.seed)
        return {"kid": mean, "kid_std": std, self.scaled_key: None if mean is None else self.scale * mean,
                "subset_size": n, "num_generated": len(entries)}

    def bootstrap_data(self) -> str:
        """KID is not resampled over prompts: it already resamples (its subsets, ``kid_std``), and
        recomputing 100 subsets per bootstrap draw would cost 100 times KID itself."""
        return ("KID resamples its own subsets (kid_std is their spread); a bootstrap over prompts would repeat "
                "images inside a subset, which the unbiased MMD estimate assumes distinct")

    def compute(self) -> dict:
        """``{"kid", "kid_std", "kid_x10", "per_k", "mean_over_k", "std_over_k", ...}``."""
        if self._reference is None:
            raise SpbenchError("KID has no reference features (they are computed on the main process)")
        entries = self.entries()
        by_k: dict[int, list[dict]] = {}
        for e in entries:
            by_k.setdefault(e["k"], []).append(e)
        result = self._kid(entries)
        result["per_k"] = {str(k): self._kid(by_k[k]) for k in sorted(by_k)}
        result.update(spread_over_k(result["per_k"], "kid"))
        result.update(num_reference=len(self._reference), subsets=self.subsets, subset_size_requested=self.subset_size,
                      seed=self.seed, extractor=self.extractor, num_features=self.num_features,
                      reference_settings=self._reference_settings)
        return result
