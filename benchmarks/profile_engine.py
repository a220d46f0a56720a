"""Where the time of an engine run goes: model arithmetic vs per-image Python overhead.

    python benchmarks/profile_engine.py                          # tiny, CPU, 9 prompts x 3, 50 steps
    python benchmarks/profile_engine.py --cprofile engine.prof   # also cProfile a second run, top functions

Runs ``spbench.generation.engine.generate`` (controlnet method, batch size B) with wall-clock
timers wrapped around each stage (a few microseconds per call, so the split is not distorted the
way a tracing profiler distorts small Python calls):

- model forwards: ControlNet, UNet, VAE decode, prompt encoding (tokenizer + text encoder);
- sampler: ``scheduler.step``;
- pipeline glue: the rest of the diffusers pipeline call (input checks, control-image
  preprocessing, latents/timesteps set-up, CFG split, postprocess to PIL);
- engine: initial noise, condition rendering (+ its PNG), PNG encoding, atomic write + fsync,
  pipeline set-up (``method.load``), planning/skip checks and the manifest;
- background: the generated images' PNG encoding and atomic writes on the engine's writer thread
  (``spbench.generation.image_writer``), overlapped with generation, so not part of the sum.

The baseline of the table is the whole engine call; every row is a share of it.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


BACKGROUND = "background: image PNG encode + atomic write (writer thread, overlapped)"


class Stopwatch:
    def __init__(self, device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn, sync: bool = False):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if sync:
                    common.sync(self.device)
                self.seconds[name] += time.perf_counter() - t0
                self.calls[name] += 1

        return timed


def instrumented_run(components, split, cfg, folder: Path, watch: Stopwatch):
    """One engine run with timers on every stage; returns the engine call's wall seconds."""
    import spbench.files as files
    from spbench.generation import engine, image_writer
    from spbench.run.folder import RunFolder
    from spbench.run.requests import GenerationSettings

    device = components.device
    method = common.bench_method(components, cfg)
    patches = []  # (object, attribute, original)

    def patch(obj, attr, name, sync=False):
        original = getattr(obj, attr)
        patches.append((obj, attr, original, attr in vars(obj) if not isinstance(obj, type) else True))
        setattr(obj, attr, watch.wrap(name, original, sync))

    load = method.load

    def load_and_patch():
        load()
        pipe = method.pipe
        patch(components.controlnet, "forward", "model: ControlNet forward", True)
        patch(components.sd.unet, "forward", "model: UNet forward", True)
        patch(components.sd.vae, "decode", "model: VAE decode", True)
        patch(pipe, "encode_prompt", "model: prompt encoding (tokenizer + text encoder)", True)
        patch(pipe.scheduler, "step", "sampler: scheduler.step", True)

    method.load = watch.wrap("engine: pipeline set-up (method.load)", load_and_patch)
    method.condition_image = watch.wrap("engine: condition rendering", method.condition_image)
    patch(engine, "initial_noise", "engine: initial noise (per-request CPU generators)")
    patch(engine, "manifest_row", "engine: manifest rows")
    write = "engine: atomic write + fsync (conditions, manifest)"
    save_image = engine.atomic_save_image

    def timed_save(path, image):  # PNG encoding = atomic_save_image minus the write inside it
        w0, t0 = watch.seconds[write], time.perf_counter()
        save_image(path, image)
        watch.seconds["engine: PNG encode (conditions)"] += time.perf_counter() - t0 - (watch.seconds[write] - w0)
        watch.calls["engine: PNG encode (conditions)"] += 1

    engine.atomic_save_image = timed_save
    patches.append((engine, "atomic_save_image", save_image, True))
    # Generated images are encoded and written on the writer thread, overlapped with generation.
    patch(image_writer, "atomic_save_image", BACKGROUND)
    method.generate = watch.wrap("pipeline call (total)", method.generate, True)
    try:
        run = RunFolder(folder)
        run.start(cfg, {"run": folder.name}, list(split.samples))
        # Writes from the writer thread belong to the background row, not to the engine's.
        write_bytes = files.atomic_write_bytes
        files.atomic_write_bytes = lambda *a, **k: (
            watch.wrap(write, write_bytes)(*a, **k) if threading.current_thread() is threading.main_thread()
            else write_bytes(*a, **k))
        patches.append((files, "atomic_write_bytes", write_bytes, True))
        requests = engine.plan_requests(split, cfg["generation"])
        settings = GenerationSettings.from_config(cfg["generation"])
        t0 = time.perf_counter()
        engine.generate(run, method, requests, settings, cfg["generation"]["batch_size"], common.SingleProcess())
        common.sync(device)
        return time.perf_counter() - t0
    finally:
        for obj, attr, original, own in reversed(patches):
            if own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)


