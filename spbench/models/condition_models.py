"""Condition models: ZoeDepth (depth maps) and SAM-HQ (instance masks) through transformers.

Each loads from a hub id or a local folder (``load_pretrained``), or ``tiny://zoedepth`` /
``tiny://sam-hq``: the same architectures with random weights, built offline in well under a
second. A tiny one saves with :func:`save_condition_model` and loads back from that folder like a
real one. Inference helpers take a canvas image and return arrays at that image's size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from spbench.errors import SpbenchError
from spbench.models.hub import load_pretrained
from spbench.registry import is_tiny_spec, tiny_builder

TINY_ZOEDEPTH = "tiny://zoedepth"
TINY_SAM_HQ = "tiny://sam-hq"


@dataclass
class ConditionModel:
    model: Any
    processor: Any
    source: str  # the id / folder / tiny:// name it came from

    def to(self, device) -> "ConditionModel":
        # Float32 always: extraction runs once per sample (then comes from the cache), and
        # ZoeDepth's bin attractors and SAM's mask logits are not safe in float16.
        torch.nn.Module.to(self.model, device=device, dtype=torch.float32)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


# -- loading ----------------------------------------------------------------------------------
def load_depth_estimator(name: str | None) -> ConditionModel:
    """ZoeDepth from ``models.depth_estimator`` (e.g. ``Intel/zoedepth-nyu-kitti``) or tiny://zoedepth."""
    from transformers import ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    require_model(name, "depth estimator")
    if is_tiny_spec(name):
        return tiny_builder(name, TINY_ZOEDEPTH, "unknown tiny model {spec!r} (models.depth_estimator): use {known}")()
    kw = dict(role="depth estimator (ZoeDepth)", setting="models.depth_estimator")
    model = load_pretrained(ZoeDepthForDepthEstimation, name, **kw)
    processor = load_pretrained(ZoeDepthImageProcessor, name, **kw)
    return ConditionModel(model.requires_grad_(False).eval(), processor, name)


def load_segmenter(name: str | None) -> ConditionModel:
    """SAM-HQ from ``models.segmenter`` (e.g. ``syscv-community/sam-hq-vit-huge``) or tiny://sam-hq."""
    from transformers import SamHQModel, SamHQProcessor

    require_model(name, "segmenter")
    if is_tiny_spec(name):
        return tiny_builder(name, TINY_SAM_HQ, "unknown tiny model {spec!r} (models.segmenter): use {known}")()
    kw = dict(role="segmenter (SAM-HQ)", setting="models.segmenter")
    model = load_pretrained(SamHQModel, name, **kw)
    processor = load_pretrained(SamHQProcessor, name, **kw)
    return ConditionModel(model.requires_grad_(False).eval(), processor, name)


def save_condition_model(model: ConditionModel, folder: str | os.PathLike) -> None:
    """Model and processor into one folder that the loaders above read back."""
    model.model.save_pretrained(folder)
    model.processor.save_pretrained(folder)


def fingerprint(name: str) -> str:
    """What identifies a condition model's weights in a cache key: the id, or for a local folder its
    path plus each file's name, size and modification time (cheap, and changes when the weights
    are replaced)."""
    if not os.path.isdir(name):
        return name
    entries = []
    for f in sorted(os.listdir(name)):
        path = os.path.join(name, f)
        if os.path.isfile(path):
            stat = os.stat(path)
            entries.append((f, stat.st_size, stat.st_mtime_ns))
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
    return f"{os.path.abspath(name)}@{digest}"


# role -> (setting, the paper's model)
ROLES = {
    "depth estimator": ("models.depth_estimator", "Intel/zoedepth-nyu-kitti"),
    "segmenter": ("models.segmenter", "syscv-community/sam-hq-vit-huge"),
}


def require_model(name: str | None, role: str) -> None:
    """A one-line error when no model is configured for ``role``."""
    if not name:
        setting, example = ROLES[role]
        raise SpbenchError(
            f"no {role} configured ({setting} is empty): --set {setting}={example} or a local folder, "
            "or pass precomputed maps with --set method.options.conditions_dir=DIR"
        )


