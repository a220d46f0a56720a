"""Checkpoint folders: what is in them, finding the one to resume, and the retention limit.

Layout of ``OUT/checkpoint-<step>/``::

    <model folder>/            the trainable model, ``save_pretrained`` (safetensors): give this
                               folder to ``spbench run --method M --checkpoint``; for keypoint-token
                               runs it also holds ``learned_embeds.bin`` ({token: tensor[768]})
    optimizer.bin, scaler.pt,  accelerate's ``save_state`` (optimizer, grad scaler, RNG states),
    random_states_<p>.pkl      all read back with ``weights_only=True``; the model weights are
                               not duplicated there (a save hook writes the model folder instead)
    lr_scheduler.json          the LR scheduler's state, as JSON (no pickle: accelerate's
                               registered objects are unpickled with ``weights_only=False``, so a
                               planted ``custom_checkpoint_0.pkl`` could run code; spbench never
                               registers one and never reads such a file)
    trainer_state.json         step, epoch, batch within the epoch, loss sums — written last, so
                               its presence marks a complete checkpoint
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.files import atomic_write_json

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
SCHEDULER_FILE = "lr_scheduler.json"


def model_folder(path: str | None) -> str | None:
    """``spbench run --checkpoint``: a training checkpoint ``OUT/checkpoint-<step>`` stands for the
    model folder inside it; anything else (a model folder, a hub id) is returned unchanged."""
    if not path or not (Path(path) / STATE_FILE).is_file():
        return path
    folders = sorted(p for p in Path(path).iterdir() if (p / "config.json").is_file())
    if len(folders) != 1:
        names = ", ".join(p.name for p in folders) or "none"
        raise SpbenchError(f"--checkpoint {path}: a training checkpoint, but its model folders are {names}: "
                           f"pass the model folder inside it, e.g. --checkpoint {path}/<model folder>")
    return str(folders[0])


def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / f"{PREFIX}{step}"


def complete_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints under ``out``, oldest first."""
    found = []
    if Path(out).is_dir():
        for p in Path(out).iterdir():
            m = re.fullmatch(rf"{PREFIX}(\d+)", p.name)
            if m and p.is_dir() and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def resolve_resume(out: Path, resume: str | None) -> Path | None:
    """The folder to resume from: ``latest`` (None when there is none yet), ``checkpoint-N`` in
    ``out``, or a path to a checkpoint folder."""
    if not resume:
        return None
    if resume == "latest":
        found = complete_checkpoints(out)
        return found[-1][1] if found else None
    path = Path(resume)
    if not path.is_dir():
        path = Path(out) / resume
    if not (path / STATE_FILE).is_file():
        steps = ", ".join(p.name for _, p in complete_checkpoints(out)) or "none"
        raise SpbenchError(f"--resume {resume}: no complete checkpoint there (complete checkpoints in {out}: {steps})")
    return path


def read_state(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SpbenchError(f"cannot read {Path(folder) / STATE_FILE}: {e}") from None


def write_state(folder: Path, state: dict) -> None:
    atomic_write_json(Path(folder) / STATE_FILE, state)


def write_scheduler_state(folder: Path, scheduler) -> None:
    """An LR scheduler's ``state_dict`` as JSON (LambdaLR's lambdas are functions: not saved)."""
    state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    atomic_write_json(Path(folder) / SCHEDULER_FILE, state)


def read_scheduler_state(folder: Path, scheduler, step: int) -> None:
    """Restore an LR scheduler from ``lr_scheduler.json``; a checkpoint written before that file
    existed gets the state of a LambdaLR stepped ``step`` times (its pickle is never read)."""
    path = Path(folder) / SCHEDULER_FILE
    state = scheduler.state_dict()
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SpbenchError(f"cannot read {path}: {e}; resume from another checkpoint") from None
        if not isinstance(saved, dict) or "last_epoch" not in saved:
            raise SpbenchError(f"{path}: not an LR scheduler state (no last_epoch); resume from another checkpoint")
        state.update({k: v for k, v in saved.items() if k != "lr_lambdas"})
    else:
        lambdas = getattr(scheduler, "lr_lambdas", [])
        state.update(last_epoch=step, _step_count=step + 1,
                     _last_lr=[base * fn(step) for base, fn in zip(scheduler.base_lrs, lambdas)])
    scheduler.load_state_dict(state)


def prune(out: Path, keep: int | None) -> list[Path]:
    """Delete the oldest complete checkpoints so that at most ``keep - 1`` remain (room for the
    one about to be written); returns what was removed."""
    if keep is None:
        return []
    found = complete_checkpoints(out)
    removed = []
    for _, path in found[: max(0, len(found) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
