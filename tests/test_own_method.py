"""The README's "your own method" example runs through the public interface."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from spbench.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_readme_shows_the_example_verbatim():
    example = (ROOT / "examples" / "text_only.py").read_text()
    body = example.split('"""', 2)[2].strip()  # the code after the module docstring
    assert body in (ROOT / "README.md").read_text()


def test_own_method_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    args = ["run", "--method", "examples.text_only:TextOnlySD", "--dataset", "sample", "--profile", "tiny",
            "--steps", "2", "--limit", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    record = json.loads((run / "result.json").read_text())
    assert record["method"]["name"] == "text-only" and record["metrics"]["pose"]["AP"] is not None
    images = sorted((run / "images").glob("*.png"))
    assert len(images) == 6
    # Different seeds give different images: the method really denoises the engine's latents.
    a, b = (np.asarray(Image.open(p), dtype=np.int16) for p in images[:2])
    assert np.abs(a - b).max() > 0


def test_a_class_that_is_not_a_method_is_refused():
    result = CliRunner().invoke(app, ["run", "--method", "json:JSONDecoder"])
    assert result.exit_code != 0
    assert "not a subclass of spbench.methods.Method" in str(result.exception)
