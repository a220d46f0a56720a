"""The image embedding of the diversity metric's Vendi score: DINOv2 (Oquab et al. 2023) through
transformers' ``Dinov2Model`` and its own image processor (``models.dino``: a hub id such as
``facebook/dinov2-base`` or a local folder, loaded with ``from_pretrained``), or a tiny random
DINOv2 built in-process for tests (``tiny://dinov2``).

An image's embedding is the model's ``pooler_output``: the final layer-normed class token, the
image-level feature DINOv2 is evaluated with (and the one Stein et al. 2023 use to score generated
images).
"""

from __future__ import annotations

import os

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.model_specs import is_tiny, tiny_builder

TINY_DINO = "tiny://dinov2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoEmbedder:
    """A transformers ``Dinov2Model`` and its image processor: one embedding per image."""

    def __init__(self, model, processor, name: str, device: str = "cpu", batch_size: int = 16):
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.device = device
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def load(cls, spec, device: str = "cpu", batch_size: int = 16) -> "DinoEmbedder":
        if not spec:
            raise SpbenchError("no DINOv2 model configured: set models.dino (e.g. facebook/dinov2-base or a local folder)")
        spec = os.fspath(spec)
        if is_tiny(spec, TINY_DINO, "DINOv2 model"):
            model, processor = tiny_builder(spec)()
        else:
            from transformers import AutoImageProcessor, Dinov2Model

            from spbench.models.hub import load_pretrained

            model = load_pretrained(Dinov2Model, spec, role="DINOv2 model", setting="models.dino")
            processor = load_pretrained(AutoImageProcessor, spec, role="DINOv2 model", setting="models.dino")
        return cls(model, processor, spec, device, batch_size)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, images: list) -> np.ndarray:
        """float64 embeddings [N, D] of PIL images."""
        import torch

        out = []
        for i in range(0, len(images), self.batch_size):
            pixels = self.processor(images=images[i:i + self.batch_size], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                pooled = self.model(pixel_values=pixels.to(self.device, self.model.dtype)).pooler_output
            out.append(pooled.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))


def build_tiny_dinov2(seed: int = 0):
    """A tiny random DINOv2 (2 layers, width 32, patch 8 on 32x32 crops) with a DINOv2-style image
    processor (shortest side to 32, bicubic, centre crop 32, ImageNet normalisation), built offline."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                          image_size=32, patch_size=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config).eval()
    processor = BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                  do_center_crop=True, do_convert_rgb=True, resample=3,
                                  image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    return model, processor