# -- tiny builders ----------------------------------------------------------------------------
def build_tiny_zoedepth(seed: int = 0) -> ConditionModel:
    """ZoeDepth as Intel/zoedepth-nyu-kitti is built (BEiT backbone, two metric heads "nyu" and
    "kitti" picked by the patch-transformer classifier), a few thousand times smaller; 32×32 input."""
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    # initializer_range 0.3: with the usual 0.02 a random ZoeDepth's output is constant to 1e-7,
    # which would hide whether the image reaches the depth map at all.
    backbone = BeitConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=32, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
        use_relative_position_bias=True, add_fpn=False, layer_scale_init_value=1.0, initializer_range=0.3,
    )
    config = ZoeDepthConfig(
        backbone_config=backbone, neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8,
        bottleneck_features=8, num_relative_features=8, bin_embedding_dim=8, num_attractors=[4, 2, 2, 1],
        bin_configurations=[
            {"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0, "name": "nyu"},
            {"n_bins": 8, "min_depth": 0.001, "max_depth": 80.0, "name": "kitti"},
        ],
        # The domain classifier's input width is fixed at 128 in transformers, and the patch
        # transformer always runs 4 layers.
        num_patch_transformer_layers=4, patch_transformer_hidden_size=128,
        patch_transformer_intermediate_size=16, patch_transformer_num_attention_heads=2,
        initializer_range=0.3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ZoeDepthForDepthEstimation(config)
    processor = ZoeDepthImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True, ensure_multiple_of=8)
    return ConditionModel(model.requires_grad_(False).eval(), processor, TINY_ZOEDEPTH)


def build_tiny_sam_hq(seed: int = 0) -> ConditionModel:
    """SAM-HQ as syscv-community/sam-hq-vit-huge is built (windowed ViT with global layers feeding
    the HQ decoder), tiny; 32×32 input, 8×8 image embeddings."""
    from transformers import (
        SamHQConfig, SamHQMaskDecoderConfig, SamHQModel, SamHQProcessor, SamHQPromptEncoderConfig,
        SamHQVisionConfig, SamImageProcessor,
    )

    config = SamHQConfig(
        vision_config=SamHQVisionConfig(
            image_size=32, patch_size=4, hidden_size=16, output_channels=16, num_hidden_layers=2,
            num_attention_heads=2, window_size=4, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=32,
        ),
        prompt_encoder_config=SamHQPromptEncoderConfig(image_size=32, patch_size=4, hidden_size=16, mask_input_channels=4),
        # vit_dim: the HQ decoder reads the ViT's global-attention features, so it is the ViT width.
        mask_decoder_config=SamHQMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16, vit_dim=16),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SamHQModel(config)
    image_processor = SamImageProcessor(
        size={"longest_edge": 32}, pad_size={"height": 32, "width": 32},
        mask_size={"longest_edge": 8}, mask_pad_size={"height": 8, "width": 8},
    )
    return ConditionModel(model.requires_grad_(False).eval(), SamHQProcessor(image_processor), TINY_SAM_HQ)


# -- inference --------------------------------------------------------------------------------
@torch.inference_mode()
def estimate_depth(model: ConditionModel, image: Image.Image) -> np.ndarray:
    """Metric depth (larger = farther), float32 [H, W] at ``image``'s size.

    As ZoeDepth's own ``infer`` (which ControlNet's depth annotator calls): reflect-padded input,
    prediction averaged with that of the horizontally flipped input, padding cropped off. One
    image per call: ZoeDepth picks its metric head by a vote over the whole batch.
    """
    image = image.convert("RGB")
    inputs = model.processor(images=image, return_tensors="pt")
    pixels = inputs["pixel_values"].to(model.device, torch.float32)
    outputs = model.model(pixel_values=pixels)
    flipped = model.model(pixel_values=torch.flip(pixels, dims=[3]))
    (result,) = model.processor.post_process_depth_estimation(
        outputs, source_sizes=[(image.height, image.width)], outputs_flipped=flipped
    )
    return result["predicted_depth"].float().cpu().numpy()


@torch.inference_mode()
def segment_boxes(model: ConditionModel, image: Image.Image, boxes_xyxy: list[list[float]]) -> np.ndarray:
    """One SAM-HQ mask per box prompt (pixel boxes x1, y1, x2, y2 in ``image``'s frame): bool
    [N, H, W]; single-mask output, logits > 0, as the official SP-Ctrl script."""
    image = image.convert("RGB")
    if not boxes_xyxy:
        return np.zeros((0, image.height, image.width), dtype=bool)
    inputs = model.processor(images=image, input_boxes=[boxes_xyxy], return_tensors="pt")
    outputs = model.model(
        pixel_values=inputs["pixel_values"].to(model.device, torch.float32),
        input_boxes=inputs["input_boxes"].to(model.device, torch.float32),
        multimask_output=False,
    )
    (masks,) = model.processor.image_processor.post_process_masks(
        outputs.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )
    return masks[:, 0].numpy().astype(bool)  # [N, 1, H, W] -> [N, H, W]
