"""Randomness a pipeline draws besides the initial noise, made per request.

spbench gives every request its own initial noise (:mod:`spbench.run.seeds`), but some samplers
and pipelines draw more during a call: an ancestral sampler adds fresh noise at every step, and
the SD3 / FLUX ControlNet pipelines sample the VAE posterior of the control image. Left to
diffusers, those draws come from one generator for the whole batch (or torch's global one), so
an image would depend on its batch-mates and on what ran before.

Here each request gets its own CPU generator for those draws, seeded from a hash of its initial
noise: that noise is a pure function of (base seed, sample id, k), so these draws are too, and
they are a different stream from the noise itself.
"""

from __future__ import annotations

import contextlib
import hashlib

import torch


def request_generators(latents: torch.Tensor, purpose: str) -> list[torch.Generator]:
    """One CPU generator per request of the batch ``latents`` (the engine's per-request noise, in
    the unpacked shape), seeded by sha256 of ``purpose`` and that request's noise."""
    out = []
    for noise in latents.detach():
        digest = hashlib.sha256(purpose.encode() + b"\0" + noise.float().cpu().contiguous().numpy().tobytes()).digest()
        out.append(torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1)))
    return out


class _PerRequestPosterior:
    """A VAE posterior (diffusers' DiagonalGaussianDistribution) whose ``sample()`` draws the noise
    of batch row i from ``generators[i % len(generators)]``: the SD3 pipeline encodes the control
    images of a classifier-free-guidance batch twice over (unconditional rows, then conditional
    ones), so each request draws its two samples, in that order, from its own generator."""

    def __init__(self, posterior, generators: list[torch.Generator]):
        self._posterior = posterior
        self._generators = generators

    def sample(self, generator=None) -> torch.Tensor:
        mean, std = self._posterior.mean, self._posterior.std
        n = mean.shape[0]
        if n % len(self._generators):
            raise ValueError(f"a batch of {n} control images for {len(self._generators)} requests")
        eps = torch.stack([torch.randn(mean.shape[1:], generator=self._generators[i % len(self._generators)])
                           for i in range(n)])
        return mean + std * eps.to(device=mean.device, dtype=mean.dtype)

    def __getattr__(self, name):
        return getattr(self._posterior, name)


@contextlib.contextmanager
def posterior_sampled_per_request(vae, generators: list[torch.Generator]):
    """Within the block, ``vae.encode(x).latent_dist.sample()`` draws each row's noise from that
    request's generator (see :class:`_PerRequestPosterior`); decoding is untouched."""
    original = vae.encode

    def encode(x, return_dict: bool = True):
        out = original(x, return_dict=return_dict)
        if return_dict:
            out.latent_dist = _PerRequestPosterior(out.latent_dist, generators)
            return out
        return (_PerRequestPosterior(out[0], generators), *out[1:])

    vae.encode = encode
    try:
        yield
    finally:
        del vae.encode  # the instance attribute goes; the class's method is back
