"""FID's feature extractor: torch-fidelity's FID Inception through torchmetrics
(``NoTrainInceptionV3``, 2048-d pool features) or the tiny random CNN for tests, with the resize
to its input size.

``models.inception``: ``pt_inception-2015-12-05`` means the file
``weights-inception-2015-12-05-6726825d.pth`` in ``$TORCH_HOME/hub/checkpoints`` (downloaded
there when missing and the hub is not offline), or give the path of that file (``.pth`` or
``.safetensors``, read by :mod:`spbench.weights`). ``tiny://inception`` is a tiny
random CNN (16 features, 32×32, resized by the same ``fid_resize`` rule as the real one).
Resize (``evaluation.fid_resize``): torch bilinear with antialias (``antialias``, torchmetrics'
default) or TensorFlow-1-compatible bilinear (``tf1``, torch-fidelity's and the original FID
code's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.model_specs import is_tiny, tiny_builder
from spbench.files import file_sha256
from spbench.weights import read_tensors, tensor_file

INCEPTION_NAME = "pt_inception-2015-12-05"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
TINY_INCEPTION = "tiny://inception"
RESIZES = {
    "antialias": "torch bilinear with antialias to {0}x{0}",
    "tf1": "TensorFlow-1-compatible bilinear to {0}x{0}",
}


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
        return features_by_size(images, self.num_features, self.features)

    def features(self, batch: np.ndarray) -> np.ndarray:
        """float64 features of uint8 images [N, H, W, 3] (one size per call)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous()
        with torch.inference_mode():
            out = self.module(x.to(self.device))
        return out.reshape(len(batch), -1).double().cpu().numpy()


def features_by_size(images: list, num_features: int, features) -> np.ndarray:
    """[N, num_features] features of PIL images, ``features`` called on the uint8 RGB stack
    [n, H, W, 3] of each group of images of one size (in the images' order)."""
    out = np.zeros((len(images), num_features))
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault(im.size, []).append(i)
    for idx in by_size.values():
        out[idx] = features(np.stack([np.asarray(images[i].convert("RGB"), dtype=np.uint8) for i in idx]))
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
    if is_tiny(spec, TINY_INCEPTION, "FID extractor"):
        module = tiny_builder(spec)(resize=resize)
        return FeatureExtractor(module.to(device), "tiny-inception", RESIZES[resize].format(module.input_size),
                                module.num_features, "seed-0", device)
    path = inception_weights(spec)
    from torchmetrics.image.fid import NoTrainInceptionV3

    # torch-fidelity unpickles its weights file without weights_only, which runs whatever code a
    # planted file holds; so the file is read here with weights_only=True (or as safetensors), and
    # torch-fidelity gets an in-memory copy of those checked tensors.
    what, fix = "torch-fidelity's FID Inception weights", f"download {INCEPTION_URL} again"
    weights = tensor_file(read_tensors(path, what, fix))
    try:
        module = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                    feature_extractor_weights_path=weights, antialias=resize == "antialias")
    except Exception as e:  # the wrong tensors fail inside load_state_dict
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpbenchError(f"{path} is not {what} ({first}); {fix}") from None
    return FeatureExtractor(module.to(device), INCEPTION_NAME, RESIZES[resize].format(299), 2048, file_sha256(path)[:16], device)


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
