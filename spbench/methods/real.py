"""The Real Image row: the dataset's own images, brought to the canvas, scored like generated ones.

It is the upper bound of the pose and detection metrics (and has no FID: it is the reference).
The "condition" of a request is the real image itself, so the engine's files, manifest and
resumption work unchanged; no model is loaded.
"""

from __future__ import annotations

from PIL import Image

from spbench.canvas import image_to_canvas
from spbench.errors import SpbenchError
from spbench.methods.base import Method
from spbench.run.requests import Request


class RealImageMethod(Method):
    name = "real"
    condition = "reference image"
    description = "the dataset's real images on the canvas (Real Image row; upper bound)"
    # One image per prompt: the k samples of a real image would all be the same picture.
    fixed_images_per_prompt = 1
    # No Stable Diffusion: a profile without models.base can run this row.
    uses_base_model = False
    # Its "condition" and its image are the dataset's image file itself.
    reads_reference_images = True
    returns_dataset_images = True
    # The real images are FID's reference: their FID is not a result (the paper shows "—").
    not_applicable = {"fid": "not applicable to the Real Image row",
                      "diversity": "the Real Image row has one image per prompt: nothing to compare it with"}

    def condition_image(self, request: Request) -> Image.Image:
        try:
            with Image.open(request.image_path) as image:
                return image_to_canvas(image, request.transform)
        except OSError as e:
            raise SpbenchError(f"cannot read the real image {request.image_path}: {e}") from None

    def load(self) -> None:
        pass

    def generate(self, prompts, conditions, latents, settings):
        return [image.copy() for image in conditions]

    def identity(self) -> dict:
        return {"images": "dataset reference images, resized to the canvas (bicubic)"}
