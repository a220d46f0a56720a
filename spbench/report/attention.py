"""Cross-attention maps of one generated image: what each keypoint token (and the category word)
attends to, at chosen denoising steps.

The request is generated again exactly as the run made it (its config, seed, stored condition),
with capturing processors on the UNet's cross-attention layers (:mod:`spbench.models.attention_capture`).
Each map is the prompt half of classifier-free guidance, averaged over heads and over the chosen
layers after a bilinear resize to the image size, then min-max scaled per cell for display. The
official viewer (SP-Ctrl ``tools/cross-attention-map``) also sums layers per timestep and
min-max scales per token, but averages over both guidance halves and resizes with nearest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spbench.canvas import CanvasTransform
from spbench.config import images_per_prompt
from spbench.errors import SpbenchError
from spbench.files import atomic_save_image, atomic_write_json
from spbench.methods.registry import get_method_class
from spbench.models.hub import load_options
from spbench.registry import did_you_mean
from spbench.run.requests import GenerationSettings, MethodContext, Request
from spbench.run.resolve import open_run
from spbench.run.seeds import initial_noise, request_seed
from spbench.schemas import get_schema

DEFAULT_BLOCKS = ("down_blocks", "mid_block", "up_blocks")


@dataclass
class AttentionMaps:
    image: Image.Image                 # the image generated again
    steps: list[int]                   # denoising step indices, in order
    timesteps: list[int]               # the scheduler's timestep of each step
    words: list[str]                   # column labels: the category word, then keypoint tokens
    maps: np.ndarray                   # [steps, words, H, W] float, layers averaged
    layers: list[str]


def _token_positions(tokenizer, prompt: str, word: str) -> list[int]:
    """Positions of ``word``'s tokens (all of its BPE pieces, in a row) in the encoded prompt."""
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
    piece = tokenizer(word, add_special_tokens=False)["input_ids"]
    for start in range(len(ids) - len(piece) + 1):
        if piece and ids[start : start + len(piece)] == piece:
            return list(range(start, start + len(piece)))
    return []


def _columns(tokenizer, prompt: str, category: str, schema_name: str) -> list[tuple[str, list[int]]]:
    """(label, token positions) of the category word and of each keypoint token in the prompt."""
    columns = []
    positions = _token_positions(tokenizer, prompt, category)
    if positions:
        columns.append((category, positions))
    vocabulary = tokenizer.get_vocab()
    for token in get_schema(schema_name).tokens:
        if token in vocabulary:
            positions = _token_positions(tokenizer, prompt, token)
            if positions:
                columns.append((token, positions))
    return columns


def _layer_map(probs, height: int, width: int, positions: list[int]) -> np.ndarray:
    """One layer's [B, HW, T] map of the prompt half, summed over ``positions``, at the image size."""
    import torch
    import torch.nn.functional as F

    prompt_half = probs[-1]  # [negative, prompt] under guidance; the only row without
    hw = prompt_half.shape[0]
    h = int(round((hw * height / width) ** 0.5))
    w = hw // h
    grid = prompt_half[:, positions].sum(dim=-1).reshape(1, 1, h, w).float()
    return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0, 0].to(torch.float32).numpy()


def capture(run_dir: str | Path, sample_id: str, k: int = 0, blocks=DEFAULT_BLOCKS, device: str = "cpu") -> tuple[AttentionMaps, dict]:
    """Generate ``sample_id``'s k-th image of the run again and capture its cross-attention maps."""
    import torch

    from spbench.models.attention_capture import capture_cross_attention

    resolved = open_run(run_dir)
    config, run = resolved.config, resolved.run
    samples = run.read_samples()
    if sample_id not in samples:
        hint = did_you_mean(sample_id, samples)
        raise SpbenchError(f"{run.samples_jsonl} has no sample {sample_id!r}: {hint}pass --sample with one of its sample ids")
    if not 0 <= k < images_per_prompt(config):
        raise SpbenchError(f"--k {k}: the run made {images_per_prompt(config)} image(s) per prompt (k = 0 … {images_per_prompt(config) - 1})")
    sample = samples[sample_id]
    gen = config["generation"]
    method_cls = get_method_class(config["method"]["name"])
    with load_options(config["models"]):
        method = method_cls(MethodContext(config, torch.device(device), torch.float32))
        method.load()
    unet = getattr(getattr(method, "pipe", None), "unet", None)
    if not isinstance(unet, torch.nn.Module):
        raise SpbenchError(f"method {method.name!r} has no diffusers pipeline with a UNet (.pipe.unet) to read cross-attention from")

    transform = CanvasTransform.fit(sample.width, sample.height, gen["canvas"], gen["canvas_mode"])
    data_root = resolved.info["dataset"].get("data_root")
    request = Request(sample, k, request_seed(gen["seed"], sample_id, k), transform,
                      Path(data_root) / sample.file if data_root else None)
    stored = run.condition_file(sample)
    if stored.is_file():  # the condition the run was made with
        with Image.open(stored) as image:
            condition = image.copy()
    else:
        condition = method.condition_image(request)
    settings = GenerationSettings.from_config(gen)
    latents = initial_noise([request.seed], method.latent_shape(settings)).to(device=device, dtype=torch.float32)
    prompt = method.prompt(sample)
    with capture_cross_attention(unet, blocks, "attn2") as store, store.record():
        (image,) = method.generate([prompt], [condition], latents, settings)
        captured = list(store.maps)
    layers = list(dict.fromkeys(name for name, _ in captured))
    if not captured or len(captured) % len(layers):
        raise SpbenchError(f"captured {len(captured)} maps over {len(layers)} layers: the pipeline did not call the UNet once per step")
    steps = len(captured) // len(layers)
    timesteps = [int(t) for t in method.pipe.scheduler.timesteps][:steps]

    columns = _columns(method.pipe.tokenizer, prompt, sample.categories[0] if sample.categories else "", sample.schema)
    if not columns:
        raise SpbenchError(f"sample {sample_id}: neither its category word nor a keypoint token is in the prompt {prompt!r}")
    height, width = settings.height, settings.width
    maps = np.zeros((steps, len(columns), height, width), dtype=np.float32)
    for i, (_, probs) in enumerate(captured):
        step = i // len(layers)
        for c, (_, positions) in enumerate(columns):
            maps[step, c] += _layer_map(probs, height, width, positions) / len(layers)
    stored_image = run.path / "images" / f"{sample_id}_k{k}.png"
    facts = {"run": str(run.path), "sample_id": sample_id, "k": k, "prompt": prompt, "seed": request.seed,
             "blocks": list(blocks), "layers": layers, "guidance": "prompt half" if settings.guidance_scale > 1 else "single pass",
             "tokens": {label: positions for label, positions in columns}}
    if stored_image.is_file():
        with Image.open(stored_image) as saved:
            diff = np.abs(np.asarray(saved.convert("RGB"), dtype=np.int16) - np.asarray(image.convert("RGB"), dtype=np.int16))
        facts["max_pixel_difference_from_the_run"] = int(diff.max())
    return AttentionMaps(image, list(range(steps)), timesteps, [label for label, _ in columns], maps, layers), facts


