"""Per-request seeds and initial noise.

A request is (sample, k). Its seed is a pure function of (base seed, sample id, k), and its
initial latent noise is drawn from its own CPU generator, so the noise is bitwise identical
whatever the batch size, request order, number of processes or resumption.
"""

from __future__ import annotations

import hashlib

import torch

SEED_SCHEME = "int(sha256(f'{base_seed}:{sample_id}:{k}')[:8 bytes]) & (2**63 - 1); noise = torch.randn on a CPU generator seeded with it"


def request_seed(base_seed: int, sample_id: str, k: int) -> int:
    digest = hashlib.sha256(f"{base_seed}:{sample_id}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """[len(seeds), *shape] float32 standard normal noise, one CPU generator per seed."""
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, seed in enumerate(seeds):
        g = torch.Generator(device="cpu").manual_seed(seed)
        out[i] = torch.randn(shape, generator=g, dtype=torch.float32)
    return out
