"""FID (paper §4.1) between the generated images and the real images of the split.

Conventions (recorded in the result's ``evaluation.fid``):
- extractor (``models.inception``): torch-fidelity's FID Inception through torchmetrics
  (``NoTrainInceptionV3``, 2048-d pool features); ``pt_inception-2015-12-05`` means the file
  ``weights-inception-2015-12-05-6726825d.pth`` in ``$TORCH_HOME/hub/checkpoints``, or give the
  path of that file. ``tiny://inception`` is a tiny random CNN for tests (16 features, 32×32,
  resized by the same ``fid_resize`` rule as the real one).
- resize: generated images are scored as written (canvas size). Real images are first brought to
  the canvas as the Real Image row does (``image_to_canvas``: PIL bicubic; letterbox pads black).
  The extractor then resizes both to 299×299: torch bilinear with antialias
  (``evaluation.fid_resize: antialias``, torchmetrics' default) or TensorFlow-1-compatible
  bilinear (``tf1``, torch-fidelity's and the original FID code's).
- statistics are streamed (float64 sums of features and of their outer products, and counts),
  per k; the pooled FID adds the per-k sums. FID is torchmetrics' formula
  ``|mu1-mu2|² + tr(S1) + tr(S2) - 2·Σ sqrt(eig(S1·S2))``, covariances with n-1.
- reference statistics are computed on the main process and cached in
  ``<paths.cache>/fid/<dataset>-<split>-<split hash>-<W>x<H>-<mode>-<extractor>-<resize>-<digest>.npz``
  (digest over every setting, which the file also stores and is checked on load); they are
  written atomically and recomputed whenever a setting differs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.base import Evaluator, spread_over_k

INCEPTION_NAME = "pt_inception-2015-12-05"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
TINY_INCEPTION = "tiny://inception"
RESIZES = {
    "antialias": "torch bilinear with antialias to {0}x{0}",
    "tf1": "TensorFlow-1-compatible bilinear to {0}x{0}",
}
REFERENCE_TO_CANVAS = "image_to_canvas (PIL bicubic; letterbox pads black)"
CACHE_VERSION = 1


# -- feature extractors -----------------------------------------------------------------------------

@dataclass
class FeatureExtractor:
    """A module from uint8 images [N, 3, H, W] to features [N, D], with what identifies it."""

    module: Any
    name: str
    resize: str  # the resize it applies, in words
    num_features: int
    weights: str  # fingerprint of the weights (sha256 prefix of the file, or the tiny seed)
    device: str = "cpu"

    def __call__(self, images: list) -> np.ndarray:
        """float64 features of PIL images; images of the same size are batched together."""
        import torch

        out = np.zeros((len(images), self.num_features))
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault(im.size, []).append(i)
        for idx in by_size.values():
            x = torch.from_numpy(np.stack([np.asarray(images[i].convert("RGB"), dtype=np.uint8) for i in idx]))
            with torch.inference_mode():
                feats = self.module(x.permute(0, 3, 1, 2).contiguous().to(self.device))
            out[idx] = feats.reshape(len(idx), -1).double().cpu().numpy()
        return out


def resize_batch(x, size: int, resize: str):
    """float [N, 3, H, W] to size×size by ``evaluation.fid_resize``: torch bilinear with antialias
    (``antialias``) or torch-fidelity's TensorFlow-1-compatible bilinear (``tf1``), the two
    resizes of torchmetrics' FID Inception."""
    from torch.nn import functional as F

    if resize == "antialias":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if resize == "tf1":
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        return interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)
    raise SpbenchError(f"unknown evaluation.fid_resize {resize!r}: use one of {', '.join(RESIZES)}")


def build_tiny_inception(seed: int = 0, resize: str = "antialias"):
    """A tiny random CNN with the FID Inception's interface: uint8 [N, 3, H, W] in, resized to
    32×32 (:func:`resize_batch`: ``antialias`` or ``tf1``), scaled to [-1, 1], two tanh
    convolutions, 16 mean-pooled features."""
    import torch
    from torch import nn

    class TinyInception(nn.Module):
        num_features = 16
        input_size = 32

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(8, self.num_features, 3, stride=2, padding=1)

        def forward(self, x):
            x = resize_batch(x.float(), self.input_size, resize)
            x = (x - 128) / 128
            # tanh rather than ReLU: no feature of a random net is dead (constant), so FID sees all.
            return torch.tanh(self.conv2(torch.tanh(self.conv1(x)))).mean(dim=(2, 3))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyInception().eval()


