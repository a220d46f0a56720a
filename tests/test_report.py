"""`spbench report`: an HTML page whose images decode and show the conditions and the samples.

The run folder is written by hand (solid-colour images), so each embedded picture can be told
apart by its colour without running a model."""

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spbench.errors import SpbenchError
from spbench.tables.build import report_command

RED, GREEN, BLUE, YELLOW, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (128, 128, 128)
SAMPLE_COLOURS = {0: GREEN, 1: BLUE, 2: YELLOW}


def make_run(root: Path, name: str, samples=("s1", "s2"), ks=(0, 1, 2), tiny=True) -> Path:
    run = root / name
    data = root / "data"
    for folder in (run / "conditions", run / "images", data):
        folder.mkdir(parents=True, exist_ok=True)
    manifest, sample_rows = [], []
    for sid in samples:
        Image.new("RGB", (40, 20), GREY).save(data / f"{sid}.jpg")            # reference: 40x20
        Image.new("RGB", (32, 32), RED).save(run / "conditions" / f"{sid}.png")
        sample_rows.append({"sample_id": sid, "file": f"{sid}.jpg", "width": 40, "height": 20, "instances": []})
        for k in ks:
            Image.new("RGB", (32, 32), SAMPLE_COLOURS[k]).save(run / "images" / f"{sid}_k{k}.png")
            manifest.append({"sample_id": sid, "k": k, "prompt": f"a dog {sid}", "file": f"images/{sid}_k{k}.png",
                             "condition": {"kind": "openpose", "file": f"conditions/{sid}.png"},
                             "canvas": {"width": 32, "height": 32, "scale_x": 0.8, "scale_y": 1.6,
                                        "offset_x": 0.0, "offset_y": 0.0, "mode": "stretch"}})
    info = {"run": name, "dataset": {"name": "sample", "split": "ap10k", "data_root": str(data)},
            "method": {"name": "controlnet", "variant": None}, "config": {"profile": {"name": "tiny", "tiny": tiny}}}
    (run / "run.json").write_text(json.dumps(info))
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    (run / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    record = {**info, "tiny": tiny, "metrics": {
        "pose": {"AP": 12.34, "mean_over_k": 12.0, "std_over_k": 0.5},
        "clip": {"score": 21.5, "per_category": {"dog": {"score": 21.0, "num_images": 3}, "cat": {"score": 22.0, "num_images": 3}}}}}
    (run / "result.json").write_text(json.dumps(record))
    (run / "per_image.jsonl").write_text(
        json.dumps({"metric": "pose", "sample_id": "s1", "k": 0, "instances": [{"category": "dog", "oks": 0.5}]}) + "\n")
    return run


def embedded_images(page: Path) -> dict[str, Image.Image]:
    """alt text -> decoded image, for every <img> of the page (all must be data: PNGs)."""
    out = {}
    for src, alt in re.findall(r'<img src="([^"]+)" alt="([^"]*)">', page.read_text()):
        assert src.startswith("data:image/png;base64,"), src[:40]
        out[alt] = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    return out


def colour(im: Image.Image) -> tuple:
    return tuple(int(v) for v in np.asarray(im).reshape(-1, 3).mean(axis=0).round())


def test_report_shows_conditions_and_samples(tmp_path):
    run = make_run(tmp_path, "sample-ap10k-controlnet-tiny")
    page = report_command([run], tmp_path / "report")
    assert page == tmp_path / "report" / "index.html"
    images = embedded_images(page)
    for sid in ("s1", "s2"):
        assert colour(images[f"{sid} condition (openpose)"]) == RED
        assert colour(images[f"{sid} reference image"]) == GREY
        for k, c in SAMPLE_COLOURS.items():
            assert colour(images[f"{sid} k={k}"]) == c
    # the reference image is shown on the 32x32 canvas like the condition: square, not 2:1
    ref = images["s1 reference image"]
    assert ref.width == ref.height
    text = page.read_text()
    assert "a dog s1" in text and "12.34" in text and "†tiny" in text and "not results" in text
    # order of a row: sample, reference, condition, k=0..2
    assert re.search(r"<th>sample</th><th>reference</th><th>condition</th><th>k=0</th><th>k=1</th><th>k=2</th>", text)


def test_report_per_category_bars_and_figures_folder(tmp_path):
    page = report_command([make_run(tmp_path, "a")], tmp_path / "out")
    images = embedded_images(page)
    bars = [alt for alt in images if alt.startswith("per-category bars")]
    assert len(bars) == 2  # CLIP per category (record) and pose OKS per category (per_image.jsonl)
    written = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert "bars-ap10k-clip-score.png" in written and "bars-ap10k-pose-oks.png" in written
    assert "grid-a.png" in written
    with Image.open(tmp_path / "out" / "figures" / "grid-a.png") as grid:
        assert grid.width == 5 * (160 + 4)  # reference, condition, 3 samples


def test_two_methods_two_blocks_and_missing_images(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path / "other", "b", samples=("s1",), ks=(0,))
    text = report_command([a, b], tmp_path / "out").read_text()
    assert text.count('<table class="grid">') == 2
    assert "missing" in text  # run b has no s2


def test_report_errors(tmp_path):
    with pytest.raises(SpbenchError, match="not a run folder"):
        report_command([tmp_path], tmp_path / "out")
    with pytest.raises(SpbenchError, match="no such run folder"):
        report_command([tmp_path / "nope"], tmp_path / "out")
    with pytest.raises(SpbenchError, match="at least one run folder"):
        report_command([], tmp_path / "out")


def test_runs_with_the_same_name_stay_apart(tmp_path):
    a = make_run(tmp_path / "ci-runs", "same")
    b = make_run(tmp_path / "ci-oracle", "same")
    report_command([a, b], tmp_path / "out")
    grids = sorted(p.name for p in (tmp_path / "out" / "figures").glob("grid-*.png"))
    assert grids == ["grid-ci-oracle_same.png", "grid-ci-runs_same.png"]
