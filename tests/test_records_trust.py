"""Records you can trust (issue #13, items 5, 6 and 8): scoring adds to a record instead of
replacing it, diagnostic and invalid scores never pass for results, a record says which models
made it and how its settings depart from the paper's, and the small things a user hits (Ctrl-C,
umask, --help, temp files, two runs in one folder, pipes, start-up without torch, empty tables)."""

import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from helpers import spbench_in_process
from spbench import cli, harness
from spbench.cli import app
from spbench.files import atomic_write_json, read_jsonl
from spbench.results.check import check_command
from spbench.results.load import load_records
from spbench.tables.build import report_command, table_command
from spbench.tables.render import build_table, render

RUN = "sample-ap10k-controlnet-tiny"
FAST = ["--method", "controlnet", "--dataset", "sample", "--profile", "tiny", "--steps", "2", "--limit", "3"]
COCO_LABELS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
               "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
               "right_knee", "left_ankle", "right_ankle")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A tiny run of three samples scored with pose (tiny ViTPose) and CLIP; tests copy it."""
    out = tmp_path_factory.mktemp("runs")
    invoke("run", *FAST, "--out", out, "--metrics", "pose,clip")
    return out / RUN


@pytest.fixture
def run_copy(scored_run, tmp_path):
    dst = tmp_path / "runs" / RUN
    shutil.copytree(scored_run, dst)
    return dst


def record_of(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def edit_run_json(run: Path, edit) -> None:
    info = json.loads((run / "run.json").read_text())
    edit(info)
    (run / "run.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def coco_head_pose_model(tmp_path_factory):
    """A tiny ViTPose folder whose head is labelled with COCO's human keypoints, as the hub's
    ViTPose++ conversions are."""
    from spbench.metrics.pose_models import save_tiny_vitpose

    folder = tmp_path_factory.mktemp("models") / "coco-vitpose"
    save_tiny_vitpose(folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(COCO_LABELS)}
    config["label2id"] = {name: i for i, name in enumerate(COCO_LABELS)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# -- 5. scoring adds, it does not replace ------------------------------------------------------------


def test_evaluate_merges_metrics_and_the_oracle_never_replaces_pose(run_copy):
    before = record_of(run_copy)
    invoke("evaluate", run_copy, "--pose-model", "oracle")
    record = record_of(run_copy)
    assert set(record["metrics"]) == {"pose", "clip", "pose@oracle"}
    assert record["metrics"]["pose"] == before["metrics"]["pose"]          # the run's own pose score stays
    assert record["evaluation"]["pose"]["model"] == "tiny://vitpose"
    assert record["metrics"]["clip"] == before["metrics"]["clip"]
    oracle = record["metrics"]["pose@oracle"]
    assert oracle["AP"] == 100.0 and oracle["diagnostic"] is True
    assert record["evaluation"]["pose@oracle"]["diagnostic"] is True and record["evaluation"]["pose@oracle"]["model"] == "oracle"
    rows = read_jsonl(run_copy / "per_image.jsonl")
    assert {r["metric"]: 0 for r in rows}.keys() == {"pose", "clip", "pose@oracle"}
    assert sum(r["metric"] == "pose@oracle" for r in rows) == sum(r["metric"] == "pose" for r in rows) == 9

    # Rescoring one metric replaces that metric alone (and its per-image rows, not duplicated).
    invoke("evaluate", run_copy, "--metrics", "clip")
    again = record_of(run_copy)
    assert set(again["metrics"]) == {"pose", "clip", "pose@oracle"}
    assert again["metrics"]["pose@oracle"]["AP"] == 100.0
    assert len(read_jsonl(run_copy / "per_image.jsonl")) == len(rows)

    # Naming the run's own pose model is its protocol score, not a diagnostic.
    invoke("evaluate", run_copy, "--pose-model", "tiny://vitpose")
    assert "pose@tiny-vitpose" not in record_of(run_copy)["metrics"]


def test_a_pose_model_other_than_the_runs_is_a_diagnostic_with_its_own_key(run_copy, tmp_path):
    from spbench.metrics.pose_models import save_tiny_vitpose

    folder = save_tiny_vitpose(tmp_path / "other-vitpose")
    invoke("evaluate", run_copy, "--pose-model", folder)
    record = record_of(run_copy)
    assert record["evaluation"]["pose"]["model"] == "tiny://vitpose"
    assert record["metrics"]["pose@other-vitpose"]["diagnostic"] is True
    assert record["evaluation"]["pose@other-vitpose"]["model"] == folder


def test_table_check_and_report_keep_diagnostics_apart(run_copy, tmp_path):
    invoke("evaluate", run_copy, "--pose-model", "oracle")
    pose_ap = record_of(run_copy)["metrics"]["pose"]["AP"]
    assert pose_ap < 100.0
    records = load_records([run_copy.parent])

    df = build_table("1", records)
    assert df.loc[("AP-10K", "ControlNet"), ("Pose mAP↑", "ours")] == pytest.approx(pose_ap)
    assert "100.00†tiny" not in render("1", records, "md")  # pose@oracle never fills a cell

    expected = tmp_path / "expected.yaml"
    expected.write_text(json.dumps({"version": 1, "expected": [{
        "dataset": "sample", "split": "ap10k", "method": "controlnet", "profile": "tiny", "metrics": {
            "pose.AP": {"value": pose_ap, "tolerance": 0.01},
            "pose@oracle.AP": {"value": 100.0, "tolerance": 0.01, "direction": "higher"}}}]}))
    console = Console(record=True, width=200)
    assert check_command(expected, [str(run_copy.parent)], console=console) == 0
    out = console.export_text()
    assert "pose@oracle.AP (diagnostic)" in out and "pose.AP (diagnostic)" not in out

    page = report_command([run_copy], tmp_path / "report").read_text()
    assert f"{pose_ap:.2f}" in page and "Diagnostic scores" in page and "pose@oracle" in page


# -- 6. a record says what it is ---------------------------------------------------------------------


def test_tiny_when_any_model_is_tiny(run_copy):
    """A paper-profile run with one tiny model (here CLIP, as --set models.clip=tiny://clip) is tiny."""
    def paper_with_tiny_clip(info):
        info["config"]["profile"] = {"name": "paper", "tiny": False}
        info["config"]["models"]["base"] = "stable-diffusion-v1-5/stable-diffusion-v1-5"
        info["models"]["base"] = "stable-diffusion-v1-5/stable-diffusion-v1-5"
        info.pop("weights", None)
    edit_run_json(run_copy, paper_with_tiny_clip)
    (run_copy / "result.json").unlink()
    invoke("evaluate", run_copy, "--metrics", "clip")
    record = record_of(run_copy)
    assert record["tiny"] is True and record["tiny_models"] == ["scoring.clip"] and "not results" in record["note"]
    assert "models.clip=tiny://clip (tiny)" in record["departures"]


def test_every_model_is_recorded_with_a_fingerprint(run_copy, tmp_path, monkeypatch):
    from spbench.metrics.pose_models import save_tiny_vitpose
    from spbench.results.models import fingerprint, model_identity

    record = record_of(run_copy)
    assert record["weights"]["generation"]["base"] == {"id": "tiny://sd15", "tiny": True}
    assert record["weights"]["scoring"]["pose"]["id"] == "tiny://vitpose"
    assert record["weights"]["scoring"]["clip"]["id"] == "tiny://clip"

    folder = save_tiny_vitpose(tmp_path / "my-vitpose")
    invoke("evaluate", run_copy, "--pose-model", folder)
    pose = record_of(run_copy)["weights"]["scoring"]["pose@my-vitpose"]
    assert pose["path"] == str(Path(folder).resolve()) and pose["fingerprint"].startswith("sha256:") and pose["files"] == 1
    assert fingerprint(folder) == fingerprint(save_tiny_vitpose(tmp_path / "same-weights"))
    (Path(folder) / "model.safetensors").write_bytes(b"0" * 100)
    assert fingerprint(folder)["fingerprint"] != pose["fingerprint"]

    # A hub id is resolved to its cached snapshot: the commit hash and the files' fingerprint.
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(os.urandom(3 << 20))
    (tmp_path / "hub" / "models--org--name" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--name" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    hub = model_identity("org/name")
    assert hub["hub_commit"] == "0123abcd" and hub["fingerprint"] == fingerprint(snapshot)["fingerprint"]
    assert model_identity("org/not-downloaded") == {"id": "org/not-downloaded", "resolved": None}


def test_departures_from_the_protocol_are_marked_in_table_and_report(tmp_path):
    run = tmp_path / "runs" / "ap10k-val-split1-controlnet-paper"
    (run / "images").mkdir(parents=True)
    config = {"profile": {"name": "paper", "tiny": False}, "dataset": {"limit": None, "schema": "ap10k"},
              "generation": {"steps": 20, "guidance_scale": 7.5, "conditioning_scale": 1.0, "scheduler": "unipc",
                             "negative_prompt": "", "samples": 3, "canvas": 512},
              "models": {"base": "stable-diffusion-v1-5/stable-diffusion-v1-5", "pose": "./weights/vitpose-plus-huge-ap10k",
                         "pose_dataset_index": 3}}
    info = {"run": run.name, "dataset": {"name": "ap10k", "split": "val-split1", "hash": "0"},
            "method": {"name": "controlnet", "variant": None}, "config": config}
    (run / "run.json").write_text(json.dumps(info))
    (run / "manifest.jsonl").write_text("")
    # A record written before records listed their departures: they are computed from its config.
    (run / "result.json").write_text(json.dumps({**info, "tiny": False, "metrics": {"pose": {"AP": 50.0}},
                                                  "provenance": {"date": "2026-01-01T00:00:00+00:00"}}))
    records = load_records([tmp_path / "runs"])
    assert records[0].departures == ["generation.steps=20 (paper: 50)"]
    assert build_table("1", records).loc[("AP-10K", "ControlNet"), ("Pose mAP↑", "marker")] == "¶settings"
    text = render("1", records, "md")
    assert "50.00¶settings" in text and "generation.steps=20 (paper: 50)" in text
    page = report_command([run], tmp_path / "report").read_text()
    assert "¶settings" in page and "generation.steps=20 (paper: 50)" in page

    config["generation"]["steps"] = 50  # the protocol: no marker
    (run / "result.json").write_text(json.dumps({**info, "tiny": False, "metrics": {"pose": {"AP": 50.0}}}))
    assert build_table("1", load_records([tmp_path / "runs"])).loc[("AP-10K", "ControlNet"), ("Pose mAP↑", "marker")] == ""


def test_ap10k_pose_from_a_coco_head_is_marked_invalid_and_left_out(run_copy, coco_head_pose_model, tmp_path):
    # As the protocol's pose model (the run's models.pose) ...
    edit_run_json(run_copy, lambda info: info["config"]["models"].update(pose=str(coco_head_pose_model)))
    result = invoke("evaluate", run_copy, "--metrics", "pose")
    record = record_of(run_copy)
    assert "COCO" in record["metrics"]["pose"]["invalid"] and "COCO" in record["evaluation"]["pose"]["invalid"]
    assert "invalid" in result.output
    records = load_records([run_copy.parent])
    df = build_table("1", records)
    assert math.isnan(df.loc[("AP-10K", "ControlNet"), ("Pose mAP↑", "ours")])
    assert "marked invalid" in render("1", records, "md")
    expected = tmp_path / "expected.yaml"
    expected.write_text(json.dumps({"version": 1, "expected": [{"dataset": "sample", "method": "controlnet",
                                                                "metrics": {"pose.AP": {"value": 0.0, "tolerance": 100}}}]}))
    console = Console(record=True, width=300)
    assert check_command(expected, [str(run_copy.parent)], console=console) == 1
    assert "invalid" in console.export_text()
    assert "invalid" in report_command([run_copy], tmp_path / "report").read_text()

    # ... and as a diagnostic one.
    invoke("evaluate", run_copy, "--metrics", "pose", "--pose-model", "oracle")
    assert "invalid" not in record_of(run_copy)["metrics"]["pose@oracle"]


def test_run_folder_names_distinguish_checkpoints_and_name_sets_it(tmp_path):
    flags = {"method.name": "spctrl", "dataset.name": "sample"}
    plain = harness.prepare(flags, "tiny", [], str(tmp_path))
    a = harness.prepare({**flags, "method.checkpoint": "train-tiny/checkpoint-20/spctrl"}, "tiny", [], str(tmp_path))
    b = harness.prepare({**flags, "method.checkpoint": "other/checkpoint-20/spctrl"}, "tiny", [], str(tmp_path))
    assert plain.run.path.name == "sample-ap10k-spctrl-tiny"
    assert a.run.path.name == "sample-ap10k-spctrl-tiny-train-tiny-checkpoint-20"
    assert len({plain.run.path, a.run.path, b.run.path}) == 3
    assert harness.prepare(flags, "tiny", [], str(tmp_path), name="mine").run.path == tmp_path / "mine"
    with pytest.raises(Exception, match="--name"):
        harness.prepare(flags, "tiny", [], str(tmp_path), name="../escape")


def test_checkpoint_run_lands_beside_the_plain_run_and_shows_in_models(tmp_path):
    """README's order: a run without a checkpoint, then one with a trained checkpoint, same --out."""
    from diffusers import ControlNetModel

    from spbench.models.stable_diffusion import load_sd_components

    checkpoint = tmp_path / "train-tiny" / "checkpoint-1" / "controlnet"
    ControlNetModel.from_unet(load_sd_components("tiny://sd15").unet).save_pretrained(checkpoint)
    out = tmp_path / "runs"
    args = ["generate", "--method", "controlnet", "--dataset", "sample", "--profile", "tiny", "--steps", "1",
            "--limit", "1", "--samples", "1", "--out", out]
    invoke(*args)
    invoke(*args, "--checkpoint", checkpoint)
    run = out / "sample-ap10k-controlnet-tiny-train-tiny-checkpoint-1"
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["models"]["controlnet"] == str(checkpoint) == config["method"]["checkpoint"]
    weights = json.loads((run / "run.json").read_text())["weights"]  # generation models, fingerprinted
    assert weights["controlnet"]["path"] == str(checkpoint.resolve()) and weights["controlnet"]["fingerprint"].startswith("sha256:")
    assert json.loads((out / RUN / "run.json").read_text())["config"]["models"]["controlnet"] is None


# -- 8. small things ----------------------------------------------------------------------------------


def test_ctrl_c_prints_the_resume_message(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "prepare", interrupted)
    monkeypatch.setattr(sys, "argv", ["spbench", "generate", "--dataset", "sample"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130
    assert "finished images are kept; run the same command again to resume" in capsys.readouterr().err


def test_files_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"a": 1})
        os.umask(0o027)
        atomic_write_json(tmp_path / "b.json", {"b": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o640


def test_help_shows_checkpoint_step(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    for command in ("run", "train"):
        result = spbench_in_process(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "checkpoint-<step>" in result.stdout, command


def test_a_killed_evaluation_leaves_no_temp_files_after_its_rerun(run_copy):
    for name in (".result.json.k1ll3d.tmp", ".per_image.jsonl.k1ll3d.tmp"):
        (run_copy / name).write_text("half")
    invoke("evaluate", run_copy, "--metrics", "clip")
    assert not list(run_copy.rglob("*.tmp"))


def test_a_second_process_in_the_same_run_folder_stops_with_one_line(tmp_path):
    run = tmp_path / "runs" / RUN
    run.mkdir(parents=True)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        # In-process: the lock is flock's, taken on its own descriptor, so this process counts as a second one.
        result = spbench_in_process("generate", *FAST, "--out", str(tmp_path / "runs"))
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("tiny profile")]
        assert len(lines) == 1 and "in use by another spbench process (pid 4242)" in lines[0], result.stderr
        assert not (run / "images").exists() and not (run / "run.json").exists()
    finally:
        os.close(fd)


def test_run_lock_is_reentrant_and_released(tmp_path):
    from spbench.errors import SpbenchError
    from spbench.run.lock import run_lock

    with run_lock(tmp_path):
        with run_lock(tmp_path):  # the same process again (spbench run: generation, then scoring)
            pass
        fd = os.open(tmp_path / ".lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):  # still held after the inner block
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    fd = os.open(tmp_path / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end
    with pytest.raises(SpbenchError, match="in use"):
        with run_lock(tmp_path):
            pass
    os.close(fd)


def test_output_to_a_pipe_is_not_wrapped_at_80_columns():
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run([sys.executable, "-m", "spbench", "ls"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    description = "ControlNet on SD1.5 driven by SAM-HQ instance masks (GT-box prompts) of the reference image"
    assert any(description in line for line in result.stdout.splitlines()), result.stdout


@pytest.mark.parametrize("args", [["ls"], ["--help"], ["run", "--help"]])
def test_ls_and_help_start_without_torch(args):
    code = ("import sys\nfrom spbench import cli\nsys.argv = ['spbench'] + sys.argv[1:]\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "NO-TORCH" in result.stderr, result.stderr[-2000:]


def test_table_says_when_it_found_no_records(tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    text = table_command([str(empty)], "1")
    assert "Table 1" in text
    err = capsys.readouterr().err
    assert "no result.json found under" in err and str(empty) in err and "paper's numbers only" in err


def test_pose_scored_under_another_protocol_is_a_departure():
    from spbench.config import DEFAULTS
    from spbench.results.protocol import departures

    config = {**DEFAULTS, "dataset": {**DEFAULTS["dataset"], "schema": "ap10k"}}
    assert "evaluation.protocol='canvas' (paper: 'official')" in departures(config, "controlnet", ["pose"], "canvas")
    assert not any(d.startswith("evaluation.protocol") for d in departures(config, "controlnet", ["pose"], "official"))
    assert not any(d.startswith("evaluation.protocol") for d in departures(config, "controlnet", ["clip"], "canvas"))


def test_the_scoring_models_of_every_metric_are_checked_for_departures():
    # The HumanSD family's and diversity's models, not only pose/clip/fid/det's: another hub model than
    # the paper profile's (or HumanSD's CLIPSIM model) departs; the paper profile's own does not.
    import copy

    from spbench.config import DEFAULTS, load_profile
    from spbench.results.protocol import departures

    paper = load_profile("paper")["models"]
    config = copy.deepcopy(DEFAULTS)
    config["dataset"]["schema"] = "coco17"
    config["models"].update(detector=paper["detector"], dino="facebook/dinov2-small",
                            humansd_clip="openai/clip-vit-large-patch14")
    out = departures(config, "controlnet", ["stablepose-pose", "humansd-clip", "diversity"], "stable-pose")
    assert "models.dino=facebook/dinov2-small (paper: facebook/dinov2-base)" in out
    assert "models.humansd_clip=openai/clip-vit-large-patch14 (paper: openai/clip-vit-base-patch16)" in out
    assert not any(d.startswith("models.detector") for d in out)
    config["models"]["detector"] = "someone/another-detector"
    assert f"models.detector=someone/another-detector (paper: {paper['detector']})" in \
        departures(config, "controlnet", ["humansd-pose@oracle"], "humansd")
    assert not any(d.startswith(("models.dino", "models.humansd_clip")) for d in departures(config, "controlnet", ["pose"]))
