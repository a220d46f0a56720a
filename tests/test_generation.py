import numpy as np
import pytest
import torch

from helpers import generate_run, quadruped_split, run_pixels
from spbench.config import load_profile, resolve
from spbench.errors import SpbenchError
from spbench.files import read_jsonl
from spbench.methods import get_method_class
from spbench.run.folder import RunFolder
from spbench.run.requests import MethodContext
from spbench.run.seeds import initial_noise, request_seed


def _config(**gen):
    flags = {f"generation.{k}": v for k, v in {"steps": 3, "samples": 2, **gen}.items()}
    return resolve(load_profile("tiny"), "ap10k", flags, [])


def _generate(path, cfg, split, method=None):
    return generate_run(path, method or get_method_class("controlnet")(MethodContext(cfg)), split, cfg)


def test_seed_is_a_pure_function_of_base_seed_sample_and_k():
    assert request_seed(0, "ap10k-1", 0) == request_seed(0, "ap10k-1", 0)
    assert len({request_seed(0, "ap10k-1", 0), request_seed(0, "ap10k-1", 1),
                request_seed(0, "ap10k-2", 0), request_seed(1, "ap10k-1", 0)}) == 4


def test_initial_noise_is_bitwise_identical_whatever_the_batch():
    seeds = [request_seed(0, f"s{i}", k) for i in range(3) for k in range(2)]
    together = initial_noise(seeds, (4, 8, 8))
    alone = torch.cat([initial_noise([s], (4, 8, 8)) for s in seeds])
    reversed_order = initial_noise(seeds[::-1], (4, 8, 8)).flip(0)
    assert torch.equal(together, alone) and torch.equal(together, reversed_order)


def test_batch_size_does_not_change_the_images(tmp_path, capsys):
    split = quadruped_split(3)
    one, _ = _generate(tmp_path / "bs1", _config(batch_size=1), split)
    four, _ = _generate(tmp_path / "bs4", _config(batch_size=4), split)
    a, b = run_pixels(one), run_pixels(four)
    assert a.keys() == b.keys() and len(a) == 6
    worst = max(int(np.abs(a[k] - b[k]).max()) for k in a)
    with capsys.disabled():
        print(f"\n[measured] batch 1 vs batch 4, tiny ControlNet on CPU: max pixel difference {worst}/255")
    assert worst <= 1
    # Different requests do get different images.
    assert np.abs(a["test-000_k0.png"] - a["test-000_k1.png"]).max() > 0


class _Interrupting:
    """Wraps a method and raises KeyboardInterrupt after a number of batches, like Ctrl-C."""

    def __init__(self, inner, batches):
        self.inner, self.left = inner, batches

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, *args):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.inner.generate(*args)


def test_interrupted_run_resumes_to_the_same_files(tmp_path):
    split = quadruped_split(3)
    cfg = _config(batch_size=2)
    full, _ = _generate(tmp_path / "full", cfg, split)
    method = get_method_class("controlnet")(MethodContext(cfg))
    with pytest.raises(KeyboardInterrupt):
        _generate(tmp_path / "cut", cfg, split, _Interrupting(method, batches=1))
    cut = RunFolder(tmp_path / "cut")
    assert len(list((cut.path / "images").glob("*.png"))) == 2
    assert not cut.manifest_jsonl.exists()  # written only once every image is there
    _, counts = _generate(tmp_path / "cut", cfg, split)
    assert counts == {"requests": 6, "skipped": 2, "generated_here": 4}
    a, b = run_pixels(full), run_pixels(cut)
    assert a.keys() == b.keys()
    assert all(np.abs(a[k] - b[k]).max() <= 1 for k in a)
    assert not list(cut.path.rglob("*.tmp"))
    rows = read_jsonl(cut.manifest_jsonl)
    assert sorted((r["sample_id"], r["k"]) for r in rows) == [(f"test-00{i}", k) for i in range(3) for k in range(2)]
    row = rows[0]
    assert row["seed"] == request_seed(0, row["sample_id"], row["k"])
    assert row["prompt"] == "A good photo of dog" and row["condition"]["kind"] == "openpose"
    assert (cut.path / row["file"]).is_file() and (cut.path / row["condition"]["file"]).is_file()
    assert row["canvas"]["width"] == 64 and row["canvas"]["scale_x"] == pytest.approx(64 / 200)


def test_a_run_folder_refuses_other_settings(tmp_path):
    split = quadruped_split(1)
    _generate(tmp_path / "r", _config(samples=1), split)
    with pytest.raises(SpbenchError, match="steps"):
        _generate(tmp_path / "r", _config(samples=1, steps=4), split)
    # Batch size and sample count do not change images, so they may differ on resume.
    _generate(tmp_path / "r", _config(samples=2, batch_size=3), split)
