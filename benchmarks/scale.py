"""Scaling with the number of prompts: spbench's engine at 1x, 4x and 16x the prompts.

    python benchmarks/scale.py                       # tiny, CPU: 9, 36, 144 prompts x 3 images

Each scale runs in a fresh process (so peak memory is that run's own), builds the models, then
times ``spbench.generation.engine.generate`` alone. Printed per scale: wall and CPU time, images/s,
time relative to 1x next to the ideal (linear) ratio, and peak memory during generation, with its
difference from 1x (flat memory: about 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def child(args) -> None:
    from generation import engine_run

    device, dtype = common.resolve_args(args)
    components = common.Components(args.size, device, dtype)
    n = args.base_prompts * args.child_scale
    split = common.tiled_split(n)
    cfg = common.run_config(args.size, args.steps, args.batch_size)
    with tempfile.TemporaryDirectory(prefix="spbench-bench-scale-") as tmp:
        engine_run(components, common.tiled_split(1), cfg, Path(tmp) / "warm")  # warm-up, untimed
        with common.measure(device) as m:
            engine_run(components, split, cfg, Path(tmp) / "run")
    print("RESULT " + json.dumps({"prompts": n, "images": n * common.SAMPLES_PER_PROMPT, "wall_s": m.wall_s,
                                  "cpu_s": m.cpu_s, "peak_bytes": m.peak_bytes, "start_bytes": m.start_bytes,
                                  "memory_kind": m.memory_kind, "load": os.getloadavg()[0]}))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--base-prompts", type=int, default=9, help="prompts at 1x (the shipped sample has 9)")
    p.add_argument("--scales", default="1,4,16")
    p.add_argument("--steps", type=int, default=common.STEPS)
    p.add_argument("--batch-size", type=int, default=4, help="engine batch size (spbench's default: 4)")
    p.add_argument("--child-scale", type=int, help=argparse_hidden())
    args = p.parse_args()
    if args.child_scale:
        return child(args)
    common.resolve_args(args)
    info = common.print_header("scale: engine time and peak memory vs number of prompts", args, {
        "workload": f"{args.base_prompts} prompts x {common.SAMPLES_PER_PROMPT} images per 1x, "
                    f"{common.CANVAS[args.size]}x{common.CANVAS[args.size]}, {args.steps} steps, B={args.batch_size}"})
    results = []
    for scale in (int(s) for s in args.scales.split(",")):
        cmd = [sys.executable, __file__, "--child-scale", str(scale)] + passthrough(args)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
        r = json.loads(line[len("RESULT "):])
        r["scale"] = scale
        results.append(r)
        print(f"   [{scale}x] {r['wall_s']:.1f} s", flush=True)
    base = results[0]
    rows = []
    for r in results:
        ideal = r["images"] / base["images"]
        rows.append([f"{r['scale']}x", r["prompts"], r["images"], r["wall_s"], r["cpu_s"], r["images"] / r["wall_s"],
                     r["wall_s"] / base["wall_s"], r["cpu_s"] / base["cpu_s"], ideal,
                     r["peak_bytes"] / 2**30, (r["peak_bytes"] - base["peak_bytes"]) / 2**20, r["load"]])
    print(f"   memory: {base['memory_kind']}, measured during generation only (models built before)")
    common.print_table(["scale", "prompts", "images", "wall s", "CPU s", "images/s", "wall / 1x", "CPU / 1x",
                        "ideal (linear)", "peak GiB", "peak − 1x MiB", "load avg"], rows)
    common.write_json(args.json, {"machine": info, "rows": results})


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def passthrough(args) -> list[str]:
    out = ["--device", args.device, "--size", args.size, "--dtype", args.dtype, "--base-prompts", str(args.base_prompts),
           "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out


if __name__ == "__main__":
    main()
