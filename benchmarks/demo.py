"""The README's main command, timed cold, and where its time goes.

    python benchmarks/demo.py

1. Runs ``spbench run --method spctrl --dataset sample --profile tiny --out DIR`` exactly as
   the README's main command (``make demo``) does (fresh output folder, new process, HF_HUB_OFFLINE=1) and times it (wall and
   CPU seconds of the process).
2. Runs it again in a new process under ``python -X importtime`` with wall-clock markers around
   the harness's phases, and splits the time into: interpreter start-up and exit, imports of the
   CLI and the harness (torch comes in with spbench.methods.base), config +
   dataset, model build, generation, scoring, and the rest; each phase also says how much of it
   was spent importing modules (lazy imports land in the phase that first needs them).

The first run is the figure; the second (a little slower: import timing and markers) gives the
split, with its own total printed next to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ARGS = ["run", "--method", "spctrl", "--dataset", "sample", "--profile", "tiny"]
MARK = "@@phase"


def driver(out: str, extra: list[str]) -> None:
    """Inside the timed process: run the CLI with phase markers on stderr."""
    t_start = time.perf_counter()

    def mark(kind, name):
        sys.stderr.write(f"{MARK} {kind} {name} {time.perf_counter() - t_start:.6f}\n")
        sys.stderr.flush()

    mark("enter", "CLI + harness imports (typer, rich, torch)")
    import spbench.cli as cli
    from spbench import harness

    mark("exit", "CLI + harness imports (typer, rich, torch)")

    def wrap(obj, attr, name):
        fn = getattr(obj, attr)

        def timed(*a, **k):
            mark("enter", name)
            try:
                return fn(*a, **k)
            finally:
                mark("exit", name)

        setattr(obj, attr, timed)

    # Imported here to put markers on them; the CLI would import them lazily a moment later.
    mark("enter", "engine + method imports")
    import spbench.generation.engine as engine
    import spbench.metrics.pose_models as pose_models
    from spbench.methods import get_method_class

    method_cls = get_method_class("spctrl")

    mark("exit", "engine + method imports")

    wrap(harness, "prepare", "config + dataset (prepare)")
    wrap(method_cls, "load", "model build (SD + SP-Ctrl)")
    wrap(engine, "generate", "generation (engine)")
    wrap(harness, "evaluate", "scoring (evaluate)")
    wrap(pose_models, "load_pose_model", "pose model build")
    sys.argv = ["spbench", *ARGS, *extra, "--out", out]
    mark("enter", "the rest (CLI, records, printing)")
    try:
        cli.main()
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    mark("exit", "the rest (CLI, records, printing)")


def parse(stderr: str) -> tuple[dict, dict, float]:
    """Exclusive wall seconds and import seconds per phase from the markers and importtime lines."""
    wall: dict[str, float] = {}
    imports: dict[str, float] = {}
    stack: list[tuple[str, float, float]] = []  # name, start, children's time
    startup_imports = 0.0
    end = 0.0
    for line in stderr.splitlines():
        if line.startswith(MARK):
            _, kind, rest = line.split(" ", 2)
            name, t = rest.rsplit(" ", 1)
            t = float(t)
            end = max(end, t)
            if kind == "enter":
                stack.append((name, t, 0.0))
            else:
                name, start, children = stack.pop()
                inclusive = t - start
                wall[name] = wall.get(name, 0.0) + inclusive - children
                if stack:
                    parent = stack.pop()
                    stack.append((parent[0], parent[1], parent[2] + inclusive))
        elif line.startswith("import time:") and "|" in line:
            m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
            if m and len(m.group(3)) == 1:  # outermost import statement
                seconds = int(m.group(2)) / 1e6
                if stack:
                    imports[stack[-1][0]] = imports.get(stack[-1][0], 0.0) + seconds
                else:
                    startup_imports += seconds
    imports["interpreter start-up and exit"] = startup_imports
    return wall, imports, end


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--driver", metavar="OUT", help=argparse.SUPPRESS)
    p.add_argument("--extra", default="", help="extra CLI options, e.g. '--steps 2' (a quick check of this script; "
                                              "the README command has none)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    extra = args.extra.split()
    if args.driver:
        return driver(args.driver, extra)

    import common  # not in the driver: it imports torch, which the CLI imports lazily

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    spbench_bin = Path(sys.executable).parent / "spbench"
    info = common.machine()
    print("\n== demo: the README's main command, cold")
    for k, v in info.items():
        print(f"   {k}: {v}")
    work = Path(tempfile.mkdtemp(prefix="spbench-bench-demo-"))
    cmd = [str(spbench_bin), *ARGS, *extra, "--out", str(work / "demo")]
    print(f"   command: cd {work} && HF_HUB_OFFLINE=1 {' '.join(cmd)}")
    t0 = time.perf_counter()
    r0 = os.times()
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = os.times()
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    if done.returncode:
        sys.exit(f"the command failed ({done.returncode}):\n{done.stderr[-2000:]}")

    cmd2 = [sys.executable, "-X", "importtime", __file__, "--driver", str(work / "demo2"), "--extra", args.extra]
    t0 = time.perf_counter()
    done2 = subprocess.run(cmd2, cwd=work, env=env, capture_output=True, text=True)
    wall2 = time.perf_counter() - t0
    if done2.returncode:
        sys.exit(f"the instrumented run failed ({done2.returncode}):\n{done2.stderr[-3000:]}")
    phases, imports, driver_end = parse(done2.stderr)
    phases = {"interpreter start-up and exit": wall2 - driver_end, **phases}
    order = ["interpreter start-up and exit", "CLI + harness imports (typer, rich, torch)",
             "engine + method imports", "config + dataset (prepare)",
             "model build (SD + SP-Ctrl)", "generation (engine)", "pose model build", "scoring (evaluate)",
             "the rest (CLI, records, printing)"]
    rows = [[name, phases.get(name, 0.0), imports.get(name, 0.0), phases.get(name, 0.0) - imports.get(name, 0.0),
             100 * phases.get(name, 0.0) / wall2] for name in order]
    rows.append(["total (instrumented run)", wall2, sum(imports.values()), wall2 - sum(imports.values()), 100.0])
    print(f"\n   cold run: {wall:.1f} s wall, {cpu:.1f} s CPU (goal ≤ 60 s); load average {os.getloadavg()[0]:.2f}")
    print(f"   split (second run, -X importtime + markers: {wall2:.1f} s); 'scoring' excludes the pose model build:")
    common.print_table(["phase", "wall s", "of which imports s", "work s", "% of run"], rows)
    common.write_json(args.json, {"machine": info, "cold_wall_s": wall, "cold_cpu_s": cpu, "instrumented_wall_s": wall2,
                                  "phases_s": phases, "imports_s": imports})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
