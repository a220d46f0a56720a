"""ControlNet on depth maps (paper Table 3, "Depth ControlNet").

Depth comes from ZoeDepth (``models.depth_estimator``) run on the reference image, flip-averaged as
ZoeDepth's own inference, then turned into a 3-channel uint8 image with near = bright, as
ControlNet depth maps are. Where, on ``generation.condition_render`` (README "Fidelity"):
``official`` (the official scripts): on the *original* image at its own size
(``custom_datasets/utils/gen_depth_map.py``), masked there (``gen_masked_depth``, below), and the
original-size map resized to the canvas with PIL ``BILINEAR`` as the official inference resizes its
control image (letterbox: resized to the letterboxed size, pasted at its offset); ``native``: on
the reference image brought to the canvas, masked on the canvas. Normalisation (``method.options.depth_normalisation``):

- ``percentile`` (default): ControlNet's ZoeDepth annotator, which the official SP-Ctrl script
  used (controlnet_aux ``ZoeDetector``): ``v = 1 - (d - P2) / (P85 - P2)`` with P2, P85 the 2nd
  and 85th percentiles of the image's depth, then ``uint8(clip(255 v, 0, 255))`` (truncated).
- ``minmax``: ``v = 1 - (d - min) / (max - min)``, same conversion.
A constant depth map (no range) gives a black image.

``method.options.depth_mask`` (the official repository's "masked depth"): ``none`` (default, the
paper's plain ZoeDepth), ``sam`` (depth kept inside the union of the SAM-HQ instance masks, black
elsewhere, as the official ``gen_masked_depth``), or ``boxes`` (kept inside the ground-truth boxes:
pixels whose centre lies in a box), both in the extraction frame. Depth maps are cached on disk
before masking (:mod:`spbench.conditions.extracted`; official ones at the original size, the render
mode being part of the cache key). Or bring precomputed maps:
``--set method.options.conditions_dir=DIR`` with ``DIR/<sample_id>.png`` (canvas-sized, or at the
original image size; resized bicubic); the mask option applies to them too.

The ControlNet comes from ``--checkpoint`` (e.g. ``lllyasviel/control_v11f1p_sd15_depth`` or the
official AP-10K depth ControlNet); without one it is initialised from the UNet.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from spbench.errors import SpbenchError
from spbench.run.requests import MethodContext, Request
from spbench_baselines.controlnet import ControlNetMethod
from spbench_baselines.controlnet_mask import SamMasks, canvas_boxes_xyxy, extraction_settings, to_canvas

NORMALISATIONS = ("percentile", "minmax")
DEPTH_MASKS = ("none", "sam", "boxes")
# Bump when the depth rendering changes, so cached maps of the old rendering are not reused.
DEPTH_FORMAT = 1


def depth_to_image(depth: np.ndarray, normalisation: str = "percentile") -> Image.Image:
    """Metric depth [H, W] (larger = farther) -> RGB uint8 with near = bright (see module doc)."""
    depth = np.asarray(depth, dtype=np.float64)
    if normalisation == "percentile":
        lo, hi = np.percentile(depth, 2), np.percentile(depth, 85)
    elif normalisation == "minmax":
        lo, hi = depth.min(), depth.max()
    else:
        raise SpbenchError(f"unknown depth normalisation {normalisation!r} (method.options.depth_normalisation): "
                           f"use {' or '.join(NORMALISATIONS)}")
    if not hi > lo:
        gray = np.zeros(depth.shape, dtype=np.uint8)
    else:
        gray = ((1.0 - (depth - lo) / (hi - lo)) * 255.0).clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))


def box_mask(request: Request) -> np.ndarray:
    """Bool [H, W]: pixels whose centre (x + 0.5, y + 0.5) lies inside a GT box, in
    ``request.transform``'s frame (the canvas, or the original image for official maps)."""
    t = request.transform
    xs, ys = np.arange(t.width) + 0.5, np.arange(t.height) + 0.5
    mask = np.zeros((t.height, t.width), dtype=bool)
    for x1, y1, x2, y2 in canvas_boxes_xyxy(request):
        mask |= ((ys >= y1) & (ys <= y2))[:, None] & ((xs >= x1) & (xs <= x2))[None, :]
    return mask


