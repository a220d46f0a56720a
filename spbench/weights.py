"""Weight files read without running pickled code, and fingerprinted.

A ``.pth`` / ``.bin`` file is a pickle, and unpickling can run whatever code a planted file
holds; so weights are read as ``.safetensors`` or with ``torch.load(weights_only=True)``, which
refuses any pickled object other than tensors. A library that insists on loading a file itself
gets an in-memory copy of the checked tensors (:func:`tensor_file`).
"""

from __future__ import annotations

import io
from pathlib import Path

from spbench.errors import SpbenchError


def read_tensors(path: Path, what: str, fix: str) -> dict:
    """The file's tensors (a non-empty dict of name -> tensor); anything else is an error saying
    ``{path} is not {what} (why); {fix}``."""
    import pickle

    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:
            raise SpbenchError(f"{path} is not {what} (not a readable safetensors file: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}); {fix}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
                raise SpbenchError(f"{path} is not {what}: it pickles objects other than "
                                   f"tensors, which spbench does not unpickle (they could run code); {fix}") from None
            raise SpbenchError(f"{path} is not {what} (not a torch file); {fix}") from None
        except Exception as e:  # truncated zip, not a torch file at all
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SpbenchError(f"{path} is not {what} ({first}); {fix}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpbenchError(f"{path} is not {what} (not a dict of tensors); {fix}")
    return state


def tensor_file(state: dict) -> io.BytesIO:
    """A torch.save of checked tensors, for a loader that only accepts a file."""
    import torch

    buf = io.BytesIO()
    torch.save(dict(state), buf)
    buf.seek(0)
    return buf