def _heat(values: np.ndarray) -> np.ndarray:
    """[H, W] → uint8 RGB, min-max scaled (a flat map is shown black), matplotlib's 'jet'."""
    import matplotlib

    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return (matplotlib.colormaps["jet"](scaled)[..., :3] * 255).astype(np.uint8)


def render_grid(maps: AttentionMaps, steps: list[int], cell: int = 160, title: str = "") -> Image.Image:
    """Rows: the chosen steps and their mean; columns: the image, then one map per word, each over
    the image (half and half), labelled."""
    font = ImageFont.load_default()
    label_w, head_h, title_h = 110, 22, 22 if title else 0
    rows = [(f"step {s} (t={maps.timesteps[s]})", maps.maps[s]) for s in steps]
    rows.append((f"mean of {len(maps.steps)} steps", maps.maps.mean(axis=0)))
    cols = ["image", *maps.words]
    grid = Image.new("RGB", (label_w + cell * len(cols), title_h + head_h + cell * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 4), title, fill="black", font=font)
    for c, word in enumerate(cols):
        draw.text((label_w + c * cell + 4, title_h + 4), word, fill="black", font=font)
    base = maps.image.convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR)
    for r, (label, per_word) in enumerate(rows):
        y = title_h + head_h + r * cell
        draw.text((4, y + cell // 2 - 6), label, fill="black", font=font)
        grid.paste(base, (label_w, y))
        for c, values in enumerate(per_word, start=1):
            heat = Image.fromarray(_heat(values)).resize((cell, cell), Image.Resampling.BILINEAR)
            grid.paste(Image.blend(base, heat, 0.5), (label_w + c * cell, y))
    return grid


def chosen_steps(total: int, asked: list[int] | None) -> list[int]:
    """The asked step indices (negative counts from the end), or first, middle and last."""
    if not asked:
        return sorted({0, total // 2, total - 1})
    out = []
    for s in asked:
        index = s + total if s < 0 else s
        if not 0 <= index < total:
            raise SpbenchError(f"--steps {s}: the run has {total} denoising steps (0 … {total - 1}, or -1 for the last)")
        out.append(index)
    return out


def write_attention(run_dir: str | Path, sample_id: str, k: int = 0, steps: list[int] | None = None,
                    blocks=DEFAULT_BLOCKS, out: str | Path | None = None, device: str = "cpu") -> Path:
    """``RUN_DIR/attention/<sample>_k<k>.png`` (or ``out``) and a JSON of what it shows beside it."""
    from spbench.registry import is_tiny_spec

    maps, facts = capture(run_dir, sample_id, k, blocks, device)
    rows = chosen_steps(len(maps.steps), steps)
    config = open_run(run_dir).config
    tiny = any(is_tiny_spec(v) for v in config["models"].values() if isinstance(v, str))
    title = f"{facts['run'].rsplit('/', 1)[-1]} · {sample_id} k={k}" + (" · tiny random models: machinery only" if tiny else "")
    path = Path(out) if out else Path(run_dir) / "attention" / f"{sample_id}_k{k}.png"
    atomic_save_image(path, render_grid(maps, rows, title=title))
    atomic_write_json(path.with_suffix(".json"), {**facts, "steps_shown": rows,
                                                   "timesteps_shown": [maps.timesteps[s] for s in rows], "tiny": tiny})
    return path