class DepthControlNetMethod(ControlNetMethod):
    name = "controlnet-depth"
    condition = "depth"
    description = "ControlNet on SD1.5 driven by ZoeDepth depth maps of the reference image"
    # Only --checkpoint: models.controlnet names the OpenPose ControlNet.
    checkpoint_model = None
    reads_reference_images = True  # conditions made from the dataset's image, or precomputed maps of it
    OPTIONS = {"conditions_dir": None, "depth_normalisation": "percentile", "depth_mask": "none"}

    def __init__(self, context: MethodContext):
        from spbench.conditions.extracted import ConditionCache, check_conditions_dir, method_options
        from spbench.conditions.official import check_render_mode
        from spbench.models.condition_models import fingerprint, require_model

        super().__init__(context)
        self.opts = method_options(context.config, self.OPTIONS)
        self.render = check_render_mode(self.condition_render)
        for key, allowed in (("depth_normalisation", NORMALISATIONS), ("depth_mask", DEPTH_MASKS)):
            if self.opts[key] not in allowed:
                raise SpbenchError(f"method.options.{key}={self.opts[key]!r} is not one of {', '.join(allowed)}")
        self.estimator = context.models.get("depth_estimator")
        self.cache = None
        if self.opts["conditions_dir"]:
            check_conditions_dir(self.opts["conditions_dir"])
        else:
            require_model(self.estimator, "depth estimator")
            settings = {"model": fingerprint(self.estimator), "normalisation": self.opts["depth_normalisation"],
                        "flip": True, "format": DEPTH_FORMAT}
            self.cache = ConditionCache.for_config(context.config, "zoedepth", extraction_settings(settings, self.render))
        self.masks = SamMasks(context, self.render) if self.opts["depth_mask"] == "sam" else None
        self._extractor = None

    def condition_image(self, request: Request) -> Image.Image:
        if self.cache is None:  # precomputed maps: brought to the canvas as they are, either mode
            return self._masked(request)
        return to_canvas(self._masked, request, "depth", self.render)

    def _masked(self, request: Request) -> Image.Image:
        """The (masked) depth map in ``request.transform``'s frame."""
        from spbench.conditions.extracted import read_precomputed

        if self.cache is None:
            image = read_precomputed(self.opts["conditions_dir"], request, Image.Resampling.BICUBIC)
        else:
            image = self.cache.get_or_make(request, lambda: self._estimate(request))
        if self.opts["depth_mask"] == "none":
            return image
        keep = box_mask(request) if self.masks is None else np.asarray(self.masks.image(request))[:, :, 0] > 0
        return Image.fromarray(np.where(keep[:, :, None], np.asarray(image), 0).astype(np.uint8))

    def _estimate(self, request: Request) -> Image.Image:
        from spbench.conditions.extracted import reference_on_canvas
        from spbench.models import condition_models

        if self._extractor is None:
            self._extractor = condition_models.load_depth_estimator(self.estimator).to(self.context.device)
        depth = condition_models.estimate_depth(self._extractor, reference_on_canvas(request, "depth"))
        return depth_to_image(depth, self.opts["depth_normalisation"])

    def identity(self) -> dict:
        source = ({"conditions_dir": self.opts["conditions_dir"]} if self.cache is None
                  else {"depth_estimator": self.estimator, "condition_cache": self.cache.key})
        out = {**super().identity(), **source, "depth_normalisation": self.opts["depth_normalisation"],
               "depth_mask": self.opts["depth_mask"]}
        if self.masks is not None:
            out["segmenter"] = self.masks.name
        return out
