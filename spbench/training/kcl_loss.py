"""KCL's heatmap loss L_ht on captured cross-attention maps, in two selectable definitions.

Inputs shared by both: the captured maps (one per attention layer, heads already averaged,
[B, H'·W', 77]), which keypoint each token position stands for (``token_keypoint`` [B, 77]: the
keypoint index at keypoint-token positions, -1 elsewhere), per-keypoint Gaussian heatmaps
[B, K, S, S] (summed over instances, not clamped) and the timesteps [B].

- ``paper`` (paper §3.2): ``L_ht = 1/|M_kpt| · 1/(H'W') · Σ_{v_i≥1} ||M_i − H_i||²`` per sample,
  with ``M_i`` the raw probabilities at the layer's own resolution (layers of one resolution
  averaged; resolutions averaged) and ``H_i`` the heatmap resized to H'×W' (bilinear, antialiased)
  and clamped to [0, 1]. Samples whose timestep lies in [low, high] (inclusive) contribute their
  L_ht, the others 0; the batch loss is the mean over samples that carry keypoint tokens.
- ``official`` (exp/tmp_src/loss.py of the official code): every layer's map resized bilinearly
  (align_corners) to S×S, layers averaged, min-max normalised per sample over all 77 tokens × S×S,
  keypoint-token maps selected; MSE against targets, both clamped to [0, 1], every element weighted
  by ``low < t < high`` (strict, as its code) and averaged over all selected elements.

``uint8_target_quirk`` reproduces the official SP-Ctrl target: the heatmap stored as a 0–255
image and compared without /255, so after the clamp it is ``floor(255·H) ≥ 1`` — a near-binary
disc where the Gaussian exceeds 1/255.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from spbench.errors import SpbenchError


def keypoint_token_positions(input_ids: torch.Tensor, token_ids: Sequence[int]) -> torch.Tensor:
    """[B, T] long: keypoint index k where ``input_ids`` holds ``token_ids[k]``, else -1."""
    out = torch.full_like(input_ids, -1)
    for k, tid in enumerate(token_ids):
        out[input_ids == tid] = k
    return out


def spatial_shape(tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) of a flattened map with ``tokens`` pixels inside a UNet fed ``latent_hw``
    latents: each down block halves the size, rounding up (stride-2 convolution, padding 1)."""
    h, w = latent_hw
    for _ in range(8):
        if h * w == tokens:
            return h, w
        h, w = -(-h // 2), -(-w // 2)
    raise SpbenchError(f"an attention map of {tokens} pixels does not fit latents of {latent_hw[0]}x{latent_hw[1]}")


def to_spatial(maps: Sequence[torch.Tensor], latent_hw: tuple[int, int]) -> list[torch.Tensor]:
    """[B, HW, T] maps -> [B, T, h, w]."""
    out = []
    for m in maps:
        b, hw, t = m.shape
        h, w = spatial_shape(hw, latent_hw)
        out.append(m.transpose(1, 2).reshape(b, t, h, w))
    return out


def heatmap_targets(heatmaps: torch.Tensor, uint8_target_quirk: bool = False) -> torch.Tensor:
    """Targets in [0, 1]: the heatmaps clamped, or the official 0–255 quirk (see module doc)."""
    if uint8_target_quirk:
        return torch.floor(255.0 * heatmaps.clamp(0.0, 1.0)).clamp(0.0, 1.0)
    return heatmaps.clamp(0.0, 1.0)


def in_range(timesteps: torch.Tensor, low: int, high: int, inclusive: bool) -> torch.Tensor:
    if inclusive:
        return (timesteps >= low) & (timesteps <= high)
    return (timesteps > low) & (timesteps < high)


def kcl_loss(
    maps: Sequence[torch.Tensor],
    token_keypoint: torch.Tensor,
    heatmaps: torch.Tensor,
    timesteps: torch.Tensor,
    latent_hw: tuple[int, int],
    definition: str = "official",
    timestep_range: tuple[int, int] = (250, 500),
    uint8_target_quirk: bool = False,
    size: int = 64,
) -> torch.Tensor | None:
    """The batch's L_ht (a scalar with gradient), or None when no sample carries keypoint tokens."""
    if not maps:
        raise SpbenchError("KCL heatmap loss: no cross-attention maps were captured; check --kcl-blocks and --kcl-source")
    if not bool((token_keypoint >= 0).any()):
        return None
    spatial = to_spatial(maps, latent_hw)
    targets = heatmap_targets(heatmaps.float(), uint8_target_quirk)
    if definition == "paper":
        weight = in_range(timesteps, *timestep_range, inclusive=True)
        return paper_loss(spatial, token_keypoint, targets, weight)
    if definition == "official":
        weight = in_range(timesteps, *timestep_range, inclusive=False)
        return official_loss(spatial, token_keypoint, targets, weight, size)
    raise SpbenchError(f"unknown KCL definition {definition!r}: use official or paper")


def _selected(token_keypoint: torch.Tensor):
    b, p = torch.nonzero(token_keypoint >= 0, as_tuple=True)
    return b, p, token_keypoint[b, p]


def paper_loss(spatial: Sequence[torch.Tensor], token_keypoint, targets, weight) -> torch.Tensor:
    b, p, k = _selected(token_keypoint)
    batch = token_keypoint.shape[0]
    has_tokens = torch.zeros(batch, dtype=torch.bool, device=token_keypoint.device)
    has_tokens[b] = True
    counts = torch.zeros(batch, device=targets.device).index_add_(0, b, torch.ones_like(b, dtype=torch.float32))
    by_size: dict[tuple[int, int], list[torch.Tensor]] = {}
    for m in spatial:
        by_size.setdefault(tuple(m.shape[-2:]), []).append(m)
    losses = []
    for (h, w), group in by_size.items():
        m = torch.stack(group).mean(0).float()  # layers of one resolution averaged
        t = targets
        if t.shape[-2:] != (h, w):
            t = F.interpolate(targets, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        err = ((m[b, p] - t[b, k]) ** 2).mean(dim=(1, 2))  # ||M_i − H_i||² / (H'W') per keypoint
        per_sample = torch.zeros(batch, device=err.device, dtype=err.dtype).index_add_(0, b, err) / counts.clamp(min=1)
        per_sample = per_sample * weight.to(per_sample.dtype)
        losses.append(per_sample[has_tokens].mean())
    return torch.stack(losses).mean()


def official_loss(spatial: Sequence[torch.Tensor], token_keypoint, targets, weight, size: int) -> torch.Tensor:
    resized = [F.interpolate(m.float(), size=(size, size), mode="bilinear", align_corners=True) for m in spatial]
    avg = torch.stack(resized).mean(0)  # [B, T, S, S]
    flat = avg.reshape(avg.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    normed = (avg - low) / (high - low).clamp(min=1e-6)
    t = targets
    if t.shape[-2:] != (size, size):
        t = F.interpolate(targets, size=(size, size), mode="bilinear", align_corners=True)
    b, p, k = _selected(token_keypoint)
    err = F.mse_loss(normed[b, p].clamp(0, 1), t[b, k].clamp(0, 1), reduction="none")
    return (err * weight[b].to(err.dtype).view(-1, 1, 1)).mean()
