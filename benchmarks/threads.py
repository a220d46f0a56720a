"""CPU threading: the engine run under torch's default threads, one thread, and passive waiting.

    python benchmarks/threads.py                     # tiny, CPU: 3 prompts x 3 images, 50 steps, B=4

torch's CPU kernels run on an OpenMP pool (one thread per core). When other processes compete
for the cores (a shared machine, a CI runner, a test suite in parallel), OpenMP threads that spin
while waiting at each kernel's barrier burn the time slices the other thread needs. Each
configuration runs in a fresh process (OMP_WAIT_POLICY is read when OpenMP starts), builds the
tiny models, warms up on one prompt, then times ``engine.generate``. The baseline is torch's
default (all cores, OMP_WAIT_POLICY unset). The load average printed is the machine's at the
end of each row: compare rows only under similar load.
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

CONFIGS = [
    ("default threads, OMP_WAIT_POLICY unset (baseline)", None, None),
    ("1 thread", 1, None),
    ("default threads, OMP_WAIT_POLICY=PASSIVE", None, "PASSIVE"),
]


def child(args) -> None:
    from generation import engine_run

    device, dtype = common.resolve_args(args)
    components = common.Components(args.size, device, dtype)
    cfg = common.run_config(args.size, args.steps, args.batch_size)
    with tempfile.TemporaryDirectory(prefix="spbench-bench-threads-") as tmp:
        engine_run(components, common.tiled_split(1), cfg, Path(tmp) / "warm")
        with common.measure(device) as m:
            engine_run(components, common.tiled_split(args.prompts), cfg, Path(tmp) / "run")
    import torch

    print("RESULT " + json.dumps({"wall_s": m.wall_s, "cpu_s": m.cpu_s, "threads": torch.get_num_threads(),
                                  "load": os.getloadavg()[0]}))


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=3)
    p.add_argument("--steps", type=int, default=common.STEPS)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1, help="rounds over the configurations (median printed)")
    p.add_argument("--child", action="store_true", help=__import__("argparse").SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.device != "cpu":
        sys.exit("threads.py measures CPU threading: use --device cpu")
    info = common.print_header("threads: engine run under CPU threading settings", args, {
        "workload": f"{args.prompts} prompts x 3 images, {common.CANVAS[args.size]}x{common.CANVAS[args.size]}, "
                    f"{args.steps} steps, B={args.batch_size}"})
    results: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        for name, threads, policy in CONFIGS:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            cmd = [sys.executable, __file__, "--child", "--size", args.size, "--dtype", args.dtype, "--prompts",
                   str(args.prompts), "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
            if threads:
                cmd += ["--threads", str(threads)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            res = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
            results.setdefault(name, []).append(res)
            print(f"   [{name}, round {r}] {res['wall_s']:.1f} s, load {res['load']:.2f}", flush=True)
    n = args.prompts * common.SAMPLES_PER_PROMPT
    base = common.median([x["wall_s"] for x in results[CONFIGS[0][0]]])
    rows = []
    for name, rs in results.items():
        wall = common.median([x["wall_s"] for x in rs])
        cpu = common.median([x["cpu_s"] for x in rs])
        rows.append([name, rs[0]["threads"], wall, n / wall, cpu / n, base / wall,
                     " / ".join(f"{x['load']:.1f}" for x in rs)])
    common.print_table(["configuration", "threads", "wall s", "images/s", "CPU s/image", "speed-up vs default",
                        "load avg per round"], rows)
    common.write_json(args.json, {"machine": info, "rows": results})


if __name__ == "__main__":
    main()
