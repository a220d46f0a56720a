"""Generation throughput: spbench's engine vs the loop a user writes by hand.

    python benchmarks/generation.py                                   # tiny, CPU, 64x64, 50 steps
    python benchmarks/generation.py --device cuda --size real         # SD1.5-sized, 512x512, fp16

Both sides use the very same weights, UniPC, CFG 7.5, λ = 1.0, the same steps and the same
initial noise (spbench's per-request seeds; the naive loop is handed the three latents of each
prompt), and both write PNGs:

- naive (baseline): one ``StableDiffusionControlNetPipeline`` call per prompt with
  ``num_images_per_prompt=3``, then ``image.save`` for each image;
- engine: ``spbench.generation.engine.generate`` with the controlnet method at batch size B
  (B images of possibly different prompts per pipeline call), writing the run folder (conditions,
  atomic PNG writes on a background thread, manifest);
- engine, inline writes: the same at the first B with each image encoded and written before the
  next batch starts (the engine before ``spbench.generation.image_writer``), to show what the
  overlap buys. ``--canvas 512`` with the tiny models makes the host work a large share, as it is
  on a GPU;
- ``--compile``: after every other row, the engine at the first B with ``generation.compile``
  (UNet and ControlNet ``torch.compile``'d in place): a first run that compiles (its time is the
  compile cost), then the timed run.

Printed: images/s (wall), CPU seconds per image, peak memory, ratios against the naive loop, and
the largest pixel difference between each engine run and the naive loop.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def naive_loop(components: common.Components, split, cfg: dict, out: Path) -> None:
    """What a user writes by hand around diffusers (given spbench's conditions and noise)."""
    from diffusers import StableDiffusionControlNetPipeline, UniPCMultistepScheduler

    from spbench.canvas import CanvasTransform
    from spbench.conditions import render_condition
    from spbench.run.seeds import initial_noise, request_seed

    gen = cfg["generation"]
    sd = components.sd
    pipe = StableDiffusionControlNetPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        controlnet=components.controlnet, scheduler=UniPCMultistepScheduler.from_config(sd.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    size = gen["canvas"]
    out.mkdir(parents=True, exist_ok=True)
    for sample in split.samples:
        transform = CanvasTransform.fit(sample.width, sample.height, size, gen["canvas_mode"])
        condition = render_condition("openpose", sample, transform)
        seeds = [request_seed(gen["seed"], sample.sample_id, k) for k in range(gen["samples"])]
        latents = initial_noise(seeds, (4, size // 8, size // 8)).to(components.device, components.dtype)
        images = pipe(
            prompt=sample.prompt, image=condition, num_images_per_prompt=gen["samples"], latents=latents,
            num_inference_steps=gen["steps"], guidance_scale=gen["guidance_scale"],
            controlnet_conditioning_scale=gen["conditioning_scale"], height=size, width=size,
        ).images
        for k, image in enumerate(images):
            image.save(out / f"{sample.sample_id}_k{k}.png")


class InlineWriter:
    """Stands in for ``ImageWriter``: encodes and writes each image at once, on this thread."""

    def __init__(self, max_pending: int):
        pass

    def submit(self, path, image) -> None:
        from spbench.files import atomic_save_image

        atomic_save_image(path, image)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def engine_run(components: common.Components, split, cfg: dict, out: Path, inline_writes: bool = False,
               compile_models: bool = False) -> None:
    from spbench.generation import engine
    from spbench.run.folder import RunFolder
    from spbench.run.requests import GenerationSettings

    method = common.bench_method(components, cfg)
    run = RunFolder(out)
    run.start(cfg, {"run": out.name}, list(split.samples))
    requests = engine.plan_requests(split, cfg["generation"])
    settings = GenerationSettings.from_config(cfg["generation"])
    writer = engine.ImageWriter
    engine.ImageWriter = InlineWriter if inline_writes else writer
    try:
        counts = engine.generate(run, method, requests, settings, cfg["generation"]["batch_size"], common.SingleProcess(),
                                 compile_models=compile_models)
    finally:
        engine.ImageWriter = writer
    assert counts["generated_here"] == len(requests), counts


INLINE = "engine B={}, inline writes"
COMPILED = "engine B={}, torch.compile"
COMPILING = "engine B={}, torch.compile, first run (compiles)"


def folder_name(row: str) -> str:
    return "".join(c for c in row if c.isalnum())


def pixels(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.name: np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in sorted(folder.glob("*.png"))}


def difference(a: dict, b: dict) -> tuple[int, float]:
    """Largest pixel difference (of 255) and the share of pixel values differing by more than 1."""
    if a.keys() != b.keys():
        raise SystemExit(f"the two runs wrote different images: {sorted(a.keys() ^ b.keys())[:4]}")
    d = [np.abs(a[k] - b[k]) for k in a]
    return max(int(x.max()) for x in d), float(np.mean([(x > 1).mean() for x in d]))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=9, help="prompts (3 images each); the shipped sample repeated")
    p.add_argument("--steps", type=int, default=common.STEPS)
    p.add_argument("--batch-sizes", default="3,4,12", help="engine batch sizes B to measure (spbench's default is 4)")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats per row (median printed), interleaved")
    p.add_argument("--guidance", type=float, default=common.GUIDANCE, help="CFG scale (1.0: no unconditional half)")
    p.add_argument("--canvas", type=int, default=None, help="canvas size (default: 64 tiny, 512 real)")
    p.add_argument("--compile", action="store_true", help="also the engine with generation.compile (rows last: it "
                   "compiles the shared models in place)")
    p.add_argument("--keep", metavar="DIR", help="keep the images here instead of a temporary folder")
    args = p.parse_args()
    device, dtype = common.resolve_args(args)
    if args.canvas:
        common.CANVAS[args.size] = args.canvas
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    components = common.Components(args.size, device, dtype)
    split = common.tiled_split(args.prompts)
    n_images = args.prompts * common.SAMPLES_PER_PROMPT
    info = common.print_header("generation: spbench engine vs naive per-prompt pipeline loop", args, {
        "workload": f"{args.prompts} prompts x {common.SAMPLES_PER_PROMPT} images, {common.CANVAS[args.size]}x"
                    f"{common.CANVAS[args.size]}, UniPC {args.steps} steps, CFG {args.guidance}",
        "parameters": components.params(),
        "model build (s)": round(components.build_s, 2),
    })
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="spbench-bench-gen-"))
    cfgs = {b: common.run_config(args.size, args.steps, b, **{"generation.guidance_scale": args.guidance})
            for b in batch_sizes}
    warm = common.tiled_split(1)

    # Warm-up (untimed): one prompt through each path.
    naive_loop(components, warm, cfgs[batch_sizes[0]], work / "warm-naive")
    engine_run(components, warm, cfgs[batch_sizes[0]], work / "warm-engine")

    rows: dict[str, list[common.Measurement]] = {}
    for r in range(args.repeats):
        for name in ["naive"] + [f"engine B={b}" for b in batch_sizes] + [INLINE.format(batch_sizes[0])]:
            folder = work / f"r{r}-{folder_name(name)}"
            with common.measure(device) as m:
                if name == "naive":
                    naive_loop(components, split, cfgs[batch_sizes[0]], folder)
                else:
                    b = int(name.split("=")[1].split(",")[0])
                    engine_run(components, split, cfgs[b], folder, inline_writes="inline" in name)
            rows.setdefault(name, []).append(m)
            print(f"   [{name} repeat {r}] {m.wall_s:.2f} s", flush=True)
    if args.compile:  # last: compiling changes the shared modules for every later call
        b = batch_sizes[0]
        for name in (COMPILING.format(b), *[COMPILED.format(b)] * args.repeats):
            folder = work / f"r{len(rows.get(name, []))}-{folder_name(name)}"
            with common.measure(device) as m:
                engine_run(components, split, cfgs[b], folder, compile_models=True)
            rows.setdefault(name, []).append(m)
            print(f"   [{name}] {m.wall_s:.2f} s", flush=True)

    naive_pixels = pixels(work / "r0-naive")
    diffs = {name: difference(naive_pixels, pixels(work / f"r0-{folder_name(name)}" / "images"))
             for name in rows if name != "naive"}

    base_wall = common.median([m.wall_s for m in rows["naive"]])
    base_cpu = common.median([m.cpu_s for m in rows["naive"]])
    table, figures = [], {}
    for name, ms in rows.items():
        wall, cpu = common.median([m.wall_s for m in ms]), common.median([m.cpu_s for m in ms])
        peak = max(m.peak_bytes for m in ms) / 2**30
        growth = max(m.peak_bytes - m.start_bytes for m in ms) / 2**30
        figures[name] = {"wall_s": wall, "images_per_s": n_images / wall, "cpu_s_per_image": cpu / n_images,
                         "peak_gib": peak, "growth_gib": growth, "speedup_vs_naive": base_wall / wall,
                         "max_pixel_diff_vs_naive": diffs.get(name, (0, 0.0))[0],
                         "share_of_pixels_off_by_more_than_1": diffs.get(name, (0, 0.0))[1]}
        table.append([name, n_images, wall, n_images / wall, cpu / n_images, base_wall / wall, base_cpu / cpu,
                      peak, growth, "—" if name == "naive" else f"{diffs[name][0]}/255",
                      "—" if name == "naive" else f"{100 * diffs[name][1]:.2f} %"])
    memory_kind = rows["naive"][0].memory_kind
    print(f"   memory: {memory_kind}; growth = peak minus memory at the start of the row (models already loaded)")
    print(f"   load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    common.print_table(
        ["row", "images", "wall s", "images/s", "CPU s/image", "speed-up (wall)", "speed-up (CPU)",
         "peak GiB", "growth GiB", "max |Δpixel| vs naive", "pixels off by >1"], table)
    if args.compile:
        b = batch_sizes[0]
        eager, compiled = figures[f"engine B={b}"], figures[COMPILED.format(b)]
        cost = figures[COMPILING.format(b)]["wall_s"] - compiled["wall_s"]
        saved = 1 / eager["images_per_s"] - 1 / compiled["images_per_s"]
        print(f"   torch.compile vs eager engine B={b}: {eager['wall_s'] / compiled['wall_s']:.2f}x images/s; compiling "
              f"cost {cost:.1f} s, repaid after {cost / saved:.0f} images" if saved > 0 else
              f"   torch.compile vs eager engine B={b}: {eager['wall_s'] / compiled['wall_s']:.2f}x images/s (no gain)")
    worst = max(d[0] for d in diffs.values())
    tolerance = 1 if device.type == "cpu" and dtype == torch.float32 else None
    if tolerance is not None:
        print(f"   outputs equal within {tolerance}/255: {'yes' if worst <= tolerance else 'NO'} (worst {worst}/255)")
        if worst > tolerance and args.size == "tiny":
            print("   (tiny random models amplify batch-size-dependent rounding: their CFG 7.5 trajectories leave the"
                  " trained range; see BENCHMARKS.md)")
    else:
        print(f"   largest pixel difference {worst}/255 ({dtype} on {device}: batch composition changes low-order bits)")
    common.write_json(args.json, {"machine": info, "memory": memory_kind, "rows": figures})
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