def load_extractor(spec: str | os.PathLike | None, resize: str = "antialias", device: str = "cpu") -> FeatureExtractor:
    if resize not in RESIZES:
        raise SpbenchError(f"unknown evaluation.fid_resize {resize!r}: use one of {', '.join(RESIZES)}")
    if spec is None:
        raise SpbenchError(f"no FID extractor configured: set models.inception to {INCEPTION_NAME} or a .pth / .safetensors path")
    spec = os.fspath(spec)
    if spec.startswith("tiny://"):
        if spec != TINY_INCEPTION:
            raise SpbenchError(f"unknown tiny FID extractor {spec!r}: use {TINY_INCEPTION}")
        module = build_tiny_inception(resize=resize)
        return FeatureExtractor(module.to(device), "tiny-inception", RESIZES[resize].format(module.input_size),
                                module.num_features, "seed-0", device)
    path = inception_weights(spec)
    from torchmetrics.image.fid import NoTrainInceptionV3

    # torch-fidelity unpickles its weights file without weights_only, which runs whatever code a
    # planted file holds; so the file is read here with weights_only=True (or as safetensors), and
    # torch-fidelity gets an in-memory copy of those checked tensors.
    weights = _tensor_copy(_read_inception_state(path))
    try:
        module = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                    feature_extractor_weights_path=weights, antialias=resize == "antialias")
    except Exception as e:  # the wrong tensors fail inside load_state_dict
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights ({first}); "
                           f"download {INCEPTION_URL} again") from None
    return FeatureExtractor(module.to(device), INCEPTION_NAME, RESIZES[resize].format(299), 2048, _sha256(path), device)


def _read_inception_state(path: Path) -> dict:
    """The weights file's tensors, read without running pickled code: ``.safetensors``, or
    ``torch.load(weights_only=True)``, which refuses any pickled object other than tensors."""
    import pickle

    import torch

    fix = f"download {INCEPTION_URL} again"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:
            raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights (not a readable safetensors file: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}); {fix}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
                raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights: it pickles objects other than "
                                   f"tensors, which spbench does not unpickle (they could run code); {fix}") from None
            raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights (not a torch file); {fix}") from None
        except Exception as e:  # truncated zip, not a torch file at all
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights ({first}); {fix}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpbenchError(f"{path} is not torch-fidelity's FID Inception weights (not a dict of tensors); {fix}")
    return state


def _tensor_copy(state: dict) -> io.BytesIO:
    """A torch.save of checked tensors, for torch-fidelity's loader (it only accepts a file)."""
    import torch

    buf = io.BytesIO()
    torch.save(dict(state), buf)
    buf.seek(0)
    return buf


