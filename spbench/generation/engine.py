"""The generation engine: plan requests, skip finished ones, share the rest across processes,
generate in batches, write every image atomically, then write the manifest.

Under ``accelerate launch -m spbench run …`` each process takes every n-th pending request;
because seeds and noise belong to requests, the images do not depend on how work was split.
"""

from __future__ import annotations

import torch

from spbench.canvas import CanvasTransform
from spbench.data.records import Split
from spbench.files import atomic_save_image
from spbench.generation.image_writer import ImageWriter
from spbench.methods.base import Method
from spbench.run.folder import RunFolder
from spbench.run.requests import GenerationSettings, Request
from spbench.run.seeds import initial_noise, request_seed


def plan_requests(split: Split, gen: dict) -> list[Request]:
    """Every (sample, k) of the run, in sample order, with its seed and canvas transform."""
    requests = []
    for sample in split.samples:
        transform = CanvasTransform.fit(sample.width, sample.height, gen["canvas"], gen["canvas_mode"])
        for k in range(gen["images_per_prompt"]):
            seed = request_seed(gen["seed"], sample.sample_id, k)
            requests.append(Request(sample, k, seed, transform, split.image_path(sample)))
    return requests


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    device = torch.device(device)
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        from spbench.errors import SpbenchError

        raise SpbenchError(f"unknown dtype {name!r} (generation.dtype): use auto, float32, float16 or bfloat16") from None
    if dtype == torch.float16 and device.type == "cpu":
        import warnings

        # CPUs have few float16 kernels: minutes per step at 512², where bfloat16 ran 1.6x faster than float32 here.
        warnings.warn("generation.dtype=float16 on a CPU is very slow (minutes per step at 512x512): "
                      "use --set generation.dtype=bfloat16 (or float32)", stacklevel=2)
    return dtype


def manifest_row(run: RunFolder, method: Method, request: Request) -> dict:
    from spbench.conditions import CONDITIONS

    condition = {"kind": method.condition, "file": str(run.condition_file(request.sample).relative_to(run.path))}
    if method.condition in CONDITIONS:  # a drawn pose condition: say how it was drawn
        condition["render"] = method.condition_render
    return {
        "sample_id": request.sample.sample_id,
        "k": request.k,
        "seed": request.seed,
        "prompt": method.prompt(request.sample),
        "condition": condition,
        "canvas": request.transform.to_dict(),
        "file": str(run.image_file(request).relative_to(run.path)),
        **method.manifest_fields(request),
    }


def generate(run: RunFolder, method: Method, requests: list[Request], settings: GenerationSettings,
             batch_size: int, state, progress=None, compile_models: bool = False) -> dict:
    """Generate the pending requests of this process; returns counts. ``state`` is accelerate's
    PartialState (one process when not launched by accelerate); ``compile_models``:
    generation.compile."""
    pending = [r for r in requests if not run.is_done(r)]
    # Everyone must see the same pending list before anyone writes a new image.
    state.wait_for_everyone()
    mine = pending[state.process_index :: state.num_processes]
    if mine:
        method.load()
        if compile_models:
            from spbench.models.pipelines import compile_step_modules

            compile_step_modules(method)
    task = progress.add_task(f"generating ({method.name})", total=len(mine)) if progress else None
    conditions: dict[str, object] = {}
    # Images are encoded and written on a background thread while the next batch generates.
    with ImageWriter(max_pending=2 * batch_size) as writer:
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            for r in batch:
                if r.sample.sample_id not in conditions:
                    image = method.condition_image(r)
                    conditions[r.sample.sample_id] = image
                    if not run.condition_file(r.sample).exists():
                        atomic_save_image(run.condition_file(r.sample), image)
            latents = initial_noise([r.seed for r in batch], method.latent_shape(settings))
            latents = latents.to(device=method.context.device, dtype=method.context.dtype)
            images = method.generate(
                [method.prompt(r.sample) for r in batch],
                [conditions[r.sample.sample_id] for r in batch],
                latents,
                settings,
            )
            for r, image in zip(batch, images, strict=True):
                writer.submit(run.image_file(r), image)
            # Conditions of samples whose requests are all done are no longer needed.
            if len(conditions) > 4 * batch_size:
                conditions.clear()
            if progress:
                progress.advance(task, len(batch))
    state.wait_for_everyone()
    if state.is_main_process:
        missing = [r for r in requests if not run.is_done(r)]
        if not missing:
            run.write_manifest([manifest_row(run, method, r) for r in requests])
    # Every process returns only once the manifest is there: `spbench run` scores next, and a
    # process that got ahead would find no manifest (seen under `accelerate launch` on CI).
    state.wait_for_everyone()
    return {"requests": len(requests), "skipped": len(requests) - len(pending), "generated_here": len(mine)}
