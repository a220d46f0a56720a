"""LPIPS (Zhang et al., CVPR 2018) for the diversity metric: torchmetrics' LPIPS network with its
weights loaded by spbench, never downloaded and never unpickling code.

torchmetrics' ``LearnedPerceptualImagePatchSimilarity`` builds a torchvision backbone with
``weights=DEFAULT`` (a download from download.pytorch.org) and reads its shipped linear layers
(``torchmetrics/functional/image/lpips_models/<net>.pth``) with a bare ``torch.load``. Here the
same network (``_NoTrainLpips``) is built without any weights and filled from files:

- the backbone: torchvision's ImageNet weights of AlexNet (``alex``, LPIPS's default), VGG16
  (``vgg``) or SqueezeNet 1.1 (``squeeze``), read with ``torch.load(weights_only=True)`` or as
  safetensors (:mod:`spbench.weights`);
- the linear layers: the LPIPS v0.1 weights torchmetrics ships, read the same way.

``models.lpips`` says where the backbone comes from:

- ``alex`` / ``vgg`` / ``squeeze``: torchvision's file in torch's hub cache
  (``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``, ...), where torchvision keeps it;
- a ``.pth`` / ``.safetensors`` file holding torchvision's state dict (``features.*`` keys; the
  network is recognised from them);
- a folder holding one of torchvision's files under its own name;
- ``tiny://lpips``: a randomly initialised AlexNet (seeded) with the shipped linear layers, for
  tests; its distances mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spbench.errors import SpbenchError
from spbench.metrics.model_specs import is_tiny, tiny_builder
from spbench.weights import read_tensors

TINY_LPIPS = "tiny://lpips"
NETS = ("alex", "vgg", "squeeze")
# torchvision's weight files (the basename of each ``*_Weights.DEFAULT.url``).
TORCHVISION_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
TORCHVISION_URL = "https://download.pytorch.org/models/"


@dataclass
class LpipsModel:
    """torchmetrics' LPIPS network with its weights, and where they came from."""

    module: Any
    net: str
    backbone: str   # the backbone weights file (absolute path), or the tiny spec
    linear: str     # the linear-layer weights file (absolute path)
    device: str = "cpu"

    def distances(self, first, second) -> list[float]:
        """LPIPS between ``first[i]`` and ``second[i]``: float tensors [N, 3, H, W] in [0, 1]
        (torchmetrics' ``normalize=True`` convention, mapped to [-1, 1] inside)."""
        import torch

        with torch.inference_mode():
            out = self.module(first.to(self.device, torch.float32), second.to(self.device, torch.float32), normalize=True)
        return out.reshape(-1).double().cpu().tolist()


def linear_weights_file(net: str) -> Path:
    """The LPIPS v0.1 linear layers torchmetrics ships for ``net``."""
    from torchmetrics.functional.image import lpips as tm_lpips

    path = Path(tm_lpips.__file__).resolve().parent / "lpips_models" / f"{net}.pth"
    if not path.is_file():
        raise SpbenchError(f"torchmetrics' LPIPS weights {path} are missing: reinstall torchmetrics")
    return path


def _lpips_network(net: str, initialise: bool = False):
    """torchmetrics' LPIPS network for ``net`` with nothing loaded: its parameters on the meta
    device (no memory, no initialisation: they are assigned from files), or with ``initialise``
    randomly initialised as torchvision and torch initialise them."""
    import contextlib

    import torch
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    with contextlib.nullcontext() if initialise else torch.device("meta"):
        module = _NoTrainLpips(pretrained=False, net=net, pnet_rand=True, use_dropout=True)
    # The input scaling's constants are plain buffers outside the state dict: real tensors always.
    if module.scaling_layer.shift.is_meta:
        raise SpbenchError("torchmetrics' LPIPS scaling layer was built on the meta device; this torchmetrics "
                           "version is not supported by spbench's LPIPS loader")
    return module


def recognise_net(state: dict, where: str) -> str:
    """Which backbone a torchvision state dict is, from its ``features.*`` keys."""
    first = state.get("features.0.weight")
    if first is None:
        raise SpbenchError(f"{where} has no 'features.0.weight': expected torchvision's AlexNet, VGG16 or "
                           f"SqueezeNet 1.1 state dict (e.g. {TORCHVISION_FILES['alex']}); fix models.lpips")
    if any(".squeeze." in key for key in state):
        return "squeeze"
    if tuple(first.shape) == (64, 3, 11, 11):
        return "alex"
    if tuple(first.shape) == (64, 3, 3, 3) and "features.28.weight" in state:
        return "vgg"
    raise SpbenchError(f"{where}: features.0.weight has shape {tuple(first.shape)}, which is none of AlexNet, VGG16 "
                       "or SqueezeNet 1.1; fix models.lpips")