def host_stages(canvas: int, batch: int, folder: Path, repeats: int = 20) -> list[list]:
    """Per-image CPU work around the models at ``canvas`` x ``canvas``, with spbench's and
    diffusers' own functions and no model: what a GPU waits for unless it is overlapped."""
    import numpy as np
    import torch
    from diffusers.image_processor import VaeImageProcessor
    from PIL import Image

    from spbench.canvas import CanvasTransform
    from spbench.conditions import render_condition
    from spbench.files import atomic_save_image, atomic_write_bytes
    from spbench.run.seeds import initial_noise

    sample = common.tiled_split(1).samples[0]
    transform = CanvasTransform.fit(sample.width, sample.height, canvas, "stretch")
    condition = render_condition("openpose", sample, transform)
    reference = Image.open(common.tiled_split(1).image_path(sample)).convert("RGB").resize((canvas, canvas), Image.BICUBIC)
    noise_image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (canvas, canvas, 3), dtype=np.uint8))
    control_processor = VaeImageProcessor(vae_scale_factor=8, do_convert_rgb=True, do_normalize=False)
    image_processor = VaeImageProcessor(vae_scale_factor=8, do_convert_rgb=True)
    decoded = torch.rand(batch, 3, canvas, canvas) * 2 - 1
    png = {}

    def encode(image, key):
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        png[key] = buf.getvalue()

    stages = [
        ("condition rendering (OpenPose, per sample)", 1, lambda: render_condition("openpose", sample, transform)),
        ("initial noise (one CPU generator)", 1, lambda: initial_noise([12345], (4, canvas // 8, canvas // 8))),
        (f"control image preprocess (pipeline, batch {batch})", batch,
         lambda: control_processor.preprocess([condition] * batch, height=canvas, width=canvas)),
        (f"postprocess to PIL (pipeline, batch {batch})", batch, lambda: image_processor.postprocess(decoded, output_type="pil")),
        ("PNG encode, shipped sample image (drawn, flat)", 1, lambda: encode(reference, "reference")),
        ("PNG encode, random-noise image (worst case)", 1, lambda: encode(noise_image, "noise")),
        ("atomic write + fsync (sample-image PNG)", 1, lambda: atomic_write_bytes(folder / "host.png", png["reference"])),
        ("atomic_save_image (encode + write), sample image", 1, lambda: atomic_save_image(folder / "host2.png", reference)),
    ]
    rows = []
    for name, per_call, fn in stages:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rows.append([name, 1000 * common.median(times) / per_call])
    rows.append(["PNG size, sample image / noise (KiB)", f"{len(png['reference']) / 1024:.0f} / {len(png['noise']) / 1024:.0f}"])
    return rows


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=9)
    p.add_argument("--steps", type=int, default=common.STEPS)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cprofile", metavar="FILE", help="also run once under cProfile, save the stats, print the top functions")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--host-canvas", type=int, default=512, help="canvas of the host-stage table (0: skip it)")
    args = p.parse_args()
    device, dtype = common.resolve_args(args)
    components = common.Components(args.size, device, dtype)
    split = common.tiled_split(args.prompts)
    n_images = args.prompts * common.SAMPLES_PER_PROMPT
    cfg = common.run_config(args.size, args.steps, args.batch_size)
    info = common.print_header("profile: spbench engine run, by stage", args, {
        "workload": f"{args.prompts} prompts x 3 images, {common.CANVAS[args.size]}x{common.CANVAS[args.size]}, "
                    f"{args.steps} steps, B={args.batch_size}"})

    from generation import engine_run

    with tempfile.TemporaryDirectory(prefix="spbench-bench-prof-") as tmp:
        engine_run(components, common.tiled_split(1), cfg, Path(tmp) / "warm")  # warm-up
        watch = Stopwatch(device)
        c0 = common.cpu_seconds()
        total = instrumented_run(components, split, cfg, Path(tmp) / "timed", watch)
        cpu = common.cpu_seconds() - c0

        s = watch.seconds
        model = sum(v for k, v in s.items() if k.startswith("model:"))
        in_pipe = model + s["sampler: scheduler.step"]
        s["pipeline: glue (call minus models and sampler)"] = s["pipeline call (total)"] - in_pipe
        engine_named = sum(v for k, v in s.items() if k.startswith("engine:"))
        # Writer-thread time overlaps the rest; it is shown but not subtracted.
        s["engine: the rest (planning, skip checks, batching)"] = total - s["pipeline call (total)"] - engine_named
        order = sorted((k for k in s if k != "pipeline call (total)"), key=lambda k: (k.split(":")[0], -s[k]))
        rows = [[k, watch.calls.get(k, "—"), s[k], 1000 * s[k] / n_images, 100 * s[k] / total] for k in order]
        rows.append(["engine.generate (baseline: whole call)", 1, total, 1000 * total / n_images, 100.0])
        print(f"   CPU seconds of the timed run: {cpu:.2f} ({cpu / total:.2f} cores busy on average); "
              f"load average {os.getloadavg()[0]:.2f}")
        common.print_table(["stage", "calls", "seconds", "ms / image", "% of engine call"], rows)
        overhead = total - model  # wall time on the main thread outside the model forwards
        print(f"   model forwards {model:.2f} s ({100 * model / total:.1f} %); everything else {overhead:.2f} s = "
              f"{1000 * overhead / n_images:.1f} ms per image ({100 * overhead / total:.1f} %)")
        figures = {"total_s": total, "images": n_images, "stages": dict(s), "calls": dict(watch.calls)}

        if args.cprofile:
            prof = cProfile.Profile()
            prof.enable()
            engine_run(components, split, cfg, Path(tmp) / "cprofile")
            prof.disable()
            prof.dump_stats(args.cprofile)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
            print(f"\n-- cProfile of a second run (stats in {args.cprofile}), top {args.top} by own time")
            lines = [line for line in out.getvalue().splitlines() if line.strip()]
            print("\n".join(lines[-(args.top + 1):]))
        if args.host_canvas:
            rows = host_stages(args.host_canvas, args.batch_size, Path(tmp))
            figures["host_stages_ms_per_image"] = {r[0]: r[1] for r in rows}
            print(f"\n-- host-side stages at {args.host_canvas}x{args.host_canvas} without a model (median of 20), "
                  f"per image: the CPU work a GPU run waits for unless it is overlapped")
            common.print_table(["stage", "ms / image"], rows)
    common.write_json(args.json, {"machine": info, **figures})


if __name__ == "__main__":
    main()
