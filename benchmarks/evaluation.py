"""Evaluation throughput: the pose metric's model, and end-to-end scoring of a run folder.

    python benchmarks/evaluation.py                                   # tiny ViTPose, CPU, 64x64 images
    python benchmarks/evaluation.py --device cuda --size real         # ViTPose++-H-sized, 512x512 images

The run folder is written the way ``spbench generate`` writes one (run.json, samples, conditions,
manifest), with random-noise PNGs as images: scoring costs the same whatever the pixels.

Table 1, the pose model alone (GT boxes, 256x192 crops, flip test, as spbench scores):
- naive (baseline): one ``predict`` call per image (the official mmpose loop: one image, its
  boxes, per forward);
- spbench: ``score_pose``'s batching (``evaluation.pose_batch_size`` images per call, up to 32
  crops per forward); with ``--dtype`` other than float32 a row for the model cast to it
  (spbench itself scores in float32).
Each row splits its time into the processor's crop/normalise, the forwards, and the rest
(heatmap decoding, conversion).

Table 2, end to end: ``spbench.harness.evaluate(RUN_DIR, [metric])`` per metric registered in
``spbench.metrics.evaluate.METRICS`` (model load, image decoding, scoring, result files), against
the oracle pose model (the same machinery with no model) with images decoded inline, one after the
other, as the baseline. The oracle is the limit of a model that costs nothing, where a fast GPU
leaves scoring: there, decoding on spbench's threads (``ScoringContext.image_batches``) is what
changes. ``--inline-too`` adds an inline-decoding row for every metric.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def make_run_folder(path: Path, size: str, n_prompts: int, sets: dict) -> tuple[Path, dict]:
    """A finished run folder as ``spbench generate`` leaves it, with random images."""
    from PIL import Image

    from spbench.files import atomic_save_image
    from spbench.generation import engine
    from spbench.methods import get_method_class
    from spbench.run.folder import RunFolder
    from spbench.run.requests import MethodContext

    split = common.tiled_split(n_prompts)
    cfg = common.run_config(size, common.STEPS, **sets)
    method = get_method_class("controlnet")(MethodContext(cfg))
    run = RunFolder(path)
    info = {
        "run": path.name,
        "dataset": {"name": split.dataset, "split": split.name, "hash": split.content_hash,
                    "num_samples": len(split), "schema": split.samples[0].schema,
                    "data_root": split.root, "stats": split.stats},
        "method": {"name": method.name, "variant": None, "condition": method.condition, "checkpoint": None},
        "models": method.identity(),
    }
    run.start(cfg, info, list(split.samples))
    requests = engine.plan_requests(split, cfg["generation"])
    rng = np.random.default_rng(0)
    canvas = cfg["generation"]["canvas"]
    for r in requests:
        if not run.condition_file(r.sample).exists():
            atomic_save_image(run.condition_file(r.sample), method.condition_image(r))
        atomic_save_image(run.image_file(r), Image.fromarray(rng.integers(0, 256, (canvas, canvas, 3), dtype=np.uint8)))
    run.write_manifest([engine.manifest_row(run, method, r) for r in requests])
    return path, cfg


class Timed:
    """Wraps a callable and adds up the wall time spent in it."""

    def __init__(self, fn, device):
        self.fn, self.device, self.seconds = fn, device, 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        common.sync(self.device)
        self.seconds += time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.fn, name)


def pose_model(size: str, device: torch.device, dtype: torch.dtype):
    """spbench's VitPosePoseModel around the tiny ViTPose or a ViTPose++-H-sized random model."""
    from spbench.metrics.pose_models import VitPosePoseModel, build_tiny_vitpose
    from spbench.metrics.real_size import VITPOSE_AP10K_EXPERT, build_vitpose_plus_h

    if size == "tiny":
        model, processor = build_tiny_vitpose(17, 1)
        index = None
    else:
        model, processor = build_vitpose_plus_h(device)
        index = VITPOSE_AP10K_EXPERT
    return VitPosePoseModel.from_modules(model.to(dtype), processor, name=f"vitpose-{size}", dataset_index=index, device=str(device))


