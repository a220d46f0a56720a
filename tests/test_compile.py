"""generation.compile: the per-step modules are torch.compile'd in place, and the images stay those
of eager mode. Compiling the tiny UNet + ControlNet takes ~3 minutes on 2 cores, so the
end-to-end comparison is marked slow; the wiring is checked without compiling."""

import numpy as np
import pytest
import torch

from helpers import generate_run, run_pixels
from spbench.config import load_profile, resolve
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.methods import get_method_class
from spbench.models.pipelines import compile_step_modules
from spbench.run.requests import MethodContext


def _config(**gen):
    flags = {f"generation.{k}": v for k, v in {"steps": 3, "samples": 2, **gen}.items()}
    return resolve(load_profile("tiny"), "ap10k", flags, [])


def _is_compiled(module: torch.nn.Module) -> bool:
    return module._compiled_call_impl is not None  # what nn.Module.compile() sets


@pytest.mark.parametrize("method_name", ["controlnet", "spctrl"])
def test_compile_marks_the_unet_and_controlnet_of_the_pipeline(method_name):
    method = get_method_class(method_name)(MethodContext(_config()))
    method.load()
    assert not _is_compiled(method.pipe.unet)
    assert compile_step_modules(method) == ["unet", "controlnet"]
    assert _is_compiled(method.pipe.unet) and _is_compiled(method.pipe.controlnet)
    assert not _is_compiled(method.pipe.vae) and not _is_compiled(method.pipe.text_encoder)


def test_compile_of_a_method_without_a_pipeline_is_a_clear_error():
    method = get_method_class("real")(MethodContext(_config()))
    with pytest.raises(SpbenchError, match="generation.compile=false"):
        compile_step_modules(method)


def test_compile_setting_must_be_a_boolean():
    assert _config()["generation"]["compile"] is False
    with pytest.raises(SpbenchError, match="expected bool"):
        resolve(load_profile("tiny"), "ap10k", {}, ["generation.compile=maybe"])


def _generate(path, compile_models: bool) -> dict[str, np.ndarray]:
    method = get_method_class("controlnet")(MethodContext(_config(batch_size=2)))
    run, _ = generate_run(path, method, load_split("sample").limit(1), compile_models=compile_models)
    if compile_models:
        assert _is_compiled(method.pipe.unet)
    return run_pixels(run)


@pytest.mark.slow
def test_compiled_generation_gives_the_eager_images(tmp_path, capsys):
    eager = _generate(tmp_path / "eager", False)
    compiled = _generate(tmp_path / "compiled", True)
    assert eager.keys() == compiled.keys() and len(eager) == 2
    worst = max(int(np.abs(eager[k] - compiled[k]).max()) for k in eager)
    with capsys.disabled():
        print(f"\n[measured] torch.compile vs eager, tiny ControlNet on CPU: max pixel difference {worst}/255")
    assert worst <= 1
