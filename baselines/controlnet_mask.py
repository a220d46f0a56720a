"""ControlNet on semantic masks (paper Table 3, "Mask ControlNet").

The condition is the union of the instances' SAM-HQ masks, white on black (RGB), as the official
SP-Ctrl script renders it (``255 * (mask > 0)``, one colour for every instance). SAM-HQ
(``models.segmenter``) runs on the reference image brought to the canvas, prompted with each
instance's ground-truth box mapped to the canvas, single-mask output.

Where on ``generation.condition_render`` (README "Fidelity"):

- ``official`` (the official scripts): SAM-HQ runs on the *original* reference image at its own
  size, prompted with the boxes in original coordinates (``custom_datasets/utils/
  get_mask_with_sam.py``), and the original-size mask is resized to the canvas with PIL
  ``BILINEAR``, as the official inference resizes its control image (``inference/
  gen_keypoint_w_controlnet.py``, ``inference_image``), so edges come out grey. Letterbox (no
  official counterpart): resized to the letterboxed image's size and pasted at its offset.
- ``native``: SAM-HQ runs on the canvas-sized reference image with the boxes on the canvas.

Masks are cached on disk (:mod:`spbench.conditions.extracted`), official ones at the original
size (the render mode is part of the cache key). Or bring precomputed masks:
``--set method.options.conditions_dir=DIR`` with ``DIR/<sample_id>.png`` (canvas-sized, or at the
original image size as the official scripts write them; resized with nearest neighbour).

The ControlNet comes from ``--checkpoint`` (e.g. the official AP-10K mask ControlNet); without
one it is initialised from the UNet.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from spbench.run.requests import MethodContext, Request
from spbench_baselines.controlnet import ControlNetMethod

# Bump when the rendering changes, so cached masks of the old rendering are not reused.
MASK_FORMAT = 1


def canvas_boxes_xyxy(request: Request) -> list[list[float]]:
    """The ground-truth boxes in ``request.transform``'s frame (the canvas, or the original image
    for official maps), as SAM box prompts [x1, y1, x2, y2], of the instances
    with a labelled keypoint (an ignored one is not in the pose condition either)."""
    boxes = []
    for inst in request.sample.labelled_instances:
        x, y, w, h = request.transform.bbox(inst.bbox)
        boxes.append([x, y, x + w, y + h])
    return boxes


def render_union(masks: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Union of bool masks [N, H, W] as white on black RGB of ``size`` (W, H)."""
    union = masks.any(axis=0) if len(masks) else np.zeros((size[1], size[0]), dtype=bool)
    gray = np.where(union, 255, 0).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))


def extraction_settings(settings: dict, render: str) -> dict:
    """Cache settings of an extractor under ``generation.condition_render``: official maps (made at
    the original size) get ``frame: original``; native ones keep the settings they always had, so
    caches made before the render mode mattered stay valid."""
    return {**settings, "frame": "original"} if render == "official" else dict(settings)


def in_extraction_frame(request: Request, render: str) -> Request:
    """The request in the frame maps are extracted in: the original image (identity transform)
    for ``official``, the canvas for ``native``."""
    import dataclasses

    from spbench.conditions.official import original_frame

    if render == "official":
        return dataclasses.replace(request, transform=original_frame(request.sample))
    return request


def to_canvas(make, request: Request, kind: str, render: str) -> Image.Image:
    """``make(request in the extraction frame)`` on the canvas: ``official`` resizes the
    original-size map as the official inference does (PIL BILINEAR; letterbox pasted at its
    offset), ``native`` makes it on the canvas directly."""
    from spbench.conditions.official import render_official

    if render != "official":
        return make(request)
    return render_official(kind, lambda sample, frame: make(in_extraction_frame(request, render)),
                           request.sample, request.transform)


class SamMasks:
    """SAM-HQ instance-mask unions of requests, cached; the segmenter loads on the first miss.

    ``image(request)`` segments the reference image in ``request.transform``'s frame; callers pass
    a request in the extraction frame (:func:`in_extraction_frame`). Also used by
    ``controlnet-depth`` for the official masked depth.
    """

    def __init__(self, context: MethodContext, render: str = "native"):
        from spbench.conditions.extracted import ConditionCache
        from spbench.conditions.official import check_render_mode
        from spbench.models.condition_models import fingerprint, require_model

        self.context = context
        self.render = check_render_mode(render)
        self.name = context.models.get("segmenter")
        require_model(self.name, "segmenter")
        settings = {"model": fingerprint(self.name), "prompt": "gt-box",
                    "multimask": False, "render": "union-white", "format": MASK_FORMAT}
        self.cache = ConditionCache.for_config(context.config, "sam-hq", extraction_settings(settings, self.render))
        self._extractor = None

    def image(self, request: Request) -> Image.Image:
        return self.cache.get_or_make(request, lambda: self._segment(request))

    def _segment(self, request: Request) -> Image.Image:
        from spbench.conditions.extracted import reference_on_canvas
        from spbench.models import condition_models

        if self._extractor is None:
            self._extractor = condition_models.load_segmenter(self.name).to(self.context.device)
        canvas = reference_on_canvas(request, "mask")
        masks = condition_models.segment_boxes(self._extractor, canvas, canvas_boxes_xyxy(request))
        return render_union(masks, canvas.size)


class MaskControlNetMethod(ControlNetMethod):
    name = "controlnet-mask"
    condition = "mask"
    description = "ControlNet on SD1.5 driven by SAM-HQ instance masks (GT-box prompts) of the reference image"
    # Only --checkpoint: models.controlnet names the OpenPose ControlNet.
    checkpoint_model = None
    reads_reference_images = True  # conditions made from the dataset's image, or precomputed maps of it
    OPTIONS = {"conditions_dir": None}

    def __init__(self, context: MethodContext):
        from spbench.conditions.extracted import check_conditions_dir, method_options
        from spbench.conditions.official import check_render_mode

        super().__init__(context)
        self.opts = method_options(context.config, self.OPTIONS)
        if self.opts["conditions_dir"]:
            check_conditions_dir(self.opts["conditions_dir"])
        self.render = check_render_mode(self.condition_render)
        self.masks = None if self.opts["conditions_dir"] else SamMasks(context, self.render)

    def condition_image(self, request: Request) -> Image.Image:
        from spbench.conditions.extracted import read_precomputed

        if self.masks is None:
            return read_precomputed(self.opts["conditions_dir"], request, Image.Resampling.NEAREST)
        return to_canvas(self.masks.image, request, "mask", self.render)

    def identity(self) -> dict:
        source = ({"conditions_dir": self.opts["conditions_dir"]} if self.masks is None
                  else {"segmenter": self.masks.name, "condition_cache": self.masks.cache.key})
        return {**super().identity(), "mask": "union of instance masks, white on black", **source}
