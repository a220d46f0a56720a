"""SPR lookup: one gather (SpatialPoseRepresentation.forward) vs the official mask loop (forward_masked).

Run: python benchmarks/spr_gather.py [--batch 8] [--size 512] [--channels 3] [--repeats 20]

The index map is a realistic pose map: 90% background, the rest keypoint and limb values. Both
paths are timed without gradients (inference) and with a backward pass (training), median of
``--repeats`` runs after one warm-up; the outputs are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spbench.models.spr import SpatialPoseRepresentation
from spbench.schemas import LIMB_INDEX_OFFSET


def pose_like_index_map(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.cat([torch.arange(1, 18), torch.arange(LIMB_INDEX_OFFSET, LIMB_INDEX_OFFSET + 17)])
    index = values[torch.randint(0, len(values), (batch, size, size), generator=g)]
    index[torch.rand(batch, size, size, generator=g) < 0.9] = 0
    return index


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    spr = SpatialPoseRepresentation(args.channels).eval()
    index = pose_like_index_map(args.batch, args.size)
    with torch.no_grad():
        assert torch.equal(spr(index), spr.forward_masked(index)), "gather and mask loop disagree"

    def train_step(forward):
        spr.zero_grad(set_to_none=True)
        forward(index).square().mean().backward()

    print(f"SPR C'={args.channels}, index map {args.batch}x{args.size}x{args.size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for label, no_grad in (("inference (no grad)", True), ("forward + backward", False)):
        if no_grad:
            with torch.no_grad():
                gather = median_seconds(lambda: spr(index), args.repeats)
                masked = median_seconds(lambda: spr.forward_masked(index), args.repeats)
        else:
            gather = median_seconds(lambda: train_step(spr), args.repeats)
            masked = median_seconds(lambda: train_step(spr.forward_masked), args.repeats)
        print(f"{label:22s} gather {gather * 1e3:8.1f} ms   mask loop {masked * 1e3:8.1f} ms   "
              f"speed-up x{masked / gather:.1f}")


if __name__ == "__main__":
    main()
