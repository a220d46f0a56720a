"""Training examples from a dataset split, and the deterministic order they are seen in.

An example is the real image in [-1, 1], the method's condition, the prompt template, which
keypoints are visible, and their 64×64 Gaussian heatmaps (KCL targets), all in one frame chosen by
``generation.condition_render``:

- ``official`` (the official ``preprocess``): the condition is drawn at the original size (the
  method's ``condition_image`` on the original frame, as the official offline maps), then image
  and condition get torchvision's ``Resize(canvas)`` (shorter side to the canvas size; image and
  OpenPose BILINEAR, index map NEAREST, PIL's pixel-centre rule) and ``CenterCrop(canvas)``;
  heatmaps are drawn in that crop (``canvas_mode`` plays no part). Generation then gives the
  model the same drawing resized to the whole canvas, as the official inference does.
- ``native``: image and condition on the generation canvas (``canvas_mode``), the condition from
  the method's ``condition_image``, so training sees exactly what generation is given.

The order is a permutation per epoch drawn from ``(seed, epoch)`` alone, so a resumed run can
skip the batches it has already seen and continue with the very next one.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from spbench.canvas import CanvasTransform, image_to_canvas
from spbench.data.records import Split
from spbench.errors import SpbenchError


def condition_tensor(image: Image.Image, kind: str) -> torch.Tensor:
    """The condition as the model takes it: an index map keeps its raw labels ([1, H, W] long),
    any other image becomes RGB in [0, 1] ([3, H, W]), as diffusers' ControlNet and T2I-Adapter
    pipelines preprocess it."""
    if kind == "spatial-pose":
        return torch.from_numpy(np.array(image.convert("L"), dtype=np.int64))[None]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def image_tensor(image: Image.Image, transform: CanvasTransform) -> torch.Tensor:
    """The real image on the canvas, [3, H, W] in [-1, 1] (the VAE's input range)."""
    rgb = np.asarray(image_to_canvas(image, transform), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def official_image_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """The official training image: ``Resize(size, BILINEAR)``, ``CenterCrop(size)``, ``ToTensor()``,
    ``Normalize([0.5], [0.5])`` (the same float32 steps), [3, size, size] in [-1, 1]."""
    from spbench.conditions.official import resize_short_side_and_crop

    crop = resize_short_side_and_crop(image.convert("RGB"), size, Image.Resampling.BILINEAR)
    t = torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1).contiguous().float().div(255)
    return t.sub(0.5).div(0.5)


def official_condition(image: Image.Image, kind: str, size: int) -> Image.Image:
    """An original-size condition as official training takes it: shorter side to ``size`` (index
    map NEAREST, anything else BILINEAR), then the centre ``size × size`` crop."""
    from spbench.conditions.official import RESAMPLE, resize_short_side_and_crop

    nearest = RESAMPLE.get(kind) == "nearest"
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return resize_short_side_and_crop(image, size, resample)


class TrainingDataset(torch.utils.data.Dataset):
    """Examples prepared as the method's ``generation.condition_render`` says (module docstring)."""

    def __init__(self, split: Split, method, canvas: int, canvas_mode: str = "stretch",
                 heatmaps: bool = False, heatmap_size: int = 64, heatmap_sigma: float = 2.0):
        from spbench.conditions.official import check_render_mode

        if len(split) == 0:
            raise SpbenchError(f"dataset {split.dataset!r} split {split.name!r} has no usable samples to train on")
        self.split, self.method = split, method
        self.canvas, self.canvas_mode = canvas, canvas_mode
        self.heatmaps, self.heatmap_size, self.heatmap_sigma = heatmaps, heatmap_size, heatmap_sigma
        # One setting for both: the method draws its conditions by it too.
        self.condition_render = check_render_mode(method.condition_render)

    def __len__(self) -> int:
        return len(self.split)

    def request(self, index: int):
        """The sample's generation request (canvas frame), e.g. for validation images."""
        from spbench.run.requests import Request

        sample = self.split.samples[index]
        transform = CanvasTransform.fit(sample.width, sample.height, self.canvas, self.canvas_mode)
        return Request(sample, 0, 0, transform, self.split.image_path(sample))

    def __getitem__(self, index: int) -> dict:
        from spbench.conditions.heatmaps import render_heatmaps
        from spbench.models.keypoint_tokens import visible_keypoints

        request = self.request(index)
        sample = request.sample
        if self.condition_render == "official":
            pixels, condition, frame = self._official(request)
        else:
            pixels, condition, frame = self._native(request)
        item = {
            "index": index,
            "pixel_values": pixels,
            "condition": condition_tensor(condition, self.method.condition),
            "prompt_template": sample.prompt_template,
            "visible": torch.tensor(visible_keypoints(sample), dtype=torch.bool),
        }
        if self.heatmaps:
            item["heatmaps"] = torch.from_numpy(render_heatmaps(sample, frame, self.heatmap_size, self.heatmap_sigma))
        return item

    def _native(self, request):
        """Image and condition on the generation canvas."""
        pixels = self._read(request.image_path, lambda im: image_tensor(im, request.transform))
        return pixels, self.method.condition_image(request), request.transform

    def _official(self, request):
        """The official ``preprocess``: shorter side to the canvas size, centre crop."""
        import dataclasses

        from spbench.conditions.official import official_training_crop, original_frame

        sample = request.sample
        pixels = self._read(request.image_path, lambda im: official_image_tensor(im, self.canvas))
        # Drawn at the original size, as the official offline condition files are.
        full = self.method.condition_image(dataclasses.replace(request, transform=original_frame(sample)))
        condition = official_condition(full, self.method.condition, self.canvas)
        return pixels, condition, official_training_crop(sample.width, sample.height, self.canvas)

    @staticmethod
    def _read(path, to_tensor) -> torch.Tensor:
        try:
            with Image.open(path) as im:
                return to_tensor(im)
        except OSError as e:
            raise SpbenchError(f"cannot read training image {path}: {e}") from None


def collate(items: list[dict]) -> dict:
    out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k not in ("prompt_template", "index")}
    out["index"] = torch.tensor([it["index"] for it in items])
    out["prompt_template"] = [it["prompt_template"] for it in items]
    return out


class EpochBatches(torch.utils.data.Sampler):
    """This process's batches of one epoch, from batch ``start`` on.

    The epoch's order is ``randperm(n)`` from a generator seeded with ``seed + epoch``. It is cut
    into global batches of ``batch_size × num_processes``; process p takes its slice of each. With
    several processes the last global batch is filled up from the start of the order, so every
    process runs the same number of steps.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                 num_processes: int = 1, process_index: int = 0):
        self.n, self.batch_size, self.seed, self.epoch, self.start = n, batch_size, seed, epoch, start
        self.num_processes, self.process_index = num_processes, process_index

    @staticmethod
    def steps_per_epoch(n: int, batch_size: int, num_processes: int = 1) -> int:
        return -(-n // (batch_size * num_processes))

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def batches(self) -> list[list[int]]:
        order = self.order()
        size = self.batch_size * self.num_processes
        out = []
        for b in range(self.steps_per_epoch(self.n, self.batch_size, self.num_processes)):
            chunk = order[b * size:(b + 1) * size]
            if len(chunk) < size and self.num_processes > 1:
                chunk = chunk + [order[i % self.n] for i in range(size - len(chunk))]
            mine = chunk[self.process_index * self.batch_size:(self.process_index + 1) * self.batch_size]
            out.append(mine if self.num_processes > 1 else chunk)
        return out[self.start:]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch(self.n, self.batch_size, self.num_processes) - self.start)
