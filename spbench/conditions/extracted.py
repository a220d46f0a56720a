"""Conditions extracted from the reference image by a model (depth, masks): an on-disk cache, and
folders of precomputed maps.

Cache layout (``paths.cache``; unset: ``$SPBENCH_CACHE`` or ``~/.cache/spbench``)::

    <cache>/conditions/<model>-<settings digest>/settings.json    what the digest stands for
    <cache>/conditions/<model>-<settings digest>/<sample_id>.png

The folder key covers the condition model (zoedepth, sam-hq) and every setting that changes its output. Each PNG also
carries, in a text chunk, the digest of its sample id, canvas transform and the sha256 of the
reference image file's bytes; an entry whose digest differs is recomputed and overwritten, never
reused. Files are written atomically, so a killed run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin

from spbench.canvas import image_to_canvas
from spbench.errors import SpbenchError
from spbench.files import atomic_write_bytes, atomic_write_json, cache_root, file_sha256

if TYPE_CHECKING:
    from spbench.run.requests import Request

ENTRY_KEY = "spbench-condition-key"


def method_options(config: dict, known: dict) -> dict:
    """``method.options`` with defaults from ``known`` (name -> default); an unknown name is an
    error, so a typo in ``--set method.options.…`` is not silently ignored."""
    import difflib

    given = dict(config["method"].get("options") or {})
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise SpbenchError(f"method {config['method']['name']!r} has no option {name!r} (method.options.{name}){hint}; "
                               f"options: {', '.join(known)}")
    return {**known, **given}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ConditionCache:
    """Cached condition images of one condition model (``"zoedepth"``, ``"sam-hq"``) under one set
    of settings."""

    def __init__(self, root: str | os.PathLike, model: str, settings: dict):
        self.model = model
        self.settings = dict(settings)
        # The digest's and settings.json's field keeps its first name, so existing caches stay valid.
        self.key = f"{model}-{_digest({'extractor': model, **self.settings})}"
        self.folder = Path(root) / "conditions" / self.key

    @classmethod
    def for_config(cls, config: dict, model: str, settings: dict) -> "ConditionCache":
        return cls(cache_root(config), model, settings)

    def path(self, request: Request) -> Path:
        return self.folder / f"{request.sample.sample_id}.png"

    def entry_key(self, request: Request) -> str:
        """Digest of what makes this sample's entry: sample id, canvas transform, image bytes."""
        image = _reference_image_path(request, self.model)
        return _digest({"sample_id": request.sample.sample_id, "transform": request.transform.to_dict(),
                        "image_sha256": file_sha256(image)})

    def get(self, request: Request, entry_key: str | None = None) -> Image.Image | None:
        """The cached image, or None when absent, unreadable or made for another entry key."""
        path = self.path(request)
        if not path.is_file():
            return None
        entry_key = entry_key or self.entry_key(request)
        try:
            with Image.open(path) as im:
                if getattr(im, "text", {}).get(ENTRY_KEY) != entry_key:
                    return None
                return im.convert("RGB")
        except OSError:  # corrupt or truncated by something else: recompute it
            return None

    def put(self, request: Request, image: Image.Image, entry_key: str | None = None) -> None:
        info = PngImagePlugin.PngInfo()
        info.add_text(ENTRY_KEY, entry_key or self.entry_key(request))
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=info)
        settings_file = self.folder / "settings.json"
        if not settings_file.is_file():
            atomic_write_json(settings_file, {"extractor": self.model, "settings": self.settings})
        atomic_write_bytes(self.path(request), buf.getvalue())

    def get_or_make(self, request: Request, make: Callable[[], Image.Image]) -> Image.Image:
        """The cached image, or ``make()`` stored for next time."""
        entry_key = self.entry_key(request)
        image = self.get(request, entry_key)
        if image is None:
            image = make()
            self.put(request, image, entry_key)
        return image


def reference_on_canvas(request: Request, what: str) -> Image.Image:
    """The sample's reference image brought to the canvas (bicubic), as the condition models see it."""
    path = _reference_image_path(request, what)
    try:
        with Image.open(path) as image:
            return image_to_canvas(image, request.transform)
    except OSError as e:
        raise SpbenchError(f"cannot read the reference image {path} (needed for {what} conditions): {e}") from None


def check_conditions_dir(folder: str | os.PathLike) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SpbenchError(f"method.options.conditions_dir {folder} is not a folder: pass a folder of <sample_id>.png maps")
    return folder


def read_precomputed(folder: str | os.PathLike, request: Request, resample: int) -> Image.Image:
    """``<folder>/<sample_id>.png`` on the canvas, RGB.

    A canvas-sized file is used as is; any other size is taken to be in original-image frame (as
    the official SP-Ctrl scripts write their maps) and brought to the canvas like the image. In
    letterbox mode such a file must have the original image's size.
    """
    folder = check_conditions_dir(folder)
    sample, t = request.sample, request.transform
    path = folder / f"{sample.sample_id}.png"
    if not path.is_file():
        raise SpbenchError(f"precomputed condition {path} is missing (method.options.conditions_dir): "
                           f"add {sample.sample_id}.png, or unset conditions_dir to extract it")
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except OSError as e:
        raise SpbenchError(f"cannot read precomputed condition {path}: {e}") from None
    if image.size == (t.width, t.height):
        return image
    if t.mode == "letterbox" and image.size != (sample.width, sample.height):
        raise SpbenchError(
            f"precomputed condition {path} is {image.width}x{image.height}: letterbox needs the original "
            f"image size {sample.width}x{sample.height} or the canvas {t.width}x{t.height}"
        )
    return image_to_canvas(image, t, resample)


def _reference_image_path(request: Request, what: str) -> str:
    path = request.image_path
    if not path or not os.path.isfile(path):
        raise SpbenchError(
            f"sample {request.sample.sample_id}: reference image {path} not found — {what} conditions are "
            "extracted from the dataset's images; check --data-root, or pass precomputed maps with "
            "--set method.options.conditions_dir=DIR"
        )
    return path
