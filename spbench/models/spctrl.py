"""The SP-Ctrl model: a diffusers ControlNet whose condition is the spatial-pose index map, and
its pipeline.

:class:`SPCtrlControlNetModel` is ``ControlNetModel`` plus the SPR module as
``spatext_embedding``; its config carries the SPR settings under the official key names
(``spatext_*``), so ``save_pretrained``/``from_pretrained`` round-trip it like any diffusers model
and the official checkpoint's keys match (see :mod:`spbench.models.spctrl_checkpoint`).

How the index map travels: diffusers' ControlNet pipeline would turn a PIL condition into RGB
floats in [0, 1] and resize it, which destroys labels. :class:`SPCtrlPipeline` overrides only
``prepare_image``: the mode-"L" index map becomes a float tensor [B, 1, H, W] holding the raw
values 0..255 (exact in float16/bfloat16 too), never resized; the model's forward checks the
values are integers, rounds them to the index map the SPR looks up, and hands the SPR's
[B, C', H, W] output to the ordinary ControlNet forward.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
from diffusers.configuration_utils import register_to_config

from spbench.models.spr import EMBEDDING_DIM, SpatialPoseRepresentation
from spbench.schemas import get_schema

# The SPR settings in config.json (official names; the last two are spbench's own, with defaults
# that reproduce the official behaviour when an official config lacks them).
SPR_CONFIG_KEYS = (
    "spatext_cond_channels", "spatext_init_emb", "spatext_skeleton_type", "spatext_enable_learn_kpt",
    "spatext_enable_learn_sks", "spatext_detach_kpt_grad_from_sks", "spatext_layer_version",
    "spatext_embedding_dim", "spatext_limb_schema",
)


def _with_controlnet_signature(init):
    """Give ``init`` the parent's parameters plus its own keyword-only ones: diffusers' config
    machinery reads the signature to know which config keys the model takes."""
    parent = inspect.signature(ControlNetModel.__init__).parameters.values()
    own = [p for p in inspect.signature(init).parameters.values() if p.kind is p.KEYWORD_ONLY]
    init.__signature__ = inspect.Signature([*parent, *own])
    return init


class SPCtrlControlNetModel(ControlNetModel):
    """ControlNet driven by the SPR of an index map. ``conditioning_channels`` is C'."""

    @register_to_config
    @_with_controlnet_signature
    def __init__(
        self,
        *,
        spatext_cond_channels: int | None = None,
        spatext_init_emb: str | None = None,
        spatext_skeleton_type: str = "one",
        spatext_enable_learn_kpt: bool = False,
        spatext_enable_learn_sks: bool = False,
        spatext_detach_kpt_grad_from_sks: bool = False,
        spatext_layer_version: str | None = None,
        spatext_embedding_dim: int = EMBEDDING_DIM,
        spatext_limb_schema: str = "ap10k",
        **controlnet_kwargs,
    ):
        super().__init__(**controlnet_kwargs)
        channels = self.config.conditioning_channels
        if spatext_cond_channels not in (None, channels):
            raise ValueError(f"spatext_cond_channels={spatext_cond_channels} but conditioning_channels={channels}: they are both C' and must agree")
        self.register_to_config(spatext_cond_channels=channels)
        # spatext_init_emb only records how E0 was made (official: a file path): the weights carry E0.
        self.spatext_embedding = SpatialPoseRepresentation(
            channels,
            embedding_dim=spatext_embedding_dim,
            skeleton_type=spatext_skeleton_type,
            learnable_e0=spatext_enable_learn_kpt,
            learnable_skeleton=spatext_enable_learn_sks,
            detach_kpt_grad_from_sks=spatext_detach_kpt_grad_from_sks,
            layer_version=spatext_layer_version,
            limbs=get_schema(spatext_limb_schema).indexed_limbs,
            num_keypoints=get_schema(spatext_limb_schema).num_keypoints,
        )

    @classmethod
    def from_unet(
        cls,
        unet,
        *,
        cond_channels: int = 3,
        init_embedding: torch.Tensor | None = None,
        init_emb: str | None = None,
        skeleton_type: str = "one",
        learnable_e0: bool = False,
        learnable_skeleton: bool = False,
        detach_kpt_grad_from_sks: bool = False,
        layer_version: str | None = None,
        limb_schema: str = "ap10k",
        seed: int = 0,
        **controlnet_kwargs,
    ) -> "SPCtrlControlNetModel":
        """Start from scratch: the UNet's encoder (``ControlNetModel.from_unet``) plus a new SPR.

        ``init_embedding`` [17, D] is E0 (e.g. keypoint-name text embeddings; ``init_emb`` records
        where it came from); None: ``randn`` seeded with ``seed``. ``limb_schema`` names the
        keypoint schema behind the SPR's tables: its keypoint count (rows of E0) and its limbs
        (the official: AP-10K's 17, whatever the dataset; a schema file's K and skeleton).
        """
        model = super().from_unet(unet, conditioning_channels=cond_channels, **controlnet_kwargs)
        settings = dict(
            spatext_init_emb=init_emb, spatext_skeleton_type=skeleton_type,
            spatext_enable_learn_kpt=learnable_e0, spatext_enable_learn_sks=learnable_skeleton,
            spatext_detach_kpt_grad_from_sks=detach_kpt_grad_from_sks, spatext_layer_version=layer_version,
            spatext_embedding_dim=EMBEDDING_DIM if init_embedding is None else int(init_embedding.shape[1]),
            spatext_limb_schema=limb_schema,
        )
        # These were defaults when `from_unet` built the model; they are chosen values now.
        defaults = [k for k in model.config.get("_use_default_values", []) if k not in settings]
        model.register_to_config(**settings, _use_default_values=defaults)
        model.spatext_embedding = SpatialPoseRepresentation(
            cond_channels, init_embedding=init_embedding, seed=seed, skeleton_type=skeleton_type,
            learnable_e0=learnable_e0, learnable_skeleton=learnable_skeleton,
            detach_kpt_grad_from_sks=detach_kpt_grad_from_sks, layer_version=layer_version,
            limbs=get_schema(limb_schema).indexed_limbs, num_keypoints=get_schema(limb_schema).num_keypoints,
        )
        return model

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, *args, **kwargs):
        """As ``ControlNetModel.forward``, with ``controlnet_cond`` an index map: [B, H, W] or
        [B, C, H, W] (channel 0 is read), integer values as ints or floats."""
        condition = self.spatext_embedding(as_index_map(controlnet_cond)).to(sample.dtype)
        if self.config.controlnet_conditioning_channel_order == "bgr":
            # The parent flips its input; the official model flips the one-channel map (a no-op).
            condition = condition.flip(1)
        return super().forward(sample, timestep, encoder_hidden_states, condition, *args, **kwargs)


