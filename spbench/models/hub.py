"""Loading real weights through the libraries' own ``from_pretrained``, with errors a user can act on."""

from __future__ import annotations

import os

from spbench.errors import SpbenchError


def load_pretrained(cls, name_or_path: str, role: str, *, setting: str | None = None, **kwargs):
    """``cls.from_pretrained(name_or_path, **kwargs)``; a missing model becomes a one-line SpbenchError.

    ``role`` says what the model is for ("base model", "pose model"); ``setting`` names the
    ``--set`` key that points at it, so the message can say how to use a local folder instead.
    """
    try:
        return cls.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        where = "folder" if os.path.isdir(name_or_path) else "id"
        hint = f"--set {setting}=/path/to/folder" if setting else "a local folder"
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpbenchError(
            f"cannot load the {role} from {where} {name_or_path!r}{offline}: {first} — "
            f"download it where there is network (`hf download {name_or_path} --local-dir DIR`) "
            f"and pass the folder with {hint}"
        ) from None
