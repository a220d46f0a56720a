"""Half-precision generation: every method runs its models in bfloat16 / float16 end to end and
its images stay close to float32. On a GPU, fp16 is the default (generation.dtype=auto); CI has no
GPU, so these run the same casting code on the CPU, where both half types are implemented."""

import numpy as np
import pytest
import torch

from helpers import generate_run, run_pixels, wake_up
from spbench.config import load_profile, resolve
from spbench.data.registry import load_split
from spbench.methods import get_method_class
from spbench.run.requests import MethodContext

METHODS = ["spctrl", "controlnet", "t2i-adapter", "controlnet-depth", "controlnet-mask"]


def _images(path, method_name: str, dtype: torch.dtype) -> dict[str, np.ndarray]:
    cfg = resolve(load_profile("tiny"), "ap10k", {"generation.steps": 3, "generation.samples": 2}, [])
    method = get_method_class(method_name)(MethodContext(cfg, torch.device("cpu"), dtype))
    load = method.load

    def load_and_wake_up():  # an untrained ControlNet adds zeros: give it weights, so the
        load()               # condition path counts in the comparison too
        if getattr(method.pipe, "controlnet", None) is not None:
            wake_up(method.pipe.controlnet, seed=0)

    method.load = load_and_wake_up
    split = load_split("sample").limit(1)  # real images: depth and mask conditions are extracted from them
    return run_pixels(generate_run(path, method, split)[0])


_FLOAT32: dict[str, dict[str, np.ndarray]] = {}  # method -> its float32 images, shared by bf16 and fp16


def _compare(tmp_path, method_name: str, dtype: torch.dtype, capsys) -> tuple[float, int]:
    if method_name not in _FLOAT32:
        _FLOAT32[method_name] = _images(tmp_path / "fp32", method_name, torch.float32)
    full = _FLOAT32[method_name]
    half = _images(tmp_path / str(dtype), method_name, dtype)
    assert full.keys() == half.keys() and len(full) == 2
    diffs = [np.abs(full[k] - half[k]) for k in full]
    mean, worst = float(np.mean([d.mean() for d in diffs])), int(max(d.max() for d in diffs))
    with capsys.disabled():
        print(f"\n[measured] {method_name} {dtype} vs float32, tiny on CPU: mean |Δ| {mean:.2f}/255, max {worst}/255")
    return mean, worst


@pytest.mark.parametrize("method_name", METHODS)
def test_bfloat16_generation_runs_and_stays_close_to_float32(tmp_path, method_name, capsys):
    mean, _ = _compare(tmp_path, method_name, torch.bfloat16, capsys)
    # bf16 keeps 8 mantissa bits, so the images do move (proof the half path ran), and CFG 7.5 on
    # random tiny models amplifies it: measured 2-9/255 on average. Unrelated images (two seeds of
    # one prompt) differ by 46-50/255 on average, so a broken cast cannot pass under 16.
    assert 0 < mean <= 16


def test_float16_generation_runs_and_stays_close_to_float32(tmp_path, capsys):
    # fp16 matmuls are slow on a CPU, so one method: SP-Ctrl has the most casting (SPR's
    # embedding table and keypoint tokens feed fp16 ControlNet and text encoder).
    mean, _ = _compare(tmp_path, "spctrl", torch.float16, capsys)
    assert 0 < mean <= 8  # measured 3.6-4.8/255 (0.3/255 with the ControlNet left at zero)


def test_methods_place_their_models_in_the_requested_dtype():
    cfg = resolve(load_profile("tiny"), "ap10k", {}, [])
    method = get_method_class("spctrl")(MethodContext(cfg, torch.device("cpu"), torch.bfloat16))
    method.load()
    dtypes = {p.dtype for p in method.sd.unet.parameters()} | {p.dtype for p in method.model.parameters()}
    assert dtypes == {torch.bfloat16}