def inception_weights(spec: str) -> Path:
    """The weights file for ``spec``: the packaged name in torch's hub cache, or a path."""
    if spec != INCEPTION_NAME:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SpbenchError(f"FID Inception weights {spec!r} not found: set models.inception to "
                               f"{INCEPTION_NAME} or to the path of {INCEPTION_FILE}")
        return path
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if path.is_file():
        return path
    where = (f"download {INCEPTION_URL} to {path} (or anywhere, and pass "
             f"--set models.inception=/path/to/{INCEPTION_FILE})")
    if os.environ.get("HF_HUB_OFFLINE"):
        raise SpbenchError(f"FID Inception weights are not in {path.parent} and HF_HUB_OFFLINE is set: {where}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
    except Exception as e:
        raise SpbenchError(f"cannot download the FID Inception weights ({type(e).__name__}): {where}") from None
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# -- streamed statistics ------------------------------------------------------------------------------

class Moments:
    """Count, sum of features and sum of outer products (float64): all FID needs, and additive."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        self.n += len(f)
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f

    def __iadd__(self, other: "Moments") -> "Moments":
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    def to_state(self) -> dict:
        return {"n": self.n, "sum": _pack(self.sum), "outer": _pack(self.outer)}

    @classmethod
    def from_state(cls, st: dict) -> "Moments":
        m = cls(0)
        m.n, m.sum, m.outer = int(st["n"]), _unpack(st["sum"]), _unpack(st["outer"])
        return m


def _pack(a: np.ndarray) -> dict:
    # Base64 of the raw float64 bytes: exact, picklable and JSON-safe, far smaller than lists.
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "f8": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f8"]), dtype="<f8").reshape(d["shape"]).copy()


def frechet_distance(a: Moments, b: Moments) -> float | None:
    """FID between two sets given their moments (None with fewer than two images in either)."""
    if a.n < 2 or b.n < 2:
        return None
    import torch

    def mean_cov(m: Moments):
        mu = torch.from_numpy(m.sum / m.n)
        return mu, (torch.from_numpy(m.outer) - m.n * torch.outer(mu, mu)) / (m.n - 1)

    mu1, s1 = mean_cov(a)
    mu2, s2 = mean_cov(b)
    root_trace = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * root_trace)


class FidEvaluator(Evaluator):
    name = "fid"

    def __init__(self, extractor: str, num_features: int):
        self.extractor = extractor
        self.num_features = int(num_features)
        self.reset()

    def reset(self) -> None:
        self._generated: dict[int, Moments] = {}
        self._keys: set[tuple[str, int]] = set()
        self._reference: Moments | None = None
        self._reference_settings: dict | None = None

    def update(self, keys: list[tuple[str, int]], features: np.ndarray) -> None:
        """Add generated images (``(sample_id, k)`` each) with their features [N, D]; an image
        already recorded here is skipped (padded last batches)."""
        features = np.asarray(features, dtype=np.float64)
        if features.shape != (len(keys), self.num_features):
            raise SpbenchError(f"FID got features of shape {features.shape} for {len(keys)} images, "
                               f"expected ({len(keys)}, {self.num_features}) from {self.extractor}")
        rows_by_k: dict[int, list[int]] = {}
        for i, (sample_id, k) in enumerate(keys):
            key = (str(sample_id), int(k))
            if key not in self._keys:
                self._keys.add(key)
                rows_by_k.setdefault(key[1], []).append(i)
        for k, rows in rows_by_k.items():
            self._generated.setdefault(k, Moments(self.num_features)).add(features[rows])

    def set_reference(self, moments: Moments, settings: dict) -> None:
        if moments.sum.shape != (self.num_features,):
            raise SpbenchError(f"FID reference statistics have {moments.sum.shape[0]} features, "
                               f"expected {self.num_features}")
        self._reference, self._reference_settings = moments, dict(settings)

    def state(self) -> dict:
        return {
            "metric": self.name, "extractor": self.extractor, "num_features": self.num_features,
            "keys": sorted([s, k] for s, k in self._keys),
            "generated": {str(k): m.to_state() for k, m in self._generated.items()},
            "reference": self._reference.to_state() if self._reference is not None else None,
            "reference_settings": self._reference_settings,
        }

    def merge(self, states: list[dict]) -> "FidEvaluator":
        for st in states:
            if (st.get("extractor"), st.get("num_features")) != (self.extractor, self.num_features):
                raise SpbenchError(f"cannot merge FID states of {st.get('extractor')!r} into {self.extractor!r}")
            keys = {(s, int(k)) for s, k in st["keys"]}
            both = keys & self._keys
            if both:
                # Sums cannot drop a duplicate afterwards: an image must be scored on one process only.
                s, k = min(both)
                raise SpbenchError(f"FID: image {s} k={k} was scored on two processes; its features would count twice")
            self._keys |= keys
            for k, m in st["generated"].items():
                target = self._generated.setdefault(int(k), Moments(self.num_features))
                target += Moments.from_state(m)
            if st.get("reference") is not None:
                if self._reference is not None and st["reference_settings"] != self._reference_settings:
                    raise SpbenchError("FID: processes used different reference statistics")
                if self._reference is None:
                    self._reference = Moments.from_state(st["reference"])
                    self._reference_settings = st["reference_settings"]
        return self

    def compute(self) -> dict:
        """``{"fid", "per_k": {"0": {"fid", "num_generated"}}, "mean_over_k", "std_over_k",
        "num_generated", "num_reference", ...}``; a FID over fewer than two images is None."""
        if self._reference is None:
            raise SpbenchError("FID has no reference statistics (they are computed on the main process)")
        pooled = Moments(self.num_features)
        per_k = {}
        for k in sorted(self._generated):
            m = self._generated[k]
            pooled += m
            per_k[str(k)] = {"fid": frechet_distance(m, self._reference), "num_generated": m.n}
        result = {"fid": frechet_distance(pooled, self._reference), "per_k": per_k}
        result.update(spread_over_k(per_k, "fid"))
        result.update(num_generated=pooled.n, num_reference=self._reference.n, extractor=self.extractor,
                      num_features=self.num_features, reference_settings=self._reference_settings)
        return result

    def records(self) -> list[dict]:
        """FID has no per-image value: the records list the images that entered it."""
        return [{"sample_id": s, "k": k} for s, k in sorted(self._keys)]


# -- reference statistics and their cache ---------------------------------------------------------------

def cache_root(config: dict) -> Path:
    """``paths.cache``, else ``$SPBENCH_CACHE``, else ``~/.cache/spbench``."""
    configured = (config.get("paths") or {}).get("cache") or os.environ.get("SPBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "spbench"


def reference_settings(ctx, extractor: FeatureExtractor) -> dict:
    """Everything that decides the reference statistics (the cache key)."""
    gen, data = ctx.config["generation"], ctx.run_info["dataset"]
    size = gen["canvas"]
    width, height = (size, size) if isinstance(size, int) else tuple(size)
    return {
        "version": CACHE_VERSION, "dataset": data["name"], "split": data["split"], "split_hash": data["hash"],
        "num_samples": len(ctx.samples), "canvas": [width, height], "canvas_mode": gen["canvas_mode"],
        "to_canvas": REFERENCE_TO_CANVAS, "extractor": extractor.name, "weights": extractor.weights,
        "num_features": extractor.num_features, "resize": extractor.resize,
    }


def reference_cache_path(config: dict, settings: dict) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    resize = "tf1" if settings["resize"].startswith("TensorFlow") else "aa"
    parts = [settings["dataset"], settings["split"], settings["split_hash"], "{}x{}".format(*settings["canvas"]),
             settings["canvas_mode"], settings["extractor"], resize, digest]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)
    return cache_root(config) / "fid" / f"{name}.npz"


def load_reference(path: Path, settings: dict) -> Moments | None:
    """The cached moments, or None if absent, unreadable or made under other settings."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if json.loads(str(f["settings"])) != settings:
                return None
            m = Moments(0)
            m.n, m.sum, m.outer = int(f["n"]), f["sum"].copy(), f["outer"].copy()
            return m
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def save_reference(path: Path, settings: dict, m: Moments) -> None:
    from spbench.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, settings=np.array(json.dumps(settings, sort_keys=True)), n=np.array(m.n), sum=m.sum, outer=m.outer)
    atomic_write_bytes(path, buf.getvalue())


