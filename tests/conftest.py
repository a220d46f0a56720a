import os

# Never wait on the hub: tiny profiles are built in-process and real ids must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Tiny models are all per-op overhead: extra threads only contend (measured: 181 s -> 45 s for
# the SP-Ctrl tests on 2 busy cores). Subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Output is checked as a pipe sees it; pytest-xdist workers run with COLUMNS=80, which would wrap it.
for name in ("COLUMNS", "LINES"):
    os.environ.pop(name, None)

import torch  # noqa: E402

torch.set_num_threads(1)

from helpers import build_tiny_sd_once_per_session  # noqa: E402

build_tiny_sd_once_per_session()  # tiny components are built once per session
