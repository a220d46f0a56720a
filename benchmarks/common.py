"""Helpers shared by the benchmark scripts: arguments, models at tiny or real SD1.5 size, the
workload, timing, peak memory and tables.

Every script prints measured figures only, with ratios against a baseline measured in the same
invocation. Real-size models are built from SD1.5's published configs with random weights
(``spbench.models.real_size``, ``spbench.metrics.real_size``), written once in the hub's layouts
and loaded from those folders as the real ones are: the arithmetic (and so the time and memory)
and the loading are those of the real weights; the images mean nothing.

Memory, as printed:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only).
- CPU: peak resident set size of this process, ``VmHWM`` of ``/proc/self/status``, reset to the
  current RSS before each measured phase by writing 5 to ``/proc/self/clear_refs`` (Linux ≥ 4.0).
  Where that reset is refused, ``resource.getrusage`` ``ru_maxrss`` (a lifetime peak) is printed
  and labelled so. tracemalloc is not used: it does not see torch's tensor allocations.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# The paper's protocol (spbench's defaults): UniPC, 50 steps, CFG 7.5, λ = 1.0, 3 images per prompt.
STEPS = 50
GUIDANCE = 7.5
SAMPLES_PER_PROMPT = 3
CANVAS = {"tiny": 64, "real": 512}

# -- arguments ---------------------------------------------------------------------------------

def parser(description: str, *, default_size: str = "tiny") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--size", choices=("tiny", "real"), default=default_size,
                   help="tiny: spbench's tiny SD1.5-shaped models (64x64); real: SD1.5-sized random models (512x512)")
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                   help="auto: float16 on CUDA, float32 on CPU (spbench's generation.dtype=auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's own choice, one per core)")
    p.add_argument("--json", metavar="FILE", help="also write the measured figures to FILE as JSON")
    return p


def resolve_args(args) -> tuple[torch.device, torch.dtype]:
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dtype == "auto":
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    return device, dtype


# -- the machine -------------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": f"{cpu}, {os.cpu_count()} cores ({platform.machine()})",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} threads",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default: spin, then sleep)"),
        "load average (1 min)": round(os.getloadavg()[0], 2),
    }
    try:
        import diffusers
        import transformers

        info["libraries"] = f"diffusers {diffusers.__version__}, transformers {transformers.__version__}"
    except ImportError:
        pass
    return info


def print_header(title: str, args, extra: dict | None = None) -> dict:
    info = {**machine(), **{k: getattr(args, k) for k in ("device", "size", "dtype") if hasattr(args, k)}, **(extra or {})}
    print(f"\n== {title}")
    for k, v in info.items():
        print(f"   {k}: {v}")
    return info


# -- timing and memory -------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclasses.dataclass
class Measurement:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system CPU seconds of this process (CPU runs)
    peak_bytes: int = 0  # see memory_kind
    start_bytes: int = 0  # RSS / allocated memory when the phase started
    memory_kind: str = ""

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30

    @property
    def growth_gib(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**30


@contextmanager
def measure(device: torch.device):
    """Wall time, CPU time and peak memory of the enclosed block (see the module docstring)."""
    m = Measurement()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        m.start_bytes = torch.cuda.memory_allocated(device)
        m.memory_kind = "torch.cuda.max_memory_allocated"
    else:
        reset = _reset_cpu_peak()
        m.start_bytes = (_rss_kib("VmRSS") or 0) * 1024
        m.memory_kind = "peak RSS (VmHWM, reset per phase)" if reset else "peak RSS (ru_maxrss, process lifetime)"
    c0, t0 = cpu_seconds(), time.perf_counter()
    try:
        yield m
    finally:
        sync(device)
        m.wall_s = time.perf_counter() - t0
        m.cpu_s = cpu_seconds() - c0
        if device.type == "cuda":
            m.peak_bytes = torch.cuda.max_memory_allocated(device)
        elif m.memory_kind.startswith("peak RSS (VmHWM"):
            m.peak_bytes = (_rss_kib("VmHWM") or 0) * 1024
        else:
            m.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


# -- tables ------------------------------------------------------------------------------------

def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e7 or abs(v) < 10 ** -(digits)):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v)


def print_table(columns: list[str], rows: list[list]) -> None:
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda r: "| " + " | ".join(x.ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(columns))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print(line(r))


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"   (figures written to {path})")


# -- models ------------------------------------------------------------------------------------

def real_size_folder() -> Path:
    """Where the real-size random SD1.5, ControlNet and T2I-Adapter folders are written once (in
    the hub's layouts, ~5.5 GB, in hub/) and CLIP's tokenizer: ``$SPBENCH_CACHE`` or
    ``~/.cache/spbench``, under real-size/."""
    from spbench.files import cache_root

    return cache_root({}) / "real-size"


def build_sd(size: str, device: torch.device | str = "cpu", seed: int = 0):
    """spbench SDComponents on the CPU: ``tiny`` is spbench's own tiny build; ``real`` is
    SD1.5-sized (UNet 860M, VAE 84M, CLIP-L text 123M parameters, CLIP's real 49,408-token
    tokenizer) with random weights, written once in the hub's layout (:func:`real_size_folder`)
    and loaded from it by spbench's own loader, as the real weights are. ``"meta"`` builds shapes
    only, for FLOP counting (real: built directly, with ``seed``; the folder is always seed 0)."""
    from spbench.models import real_size
    from spbench.models.stable_diffusion import build_tiny_sd, load_sd_components

    if size == "tiny":
        sd = build_tiny_sd(seed)
        if str(device) == "meta":
            sd.unet, sd.vae, sd.text_encoder = (m.to("meta") for m in (sd.unet, sd.vae, sd.text_encoder))
        return sd
    if str(device) == "meta":
        return real_size.build_sd15(real_size.clip_tokenizer(real_size_folder() / "clip-tokenizer"), "meta", seed)
    return load_sd_components(str(real_size.generation_models(real_size_folder() / "hub")["base"]))


def build_controlnet(unet, checkpoint: str | None = None):
    """``ControlNetModel.from_unet`` (spbench's initialisation for a ControlNet without checkpoint),
    or the ControlNet of the folder ``checkpoint``."""
    from spbench.models.controlnet import load_controlnet

    with torch.device(unet.device):
        return load_controlnet(checkpoint, unet)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


class Components:
    """One set of SD1.5 + ControlNet weights, shared by spbench's engine and the naive loop so the
    two are compared on the very same model."""

    def __init__(self, size: str, device: torch.device, dtype: torch.dtype):
        from spbench.models.stable_diffusion import place

        t0 = time.perf_counter()
        self.sd = build_sd(size)
        # real: the OpenPose ControlNet's folder in the hub's layout, loaded as a --checkpoint is.
        checkpoint = None
        if size == "real":
            from spbench.models.real_size import generation_models

            checkpoint = str(generation_models(real_size_folder() / "hub")["controlnet"])
        self.controlnet = build_controlnet(self.sd.unet, checkpoint)
        self.sd.to(device, dtype)
        place(self.controlnet, device, dtype)
        sync(device)
        self.build_s = time.perf_counter() - t0
        self.size, self.device, self.dtype = size, device, dtype

    def params(self) -> dict:
        return {name: n_params(m) for name, m in (("unet", self.sd.unet), ("controlnet", self.controlnet),
                                                    ("vae", self.sd.vae), ("text_encoder", self.sd.text_encoder))}

    def pipeline(self, scheduler: str = "unipc"):
        from spbench.models.pipelines import controlnet_pipeline

        return controlnet_pipeline(self.sd, self.controlnet, scheduler)


def bench_method(components: Components, config: dict):
    """spbench's ControlNet method, its ``load`` taking the shared weights instead of building them."""
    from spbench.methods import get_method_class
    from spbench.run.requests import MethodContext

    class SharedWeightsControlNet(get_method_class("controlnet")):
        def load(self) -> None:  # what ControlNetMethod.load does once its weights are built
            self.sd = components.sd
            self.pipe = components.pipeline(self.context.config["generation"]["scheduler"])

    return SharedWeightsControlNet(MethodContext(config, components.device, components.dtype))


# -- the workload ------------------------------------------------------------------------------

def tiled_split(n_prompts: int):
    """``n_prompts`` samples: the shipped AP-10K-style sample (9 samples) repeated, each copy with
    its own sample id (so its own seeds)."""
    from spbench.data.records import Split
    from spbench.data.registry import load_split

    base = load_split("sample", "ap10k")
    samples = []
    for i in range(n_prompts):
        s = base.samples[i % len(base.samples)]
        copy = i // len(base.samples)
        samples.append(dataclasses.replace(s, sample_id=s.sample_id if copy == 0 else f"{s.sample_id}-c{copy}"))
    return Split(base.dataset, base.name, tuple(samples), base.root, base.stats)


def run_config(size: str, steps: int, batch_size: int = 4, **sets) -> dict:
    """The resolved spbench config of a run at ``size`` (profile tiny, canvas 64 or 512)."""
    from spbench.config import load_profile, resolve

    flags = {"generation.steps": steps, "generation.batch_size": batch_size, "generation.canvas": CANVAS[size],
             "generation.images_per_prompt": SAMPLES_PER_PROMPT, "generation.guidance_scale": GUIDANCE}
    flags.update(sets)
    cfg = resolve(load_profile("tiny"), "ap10k", flags, [])
    cfg["profile"]["name"] = f"bench-{size}"
    return cfg


class SingleProcess:
    """The engine's ``state`` for one process (accelerate's PartialState without accelerate)."""

    process_index, num_processes, is_main_process = 0, 1, True
    device = "cpu"

    def wait_for_everyone(self) -> None:
        pass