def backbone_key(lpips_key: str) -> str:
    """torchvision's key of an LPIPS backbone parameter: ``net.slice2.3.weight`` (AlexNet, VGG) or
    ``net.slices.1.3.squeeze.weight`` (SqueezeNet) -> ``features.3.weight`` / ``features.3.squeeze.weight``
    (the slices hold torchvision's ``features`` modules under their own indices)."""
    parts = lpips_key.split(".")[1:]                       # drop "net"
    parts = parts[2:] if parts[0] == "slices" else parts[1:]  # drop the slice
    return "features." + ".".join(parts)


def build_lpips(net: str, backbone: dict, linear: dict, where: str = "the backbone weights"):
    """torchmetrics' LPIPS network of ``net`` with the given torchvision backbone state dict and
    LPIPS linear-layer state dict, every parameter checked present and of the right shape."""
    import torch

    module = _lpips_network(net)
    wanted = module.state_dict()
    state = {}
    for key, tensor in wanted.items():
        if key.startswith("net."):
            source, name, file = backbone, backbone_key(key), where
        else:
            # ``lins.N`` are the modules ``linN`` again (torchmetrics registers both names).
            name = "lin" + key.split(".", 2)[1] + "." + key.split(".", 2)[2] if key.startswith("lins.") else key
            source, file = linear, "the LPIPS linear-layer weights"
        if name not in source:
            raise SpbenchError(f"{file} lack {name!r} (LPIPS {net}); fix models.lpips")
        value = source[name]
        if tuple(value.shape) != tuple(tensor.shape):
            raise SpbenchError(f"{file}: {name!r} has shape {tuple(value.shape)}, LPIPS {net} needs {tuple(tensor.shape)}; "
                               "fix models.lpips")
        state[key] = value.to(torch.float32)
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def backbone_file(spec: str) -> Path:
    """The backbone weights file ``models.lpips`` names (see the module doc); never downloads."""
    if spec in NETS:
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[spec]
        if not path.is_file():
            raise SpbenchError(
                f"models.lpips={spec}: torchvision's {TORCHVISION_FILES[spec]} is not in {path.parent} and spbench does "
                f"not download it: fetch {TORCHVISION_URL}{TORCHVISION_FILES[spec]} where there is network and pass "
                f"its path with --set models.lpips=FILE (or put it in that folder)")
        return path
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        found = [path / f for f in TORCHVISION_FILES.values() if (path / f).is_file()]
        if len(found) != 1:
            what = "none" if not found else ", ".join(f.name for f in found)
            raise SpbenchError(f"models.lpips={spec}: the folder must hold exactly one of torchvision's "
                               f"{', '.join(TORCHVISION_FILES.values())} (it holds {what}); or pass the file itself")
        return found[0]
    if path.is_file():
        return path
    raise SpbenchError(f"models.lpips={spec!r} is neither {', '.join(NETS)}, {TINY_LPIPS}, nor an existing file or "
                       "folder: pass torchvision's backbone weights (e.g. --set models.lpips=/weights/alexnet-owt-7be5be79.pth)")


def load_lpips(spec, device: str = "cpu") -> LpipsModel:
    """The LPIPS network ``models.lpips`` names (see the module doc)."""
    if not spec:
        raise SpbenchError("no LPIPS backbone configured: set models.lpips to alex, vgg, squeeze or torchvision's "
                           "weights file (e.g. --set models.lpips=/weights/alexnet-owt-7be5be79.pth)")
    spec = os.fspath(spec)
    if is_tiny(spec, TINY_LPIPS, "LPIPS network"):
        module, net, linear = tiny_builder(spec)()
        return LpipsModel(module.to(device), net, spec, str(linear), device)
    path = backbone_file(spec)
    fix = "pass torchvision's AlexNet, VGG16 or SqueezeNet 1.1 weights with --set models.lpips=FILE"
    backbone = read_tensors(path, "a torchvision backbone state dict", fix)
    net = recognise_net(backbone, str(path))
    if spec in NETS and net != spec:
        raise SpbenchError(f"{path} holds {net} weights, not {spec}: replace the file or pass --set models.lpips={net}")
    linear = linear_weights_file(net)
    lin = read_tensors(linear, "LPIPS linear-layer weights", "reinstall torchmetrics")
    return LpipsModel(build_lpips(net, backbone, lin, str(path)).to(device), net, str(path.resolve()), str(linear), device)


def build_tiny_lpips(seed: int = 0):
    """(network, net name, linear weights file): a seeded random torchvision AlexNet backbone with
    the LPIPS v0.1 linear layers torchmetrics ships (non-negative, so distances stay >= 0)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random = _lpips_network("alex", initialise=True)  # torchvision's AlexNet init for the backbone
    backbone = {backbone_key(k): v for k, v in random.state_dict().items() if k.startswith("net.")}
    linear = linear_weights_file("alex")
    lin = read_tensors(linear, "LPIPS linear-layer weights", "reinstall torchmetrics")
    return build_lpips("alex", backbone, lin, TINY_LPIPS), "alex", linear
