"""torch's CPU threads for a run (generation, scoring and training alike)."""

from __future__ import annotations

import os


def limit_cpu_threads(config: dict) -> None:
    """Tiny models on a CPU: one torch thread. Their ops are too small to share, and with another
    busy process on the machine two spinning threads made generation 30x slower (measured:
    0.4 s vs 12 s per image). OMP_NUM_THREADS, when set, wins."""
    import torch  # here, not with the module: resolving a run must not import torch

    if config["profile"]["tiny"] and "OMP_NUM_THREADS" not in os.environ and not torch.cuda.is_available():
        torch.set_num_threads(1)
