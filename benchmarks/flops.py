"""FLOPs of one denoising step and the achieved model FLOPs utilisation (MFU).

    python benchmarks/flops.py --size real                          # count at 512x512; time a step on this CPU
    python benchmarks/flops.py --size real --device cuda            # the same on a GPU (fp16)
    python benchmarks/flops.py --size real --images-per-s R         # MFU of a generation run at R images/s

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on models built on the meta
device (shapes only: no arithmetic runs, no memory is used). One denoising step is the ControlNet
plus the UNet at batch 2 (classifier-free guidance: conditional and unconditional halves). A FLOP
is a multiply or an add (a multiply-add is 2), as FlopCounterMode counts; it counts matmuls,
convolutions and attention (normalisations and activations, a few percent, are not counted).

MFU = counted FLOPs / measured time / measured matmul rate of the device in the same dtype
(the achievable peak: the best of a few large square ``torch.matmul`` calls), so the MFU of a step is
``step_FLOPs / step_time / matmul_rate`` and of a generation run
``images_per_s × FLOPs_per_image / matmul_rate`` with
``FLOPs_per_image = steps × step_FLOPs + VAE_decode_FLOPs + 2 × text_encoder_FLOPs`` (two
77-token sequences per image: its prompt and the empty prompt; the naive loop shares them among
its 3 images, a small difference).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402


def step_inputs(size: str, device, dtype, batch: int = 2):
    h = common.CANVAS[size]
    cross = 768 if size == "real" else 32
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype) if str(device) != "meta" else torch.empty(*shape, device="meta", dtype=dtype)

    return {"sample": rand(batch, 4, h // 8, h // 8), "timestep": torch.full((batch,), 500, device=device),
            "encoder_hidden_states": rand(batch, 77, cross), "controlnet_cond": rand(batch, 3, h, h)}


def denoising_step(unet, controlnet, x: dict):
    down, mid = controlnet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"],
                           controlnet_cond=x["controlnet_cond"], return_dict=False)
    return unet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"],
                down_block_additional_residuals=down, mid_block_additional_residual=mid, return_dict=False)[0]


def count(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn()
    return counter.get_total_flops()


def count_flops(size: str) -> dict:
    """FLOPs of the ControlNet and UNet (batch 2), the VAE decoder (1 image) and the text encoder
    (1 sequence of 77 tokens), at ``size``, on meta-device models."""
    sd = common.build_sd(size, "meta")
    controlnet = common.build_controlnet(sd.unet)
    x = step_inputs(size, "meta", torch.float32)
    flops = {}
    holder = {}

    def cn():
        holder["res"] = controlnet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"],
                                   controlnet_cond=x["controlnet_cond"], return_dict=False)

    flops["controlnet (batch 2)"] = count(cn)
    down, mid = holder["res"]
    flops["unet (batch 2)"] = count(lambda: sd.unet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"],
                                                    down_block_additional_residuals=down, mid_block_additional_residual=mid))
    flops["step = controlnet + unet"] = flops["controlnet (batch 2)"] + flops["unet (batch 2)"]
    h = common.CANVAS[size] // 8
    flops["vae decode (1 image)"] = count(lambda: sd.vae.decode(torch.empty(1, 4, h, h, device="meta")))
    flops["text encoder (1 sequence)"] = count(lambda: sd.text_encoder(torch.zeros(1, 77, dtype=torch.long, device="meta")))
    return flops


def matmul_rate(device, dtype, n: int, repeats: int = 5) -> tuple[float, float]:
    """Best FLOP/s of ``torch.matmul`` of two n x n matrices (2 n³ FLOPs), and its seconds."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    common.sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        common.sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best, best


def step_time(size: str, device, dtype, repeats: int) -> tuple[float, float]:
    """Median wall seconds of one denoising step (ControlNet + UNet, batch 2), and model build seconds."""
    components = common.Components(size, device, dtype)
    x = step_inputs(size, device, dtype)
    times = []
    with torch.inference_mode():
        denoising_step(components.sd.unet, components.controlnet, x)  # warm-up
        for _ in range(repeats):
            common.sync(device)
            t0 = time.perf_counter()
            denoising_step(components.sd.unet, components.controlnet, x)
            common.sync(device)
            times.append(time.perf_counter() - t0)
    return common.median(times), components.build_s


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], default_size="real")
    p.add_argument("--steps", type=int, default=common.STEPS, help="denoising steps per image")
    p.add_argument("--matmul-n", type=int, default=None, help="matmul size (default: 4096 CPU, 8192 CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default: 1 real CPU, 10 otherwise)")
    p.add_argument("--images-per-s", type=float, default=None,
                   help="a measured generation rate (benchmarks/generation.py, same size/device/dtype) to turn into MFU")
    p.add_argument("--count-only", action="store_true", help="count FLOPs, time nothing")
    args = p.parse_args()
    device, dtype = common.resolve_args(args)
    info = common.print_header("FLOPs of one denoising step and MFU", args, {"canvas": common.CANVAS[args.size]})

    t0 = time.perf_counter()
    flops = count_flops(args.size)
    print(f"   counted on the meta device in {time.perf_counter() - t0:.1f} s (no arithmetic)")
    per_image = args.steps * flops["step = controlnet + unet"] + flops["vae decode (1 image)"] + 2 * flops["text encoder (1 sequence)"]
    rows = [[k, v / 1e9, v / flops["step = controlnet + unet"]] for k, v in flops.items()]
    rows.append([f"per image ({args.steps} steps + decode + 2 text sequences)", per_image / 1e9,
                 per_image / flops["step = controlnet + unet"]])
    common.print_table(["what", "GFLOP", "× one step"], rows)
    figures = {"flops": flops, "flops_per_image": per_image}

    if not args.count_only:
        n = args.matmul_n or (8192 if device.type == "cuda" else 4096)
        rate, secs = matmul_rate(device, dtype, n)
        repeats = args.repeats or (1 if args.size == "real" and device.type == "cpu" else 10)
        t_step, build_s = step_time(args.size, device, dtype, repeats)
        step_rate = flops["step = controlnet + unet"] / t_step
        figures.update({"matmul_flops_per_s": rate, "matmul_n": n, "step_s": t_step, "step_flops_per_s": step_rate,
                        "mfu_step": step_rate / rate})
        print(f"\n-- measured on {device} ({str(dtype).split('.')[-1]}); model build {build_s:.1f} s, load average {os.getloadavg()[0]:.2f}")
        rows = [[f"matmul {n}x{n} (best of 5)", secs, rate / 1e9, 1.0],
                [f"one step, batch 2 (median of {repeats})", t_step, step_rate / 1e9, step_rate / rate]]
        if args.images_per_s:
            gen_rate = args.images_per_s * per_image
            figures["mfu_generation"] = gen_rate / rate
            rows.append([f"generation at {args.images_per_s} images/s", 1 / args.images_per_s, gen_rate / 1e9, gen_rate / rate])
        common.print_table(["what", "seconds", "achieved GFLOP/s", "MFU (÷ matmul rate)"], rows)
        print(f"   MFU(step) = {flops['step = controlnet + unet'] / 1e9:.2f} GFLOP / {t_step:.4f} s / {rate / 1e9:.1f} GFLOP/s"
              f" = {step_rate / rate:.3f}")
    common.write_json(args.json, {"machine": info, **figures})


if __name__ == "__main__":
    main()
