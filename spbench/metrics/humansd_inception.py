"""The Inception features of HumanSD's FID and KID (``utils/metrics/quality_metrics.py``), and
the pixels it feeds them.

HumanSD builds torchmetrics' ``FrechetInceptionDistance(feature=64, normalize=True)`` and
``KernelInceptionDistance(normalize=True)`` (2048 features): torch-fidelity's FID Inception
(``models.inception``, the same weights as spbench's FID), the 64-d features after its first
max-pool or the 2048-d pool features, images resized inside the network to 299x299 with
torch-fidelity's TensorFlow-1-compatible bilinear resize (the torchmetrics of 2023; today's
default adds antialiasing). ``normalize=True`` makes torchmetrics take float images in [0, 1] and
cast ``(x * 255).byte()``.

- generated images: the decoded images, x255, truncated to uint8 (here: the PNGs the run wrote,
  which the pipeline rounded to uint8);
- real images (``official``): ``Resize(299)`` (shorter side, PIL bilinear), ``CenterCrop(299)``,
  ``ToTensor``, ``Normalize(ImageNet mean, std)``, then torchmetrics' ``(x * 255).byte()``. The
  normalised values lie outside [0, 1], so the cast wraps them: truncation toward zero, modulo 256
  (:func:`wrap_to_uint8`; metrics.yaml runs it on the CPU, and PyTorch casts float to uint8
  through int64 on CUDA as well, c10/util/TypeCast.h, so Stable-Pose's CUDA runs wrap the same
  way). ``fixed``: the resized and cropped pixels themselves;
- Stable-Pose's ``eval_quality.py`` prepares its *generated* images as the real ones but without
  the crop (``Resize(299)``, ``ToTensor``, ``Normalize``; :func:`resized_generated_pixels`).

``tiny://inception`` is spbench's tiny random CNN (16 features, both metrics), for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.fid_inception import INCEPTION_NAME, INCEPTION_URL, FeatureExtractor, inception_weights
from spbench.metrics.model_specs import is_tiny, tiny_builder
from spbench.files import file_sha256
from spbench.weights import read_tensors, tensor_file

FID_FEATURE, KID_FEATURE = "64", "2048"
SIZE = 299
# Inside the network: torch-fidelity's TensorFlow-1-compatible bilinear resize to 299x299.
RESIZE = "tf1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TINY = "tiny://inception"
REAL_WORDS = {
    "official": "Resize(299) shorter side (PIL bilinear), CenterCrop(299), ToTensor, Normalize(ImageNet), then "
                "x255 cast to uint8 with wrap-around (torchmetrics normalize=True on normalised values, CPU cast)",
    "fixed": "Resize(299) shorter side (PIL bilinear), CenterCrop(299), the pixels as uint8",
}


@dataclass
class HumanSDExtractor(FeatureExtractor):
    """FID's feature extractor at one of HumanSD's feature layers (``feature``: "64", "2048")."""

    feature: str = "2048"


def load_extractor(spec: str | os.PathLike | None, feature: str, device: str = "cpu") -> HumanSDExtractor:
    """torch-fidelity's FID Inception at ``feature`` (``"64"`` or ``"2048"``), TF1 resize; or the
    tiny random CNN."""
    if feature not in (FID_FEATURE, KID_FEATURE):
        raise SpbenchError(f"HumanSD's metrics use the Inception features 64 (FID) or 2048 (KID), not {feature!r}")
    if spec is None:
        raise SpbenchError(f"no FID Inception weights configured: set models.inception to {INCEPTION_NAME} "
                           "or a .pth / .safetensors path")
    spec = os.fspath(spec)
    if is_tiny(spec, TINY, "FID extractor"):
        module = tiny_builder(spec)(resize="tf1")
        return HumanSDExtractor(module.to(device), "tiny-inception", RESIZE, module.num_features, "seed-0", device, feature)
    path = inception_weights(spec)
    from torchmetrics.image.fid import NoTrainInceptionV3

    what, fix = "torch-fidelity's FID Inception weights", f"download {INCEPTION_URL} again"
    weights = tensor_file(read_tensors(path, what, fix))  # read with weights_only / safetensors, as FID does
    try:
        module = NoTrainInceptionV3(name="inception-v3-compat", features_list=[feature],
                                    feature_extractor_weights_path=weights, antialias=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpbenchError(f"{path} is not {what} ({first}); {fix}") from None
    return HumanSDExtractor(module.to(device), INCEPTION_NAME, RESIZE, int(feature), file_sha256(path)[:16], device, feature)


def wrap_to_uint8(x):
    """torch's CPU ``tensor.byte()`` of float values, spelled out: truncation toward zero, then
    modulo 256 (so -540.07 -> 228 and 667.0 -> 155)."""
    import torch

    return torch.trunc(x).to(torch.int64).remainder(256).to(torch.uint8)


def _prepared(image, code: str, crop: bool) -> np.ndarray:
    """``Resize(299)`` (shorter side, PIL bilinear), ``CenterCrop(299)`` when ``crop``, then
    (``official``) ``ToTensor``, ``Normalize(ImageNet)`` and torchmetrics' wrapping uint8 cast, or
    (``fixed``) the pixels themselves: uint8 [H, W, 3]."""
    from torchvision.transforms import functional as TF

    image = TF.resize(image.convert("RGB"), SIZE)
    if crop:
        image = TF.center_crop(image, [SIZE, SIZE])
    if code == "fixed":
        return np.asarray(image, dtype=np.uint8).copy()
    x = TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)  # float32, as torchvision's ToTensor
    return wrap_to_uint8(x * 255).permute(1, 2, 0).numpy()


def real_pixels(image, code: str = "official") -> np.ndarray:
    """A real image as HumanSD hands it to the Inception: uint8 [299, 299, 3]."""
    return _prepared(image, code, crop=True)


def resized_generated_pixels(image, code: str = "official") -> np.ndarray:
    """A generated image as Stable-Pose's ``eval_quality.py`` hands it to the Inception:
    ``Resize(299)`` without a crop (299x299 for a square canvas), then as a real image."""
    return _prepared(image, code, crop=False)


def real_features(extractor: HumanSDExtractor, images: list, code: str = "official") -> np.ndarray:
    """Features of real PIL images prepared by :func:`real_pixels`."""
    if not images:
        return np.zeros((0, extractor.num_features))
    return extractor.features(np.stack([real_pixels(im, code) for im in images]))


def resized_generated_features(extractor: HumanSDExtractor, images: list, code: str = "official") -> np.ndarray:
    """Features of generated PIL images prepared by :func:`resized_generated_pixels` (images of
    one size per call are batched; a run's canvases all have one size)."""
    out = np.zeros((len(images), extractor.num_features))
    prepared = [resized_generated_pixels(im, code) for im in images]
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(prepared):
        by_shape.setdefault(a.shape, []).append(i)
    for idx in by_shape.values():
        out[idx] = extractor.features(np.stack([prepared[i] for i in idx]))
    return out
