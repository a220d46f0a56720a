"""The command line end to end on the shipped sample with tiny models."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers import run_pixels, spbench_in_process
from spbench.cli import app
from spbench.data.registry import load_split
from spbench.files import read_jsonl

RUN = "sample-ap10k-controlnet-tiny"
FAST = ["--method", "controlnet", "--dataset", "sample", "--profile", "tiny", "--steps", "2"]


def spbench(*args, cwd=None, timeout=1200):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "spbench", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(app, ["run", *FAST, "--limit", "3", "--out", str(out), "--metrics", "pose,clip,fid,det"])
    assert result.exit_code == 0, result.output
    return out / RUN, result.output


def test_run_writes_images_manifest_and_record(tiny_run):
    run, output = tiny_run
    assert sorted(p.name for p in (run / "images").glob("*.png")) == sorted(
        f"{s.sample_id}_k{k}.png" for s in load_split("sample").samples[:3] for k in range(3))
    rows = read_jsonl(run / "manifest.jsonl")
    assert len(rows) == 9 and {r["k"] for r in rows} == {0, 1, 2}
    record = json.loads((run / "result.json").read_text())
    pose = record["metrics"]["pose"]
    assert 0.0 <= pose["AP"] <= 100.0 and set(pose["per_k"]) == {"0", "1", "2"}
    assert record["tiny"] is True and "not results" in record["note"]
    assert record["dataset"]["hash"] == load_split("sample").limit(3).content_hash
    assert record["config"]["generation"]["steps"] == 2 and record["seeds"]["base"] == 0
    assert record["provenance"]["packages"]["torch"] and record["provenance"]["date"]
    assert record["evaluation"]["pose"]["model"] == "tiny://vitpose"
    headline = {"pose": "AP", "clip": "score", "fid": "fid", "det": "AP75"}
    for metric, key in headline.items():
        values = [record["metrics"][metric][key], record["metrics"][metric]["mean_over_k"],
                  *(v[key] for v in record["metrics"][metric]["per_k"].values())]
        assert len(values) == 5 and all(math.isfinite(v) for v in values), (metric, values)
    assert "result record:" in output and "AP" in output


def test_oracle_pose_model_scores_100(tiny_run):
    run, _ = tiny_run
    result = CliRunner().invoke(app, ["evaluate", str(run), "--metrics", "pose", "--pose-model", "oracle"])
    assert result.exit_code == 0, result.output
    pose = json.loads((run / "result.json").read_text())["metrics"]["pose@oracle"]  # a diagnostic, beside "pose"
    assert pose["AP"] == 100.0 and all(v["AP"] == 100.0 for v in pose["per_k"].values())


def test_ls_lists_the_plugged_in_baseline():
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 0
    assert "controlnet" in result.output and "openpose" in result.output and "paper" in result.output


@pytest.mark.parametrize("args, words", [
    (["run", "--method", "contrlnet"], ["unknown method", "did you mean 'controlnet'"]),
    (["run", "--dataset", "ap10"], ["unknown dataset", "ap10k"]),
    (["run", "--profile", "papr"], ["did you mean 'paper'"]),
    (["run", "--set", "generation.stpes=3"], ["generation.stpes", "generation.steps"]),
    (["run", "--dataset", "ap10k", "--ann", "/nonexistent/ann.json"], ["/nonexistent/ann.json"]),
    (["run", "--metrics", "pose,bogus"], ["bogus"]),
    (["evaluate", "/nonexistent-run"], ["/nonexistent-run", "run folder"]),
    (["data", "check", "--dataset", "humanart"], ["--data-root"]),
])
def test_user_errors_are_one_line_with_exit_code_2(args, words, tmp_path):
    # In-process through cli.main; the next test runs `python -m spbench` itself.
    result = spbench_in_process(*args, *(["--out", str(tmp_path)] if args[0] == "run" else []))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0]


def test_malformed_annotation_file_names_file_and_field(tmp_path):
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
                               "categories": [{"id": 1, "name": "dog"}]}))
    result = spbench("data", "check", "--dataset", "ap10k", "--ann", str(ann))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(ann) in result.stderr and "annotations[0].keypoints" in result.stderr


def test_killed_run_resumes_to_the_same_files(tmp_path):
    # 8 steps: 12 images take a second or two, a window the 50 ms polling below cannot miss on a
    # fast machine (at 2 steps it was ~0.6 s). Only the killed run is a real process (kill -9);
    # the reference and the resume run in-process.
    args = ["generate", *FAST, "--steps", "8", "--limit", "4", "--batch-size", "1"]
    reference = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ref")])
    assert reference.exit_code == 0, reference.output
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spbench", *args, "--out", str(tmp_path / "cut")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    images = tmp_path / "cut" / RUN / "images"
    deadline = time.time() + 900  # generous: model start-up is slow on a loaded machine
    while time.time() < deadline and len(list(images.glob("*.png"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(images.glob("*.png")))
    assert 3 <= done_before < 12, "the kill should land part-way"
    assert not (tmp_path / "cut" / RUN / "manifest.jsonl").exists()
    resumed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cut")])
    assert resumed.exit_code == 0, resumed.output
    assert f"{done_before} already there" in resumed.stdout.replace("\n", " ")
    a, b = run_pixels(tmp_path / "ref" / RUN), run_pixels(tmp_path / "cut" / RUN)
    assert a.keys() == b.keys() and len(a) == 12
    assert all(np.abs(a[k] - b[k]).max() <= 1 for k in a)
    assert not list((tmp_path / "cut").rglob("*.tmp"))
    rows = read_jsonl(tmp_path / "cut" / RUN / "manifest.jsonl")
    assert len({(r["sample_id"], r["k"]) for r in rows}) == len(rows) == 12


def test_accelerate_launch_shares_the_work_and_gives_the_same_images(tmp_path):
    args = ["generate", *FAST, "--limit", "3"]
    metrics = ["--metrics", "pose,clip,fid,det", "--pose-model", "oracle"]
    # The one-process references run in-process. One real launch of `spbench run` (generate, then
    # score) shares both the generation and the scoring between two processes.
    single = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "-m", "spbench", "run", *args[1:], *metrics, "--out", str(tmp_path / "two")]
    two = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=1200)
    assert two.returncode == 0, two.stderr
    a, b = run_pixels(tmp_path / "one" / RUN), run_pixels(tmp_path / "two" / RUN)
    assert a.keys() == b.keys() and len(a) == 9
    assert all(np.abs(a[k] - b[k]).max() <= 1 for k in a)
    assert len(read_jsonl(tmp_path / "two" / RUN / "manifest.jsonl")) == 9

    # Scoring shared by two processes (states gathered and merged) equals one process.
    shutil.copytree(tmp_path / "two" / RUN, tmp_path / "copy" / RUN)
    for name in ("result.json", "per_image.jsonl"):  # the shared scores: the copy is scored again, alone
        (tmp_path / "copy" / RUN / name).unlink(missing_ok=True)
    alone = CliRunner().invoke(app, ["evaluate", str(tmp_path / "copy" / RUN), *metrics])
    assert alone.exit_code == 0, alone.output
    a = json.loads((tmp_path / "copy" / RUN / "result.json").read_text())["metrics"]
    b = json.loads((tmp_path / "two" / RUN / "result.json").read_text())["metrics"]
    assert a["pose@oracle"]["AP"] == b["pose@oracle"]["AP"] == 100.0
    for metric, key in (("clip", "score"), ("fid", "fid"), ("det", "AP75")):
        # Same images; only the order of float sums differs between one and two processes.
        assert b[metric][key] == pytest.approx(a[metric][key], rel=1e-6, abs=1e-6), metric
        assert set(b[metric]["per_k"]) == set(a[metric]["per_k"]) == {"0", "1", "2"}


def test_real_image_row_scores_the_dataset_images_on_the_canvas(tmp_path):
    result = CliRunner().invoke(app, ["run", "--method", "real", "--dataset", "sample", "--profile", "tiny",
                                      "--limit", "2", "--out", str(tmp_path), "--pose-model", "oracle",
                                      "--metrics", "pose,fid"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "sample-ap10k-real-tiny"
    split = load_split("sample").limit(2)
    for sample in split.samples:
        expected = Image.open(split.image_path(sample)).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC)
        got = Image.open(run / "images" / f"{sample.sample_id}_k0.png")
        assert np.array_equal(np.asarray(got), np.asarray(expected))
    assert not list((run / "images").glob("*_k1.png"))  # one image per prompt
    record = json.loads((run / "result.json").read_text())
    assert record["metrics"]["pose@oracle"]["AP"] == 100.0 and record["config"]["generation"]["images_per_prompt"] == 1
    assert "fid" not in record["metrics"] and "not applicable" in record["evaluation"]["fid"]["skipped"]


def test_official_protocol_scores_only_the_first_image_per_prompt(tiny_run):
    run, _ = tiny_run
    result = CliRunner().invoke(app, ["evaluate", str(run), "--pose-model", "oracle", "--protocol", "official"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "result.json").read_text())
    pose = record["metrics"]["pose@oracle"]  # the oracle is a diagnostic pose model: its own key
    assert pose["num_images"] == 3 and list(pose["per_k"]) == ["0"]
    assert pose["AP"] == 100.0 and pose["protocol"] == "official"  # original frame, original annotations
    assert record["evaluation"]["pose@oracle"]["protocol"] == "official"


@pytest.mark.parametrize("flag", ["--images-per-prompt", "--samples"])
def test_images_per_prompt_and_its_old_name_set_generation_images_per_prompt(flag, monkeypatch):
    """`--images-per-prompt N` sets generation.images_per_prompt; `--samples` is kept as its alias."""
    from spbench import harness

    seen = {}

    def prepare(flags, *args, **kwargs):
        seen.update(flags)
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "prepare", prepare)
    CliRunner().invoke(app, ["generate", flag, "2"])
    assert seen["generation.images_per_prompt"] == 2
    help_text = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "300"}).output
    assert "--images-per-prompt" in help_text and "--samples" in help_text
