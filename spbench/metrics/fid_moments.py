"""FID's streamed statistics: per set of images, the count, the float64 sum of the features and the
sum of their outer products (:class:`Moments`, additive, so per-batch and per-rank sums add up),
and the Fréchet distance of two sets from them: torchmetrics' formula
``|mu1-mu2|² + tr(S1) + tr(S2) - 2·Σ sqrt(eig(S1·S2))``, covariances with n-1."""

from __future__ import annotations

import base64

import numpy as np


class Moments:
    """Count, sum of features and sum of outer products (float64): all FID needs, and additive."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        self.n += len(f)
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f

    @classmethod
    def of_weighted_rows(cls, features: np.ndarray, weights: np.ndarray) -> "Moments":
        """The moments of a multiset of feature rows, row i counted ``weights[i]`` times (integers
        >= 0): what :meth:`add` gives on the rows repeated, computed without repeating them, as
        ``Σ w·f`` and ``Fᵀ·diag(w)·F`` (rows of weight 0 left out; the outer products as one
        symmetric product of the √w-scaled rows, exact for weight 1)."""
        f = np.asarray(features).reshape(len(features), -1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        keep = w > 0
        f, w = f[keep].astype(np.float64, copy=False), w[keep]
        m = cls(f.shape[1])
        m.n = int(round(w.sum()))
        m.sum = w @ f
        g = f * np.sqrt(w)[:, None]
        m.outer = g.T @ g
        return m

    def __iadd__(self, other: "Moments") -> "Moments":
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    def to_state(self) -> dict:
        return {"n": self.n, "sum": _pack(self.sum), "outer": _pack(self.outer)}

    @classmethod
    def from_state(cls, st: dict) -> "Moments":
        m = cls(0)
        m.n, m.sum, m.outer = int(st["n"]), _unpack(st["sum"]), _unpack(st["outer"])
        return m


def _pack(a: np.ndarray, code: str = "f8") -> dict:
    # Base64 of the raw float64 (``f4``: float32) bytes: exact, picklable and JSON-safe, far smaller than lists.
    a = np.ascontiguousarray(a, dtype="<" + code)
    return {"shape": list(a.shape), code: base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: dict) -> np.ndarray:
    code = "f4" if "f4" in d else "f8"
    return np.frombuffer(base64.b64decode(d[code]), dtype="<" + code).reshape(d["shape"]).copy()


def frechet_distance(a: Moments, b: Moments) -> float | None:
    """FID between two sets given their moments (None with fewer than two images in either)."""
    if a.n < 2 or b.n < 2:
        return None
    import torch

    def mean_cov(m: Moments):
        mu = torch.from_numpy(m.sum / m.n)
        return mu, (torch.from_numpy(m.outer) - m.n * torch.outer(mu, mu)) / (m.n - 1)

    mu1, s1 = mean_cov(a)
    mu2, s2 = mean_cov(b)
    root_trace = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * root_trace)