def reference_moments(ctx, extractor: FeatureExtractor, batch_size: int,
                      progress=None) -> tuple[Moments, dict, Path, bool]:
    """Moments of the split's real images on the canvas: from the cache, or computed and cached.
    Returns (moments, settings, cache path, reused)."""
    from PIL import Image

    from spbench.canvas import CanvasTransform
    from spbench.conditions.grid import image_to_canvas
    from spbench.metrics.evaluate import batches

    settings = reference_settings(ctx, extractor)
    path = reference_cache_path(ctx.config, settings)
    cached = load_reference(path, settings)
    if cached is not None:
        return cached, settings, path, True
    size, mode = tuple(settings["canvas"]), settings["canvas_mode"]
    moments = Moments(extractor.num_features)
    samples = list(ctx.samples.values())
    task = progress.add_task("FID reference statistics", total=len(samples)) if progress else None
    for chunk in batches(samples, batch_size):
        images = []
        for s in chunk:
            file = ctx.reference_image_path(s)
            try:
                with Image.open(file) as im:
                    images.append(image_to_canvas(im, CanvasTransform.fit(s.width, s.height, size, mode)))
            except OSError as e:
                raise SpbenchError(f"FID needs the dataset's real images: cannot read {file} ({type(e).__name__}); "
                                   "check the dataset's data root") from None
        moments.add(extractor(images))
        if progress:
            progress.advance(task, len(chunk))
    save_reference(path, settings, moments)
    return moments, settings, path, False


# -- scoring a run -----------------------------------------------------------------------------------------

def fid_settings(ctx) -> dict:
    ev = ctx.config.get("evaluation", {})
    return {"resize": ctx.overrides.get("fid_resize") or ev.get("fid_resize") or "antialias",
            "batch_size": int(ev.get("fid_batch_size") or 32)}


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def score_fid(ctx, rows: list[dict], progress=None) -> FidEvaluator:
    """Features of this process's generated images; the main process adds the reference statistics."""
    settings = fid_settings(ctx)
    spec = ctx.config["models"].get("inception")
    extractor = load_extractor(spec, settings["resize"], ctx.device)
    evaluator = FidEvaluator(extractor.name, extractor.num_features)
    evaluator.description = {
        "model": spec, "features": extractor.num_features, "weights": extractor.weights,
        "generated_images": "as written (canvas size)",
        "reference_images": f"the split's real images brought to the canvas by {REFERENCE_TO_CANVAS}",
        "resize": f"{extractor.resize}, inside the extractor, uint8 input",
        "spread": "mean and sample std (ddof=1) of FID over k",
    }
    task = progress.add_task("scoring FID", total=len(rows)) if progress else None
    for batch, images in ctx.image_batches(rows, settings["batch_size"]):
        for r, im in zip(batch, images):
            w, h = r["canvas"]["width"], r["canvas"]["height"]
            if im.size != (w, h):
                raise SpbenchError(f"{r['file']}: image is {im.size[0]}x{im.size[1]} but its canvas is {w}x{h}; "
                                   "FID compares images in the canvas frame")
        evaluator.update([(r["sample_id"], r["k"]) for r in batch], extractor(images))
        if progress:
            progress.advance(task, len(batch))
    if _is_main_process():
        moments, ref_settings, path, reused = reference_moments(ctx, extractor, settings["batch_size"], progress)
        evaluator.set_reference(moments, ref_settings)
        evaluator.description["reference_cache"] = f"{path} ({'reused' if reused else 'written'})"
    return evaluator