def as_index_map(condition: torch.Tensor) -> torch.Tensor:
    """The long [B, H, W] index map inside a condition tensor; refuses non-integer values, which
    mean the map went through image preprocessing (scaled to [0, 1] or interpolated)."""
    if condition.ndim == 4:
        condition = condition[:, 0]
    if condition.ndim != 3:
        raise ValueError(f"SP-Ctrl condition must be an index map [B, H, W] or [B, C, H, W], got shape {tuple(condition.shape)}")
    if condition.is_floating_point():
        rounded = condition.round()
        if not torch.equal(rounded, condition):
            raise ValueError("SP-Ctrl condition has non-integer values: it was preprocessed as an image "
                             "(scaled or resized); pass raw index values, e.g. through SPCtrlPipeline")
        condition = rounded
    return condition.long()


def index_maps_to_tensor(images, width: int, height: int) -> torch.Tensor:
    """PIL "L" images / uint8 arrays / tensors [H, W] -> float32 [N, 1, H, W] of raw index values.
    Never resized: labels cannot be interpolated, so the map must be rendered at the canvas size."""
    items = images if isinstance(images, (list, tuple)) else [images]
    maps = []
    for item in items:
        if hasattr(item, "mode") and item.mode not in ("L", "P", "I"):  # PIL image
            raise ValueError(f"SP-Ctrl index map must be a one-channel image (mode L), got mode {item.mode}")
        array = item if torch.is_tensor(item) else torch.from_numpy(np.array(item))
        array = array.squeeze()
        if tuple(array.shape) != (height, width):
            raise ValueError(f"SP-Ctrl index map is {tuple(array.shape)} (H, W) but the canvas is {(height, width)}: render it at the canvas size")
        maps.append(array.to(torch.float32))
    return torch.stack(maps).unsqueeze(1)


class SPCtrlPipeline(StableDiffusionControlNetPipeline):
    """``StableDiffusionControlNetPipeline`` whose ``image=`` is the index map, passed untouched."""

    def prepare_image(self, image, width, height, batch_size, num_images_per_prompt, device, dtype,
                      do_classifier_free_guidance=False, guess_mode=False):
        maps = index_maps_to_tensor(image, width, height)
        # Same batching as the parent: one map for all, or one per prompt.
        repeat_by = batch_size if maps.shape[0] == 1 else num_images_per_prompt
        maps = maps.repeat_interleave(repeat_by, dim=0).to(device=device, dtype=dtype)
        if do_classifier_free_guidance and not guess_mode:
            maps = torch.cat([maps] * 2)
        return maps
