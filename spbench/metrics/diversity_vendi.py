"""The Vendi score (Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
Learning", TMLR 2023): the exponential of the Shannon entropy of the eigenvalues of ``K / n``,
where ``K`` is an ``n × n`` similarity kernel with ones on its diagonal. Here ``K`` is the cosine
similarity of the images' embeddings, so the score is the *effective number of distinct images*:
1 when all embeddings point the same way, ``n`` when they are mutually orthogonal.

Plain numpy in float64; the eigenvalues of the symmetric kernel come from ``numpy.linalg.eigvalsh``,
tiny negative ones (rounding) are set to zero and ``0 · log 0`` is taken as 0.
"""

from __future__ import annotations

import numpy as np

from spbench.errors import SpbenchError


def cosine_kernel(embeddings) -> np.ndarray:
    """``K[i, j] = cos(e_i, e_j)`` of the rows of ``embeddings`` (n × d), float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise SpbenchError(f"the Vendi score needs a non-empty n x d array of embeddings, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(x)) or np.any(norms == 0):
        raise SpbenchError("the Vendi score needs finite, non-zero embeddings (cosine similarity is undefined otherwise)")
    x = x / norms
    k = x @ x.T
    np.fill_diagonal(k, 1.0)  # exactly 1: the definition's normalisation, free of rounding
    return k


def vendi_from_kernel(kernel) -> float:
    """``exp(-Σ λ_i log λ_i)`` over the eigenvalues ``λ`` of ``kernel / n``."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise SpbenchError(f"the Vendi score needs a square, non-empty kernel, got shape {k.shape}")
    n = k.shape[0]
    eigenvalues = np.clip(np.linalg.eigvalsh((k + k.T) / (2 * n)), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 0]
    entropy = float(-(eigenvalues * np.log(eigenvalues)).sum())
    return float(np.exp(entropy))


def vendi_score(embeddings) -> float:
    """The Vendi score of a set of embeddings (rows) under the cosine-similarity kernel."""
    return vendi_from_kernel(cosine_kernel(embeddings))