@contextlib.contextmanager
def inline_decoding():
    """Score with every image decoded in the scoring loop, one after the other (the baseline)."""
    from spbench.metrics.evaluate import ScoringContext, batches

    threaded = ScoringContext.image_batches
    ScoringContext.image_batches = lambda self, rows, size, ahead=2: ((b, self.load_images(b)) for b in batches(rows, size))
    try:
        yield
    finally:
        ScoringContext.image_batches = threaded


def score_model_only(model, images, samples, transforms, images_per_call: int, device) -> dict:
    processor, forward = Timed(model.processor, device), Timed(model.model, device)
    model.processor, model.model = processor, forward
    try:
        with common.measure(device) as m:
            for i in range(0, len(images), images_per_call):
                model.predict(images[i:i + images_per_call], samples[i:i + images_per_call], transforms[i:i + images_per_call])
    finally:
        model.processor, model.model = processor.fn, forward.fn
    return {"m": m, "preprocess_s": processor.seconds, "forward_s": forward.seconds}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=None, help="prompts x 3 images (default: 9 tiny, 9 real)")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats of the model-only rows (median printed)")
    p.add_argument("--skip-end-to-end", action="store_true")
    p.add_argument("--metrics", default=None, help="metrics for the end-to-end table (default: every registered one)")
    p.add_argument("--canvas", type=int, default=None, help="image size (default: 64 tiny, 512 real); tiny models on "
                   "512x512 images leave scoring to decoding and preprocessing, as a fast GPU does")
    p.add_argument("--inline-too", action="store_true", help="end to end: also each metric with images decoded inline")
    p.add_argument("--inception", default=None, metavar="PTH",
                   help="--size real: torch-fidelity's FID Inception weights file, if you have it (else a random one in its format)")
    args = p.parse_args()
    device, dtype = common.resolve_args(args)
    n_prompts = args.prompts or 9
    if args.canvas:
        common.CANVAS[args.size] = args.canvas

    from spbench.canvas import CanvasTransform
    from spbench.metrics.evaluate import DECODE_THREADS, METRICS, ScoringContext
    from spbench.run.folder import RunFolder

    work = Path(tempfile.mkdtemp(prefix="spbench-bench-eval-"))
    info = common.print_header("evaluation: pose model and end-to-end scoring", args)
    sets = {}
    if args.size == "real" and not args.skip_end_to_end:
        t0 = time.perf_counter()
        from spbench.metrics.real_size import write_metric_models
        from spbench.models.real_size import write_random_inception

        (work / "models").mkdir(parents=True, exist_ok=True)
        inception = args.inception or str(write_random_inception(work / "models" / "weights-inception-2015-12-05-6726825d.pth"))
        sets = write_metric_models(work / "models", inception)
        print(f"   real-size random metric models written in {time.perf_counter() - t0:.1f} s (not timed below): "
              + ", ".join(f"{k}={Path(str(v)).name}" for k, v in sets.items() if k != "models.pose_dataset_index"))
    run_dir, cfg = make_run_folder(work / "run", args.size, n_prompts, sets)
    run = RunFolder(run_dir)
    manifest = run.read_manifest()
    ctx = ScoringContext(run, run.read_run(), run.read_samples(), str(device))
    samples = [ctx.samples[r["sample_id"]] for r in manifest]
    transforms = [CanvasTransform(**r["canvas"]) for r in manifest]
    images = ctx.load_images(manifest)
    n = len(images)
    crops = sum(len(s.instances) for s in samples)
    batch = cfg["evaluation"]["pose_batch_size"]
    print(f"   workload: {n} images ({crops} GT boxes) of {images[0].size[0]}x{images[0].size[1]}, flip test")

    # -- model only ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    model32 = pose_model(args.size, device, torch.float32)
    common.sync(device)
    print(f"   pose model: {sum(p.numel() for p in model32.model.parameters()):,} parameters, built in {time.perf_counter() - t0:.1f} s")
    variants = [("naive: 1 image per call, float32", model32, 1),
                (f"spbench: {batch} images per call, float32", model32, batch)]
    if dtype != torch.float32:
        variants.append((f"spbench: {batch} images per call, {str(dtype).split('.')[-1]}", pose_model(args.size, device, dtype), batch))
    for _, model, per_call in variants:  # warm-up
        model.predict(images[:per_call], samples[:per_call], transforms[:per_call])
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name, model, per_call in variants:
            results.setdefault(name, []).append(score_model_only(model, images, samples, transforms, per_call, device))
    base = common.median([r["m"].wall_s for r in results[variants[0][0]]])
    rows, figures = [], {"model_only": {}, "end_to_end": {}}
    for name, rs in results.items():
        pick = sorted(rs, key=lambda r: r["m"].wall_s)[len(rs) // 2]
        m = pick["m"]
        rest = m.wall_s - pick["preprocess_s"] - pick["forward_s"]
        figures["model_only"][name] = {"images_per_s": n / m.wall_s, "wall_s": m.wall_s, "preprocess_s": pick["preprocess_s"],
                                       "forward_s": pick["forward_s"], "rest_s": rest, "peak_gib": m.peak_gib,
                                       "speedup_vs_naive": base / m.wall_s}
        rows.append([name, n, m.wall_s, n / m.wall_s, m.cpu_s / n, pick["preprocess_s"], pick["forward_s"], rest,
                     m.peak_gib, base / m.wall_s])
    print(f"\n-- pose model only (memory: {results[variants[0][0]][0]['m'].memory_kind})")
    common.print_table(["row", "images", "wall s", "images/s", "CPU s/image", "preprocess s", "forward s", "rest s",
                        "peak GiB", "speed-up"], rows)
    del variants, model32

    # -- end to end ------------------------------------------------------------------------------
    if not args.skip_end_to_end:
        from spbench import harness

        wanted = args.metrics.split(",") if args.metrics else list(METRICS)
        rows = []
        used = {"pose": cfg["models"]["pose"], "clip": cfg["models"]["clip"], "fid": cfg["models"]["inception"],
                "det": cfg["models"]["detector"]}
        jobs = [("pose (oracle model), decoding inline: baseline", "pose", "oracle", True),
                ("pose (oracle model), decoding threads", "pose", "oracle", False)]
        for metric in wanted:
            if args.inline_too:
                jobs.append((f"{metric}, decoding inline", metric, None, True))
            jobs.append((f"{metric}, decoding threads", metric, None, False))
        base = None
        for name, metric, override, inline in jobs:
            try:
                with inline_decoding() if inline else contextlib.nullcontext(), common.measure(device) as m:
                    record, _ = harness.evaluate(run_dir, [metric], pose_model=override)
            except Exception as e:  # a metric another engineer is still building: say so, go on
                rows.append([name, "—", n, f"failed: {type(e).__name__}: {str(e)[:80]}", None, None, None, None])
                continue
            base = base or m.wall_s
            figures["end_to_end"][name] = {"wall_s": m.wall_s, "images_per_s": n / m.wall_s, "peak_gib": m.peak_gib,
                                           "ratio_vs_baseline": m.wall_s / base}
            spec = str(used.get(metric, "?"))
            model = "oracle" if "oracle" in name else spec if spec.startswith("tiny://") else Path(spec).name
            rows.append([name, model, n, m.wall_s, n / m.wall_s, m.cpu_s / n, m.peak_gib, m.wall_s / base])
        print("\n-- end to end: spbench.harness.evaluate(RUN_DIR, [metric]) (model load + decode + score + files)")
        common.print_table(["metric", "model", "images", "wall s", "images/s", "CPU s/image", "peak GiB", "time / baseline"], rows)
        print(f"   decoding threads: {DECODE_THREADS}")
    print(f"   load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    common.write_json(args.json, {"machine": info, **figures})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
