import os

# Never wait on the hub: tiny profiles are built in-process and real ids must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
