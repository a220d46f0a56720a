"""Records you can trust (issue #13, items 1-4): a resumed run notices changed data, no pickle
runs code, everything that can be checked is checked before generating, and bad values are
one-line errors (exit 2) rather than tracebacks or silent acceptance."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from helpers import quadruped_sample, spbench_in_process
from spbench import harness
from spbench.cli import app
from spbench.config import load_profile, resolve
from spbench.data.check import data_check_report
from spbench.data.registry import SAMPLE_ROOT, load_split
from spbench.errors import SpbenchError
from spbench.files import atomic_write_json, atomic_write_jsonl, read_jsonl
from spbench.run.folder import RunFolder

RUN = "sample-ap10k-controlnet-tiny"
SAMPLE_ANN = SAMPLE_ROOT / "ap10k" / "annotations" / "ap10k-sample.json"
SPBENCH_SOURCES = Path(__file__).resolve().parents[1] / "spbench"


def spbench(*args, cwd=None, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "spbench", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def one_line(result) -> str:
    """The only non-empty stderr line of a command that failed with exit code 2."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def flags(**kw) -> dict:
    """What the CLI hands harness.prepare, for a 1-image, 1-step tiny run by default."""
    out = {"method.name": "controlnet", "method.variant": None, "method.checkpoint": None,
           "dataset.name": "sample", "dataset.split": None, "dataset.data_root": None, "dataset.ann": None,
           "dataset.limit": 1, "generation.samples": 1, "generation.batch_size": None,
           "generation.seed": None, "generation.steps": 1}
    out.update({k.replace("__", "."): v for k, v in kw.items()})
    return out


def generate(out, profile="tiny", sets=(), **kw):
    prep = harness.prepare(flags(**kw), profile, list(sets), str(out))
    harness.generate(prep)
    return prep


def ap10k_folder(root: Path, move_poses: bool = False) -> Path:
    """The shipped AP-10K sample laid out as a real download under ``root`` (annotations/ + data/);
    ``move_poses``: the same file names with other keypoints (each visible x scaled by 0.9)."""
    doc = json.loads(SAMPLE_ANN.read_text())
    if move_poses:
        for ann in doc["annotations"]:
            k = ann["keypoints"]
            for j in range(0, len(k), 3):
                if k[j + 2] > 0:
                    k[j] = round(k[j] * 0.9, 2)
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "ap10k-val-split1.json").write_text(json.dumps(doc))
    shutil.copytree(SAMPLE_ROOT / "ap10k" / "data", root / "data")
    return root


def write_ap10k(tmp_path: Path, mutate=None, image_size=None) -> Path:
    """A one-image AP-10K file (100x80) with its image in data/; ``mutate(doc)`` edits it first;
    ``image_size`` overrides the size of the image file written (default: the annotated one)."""
    kpts = []
    for j in range(17):
        kpts += [10 + 4 * j, 20 + 2 * j, 2]
    doc = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 100, "height": 80, "background": 1}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 10, 80, 60],
                         "area": 4800, "num_keypoints": 17, "keypoints": kpts}],
        "categories": [{"id": 1, "name": "dog", "supercategory": "Canidae"}],
    }
    if mutate:
        mutate(doc)
    ann = tmp_path / "annotations" / "ap10k-val-split1.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(doc))  # json writes NaN / Infinity as Python reads them back
    (tmp_path / "data").mkdir(exist_ok=True)
    Image.new("RGB", image_size or (100, 80), (90, 120, 60)).save(tmp_path / "data" / "000000000001.jpg")
    return ann


# =================================================================================================
# 1. Resume notices changed data


def test_resume_into_a_run_made_from_other_poses_is_refused(tmp_path):
    a, b = ap10k_folder(tmp_path / "a"), ap10k_folder(tmp_path / "b", move_poses=True)
    assert load_split("ap10k", data_root=str(a)).content_hash != load_split("ap10k", data_root=str(b)).content_hash
    prep = generate(tmp_path / "runs", dataset__name="ap10k", dataset__data_root=str(a))
    images = sorted(p.name for p in (prep.run.path / "images").iterdir())
    run_json = prep.run.run_json.read_text()
    with pytest.raises(SpbenchError) as e:
        generate(tmp_path / "runs", dataset__name="ap10k", dataset__data_root=str(b))
    message = str(e.value)
    assert "other data" in message and "instances[0].keypoints" in message and "--out" in message and "\n" not in message
    # Nothing was replaced: the folder still describes the images it holds.
    assert prep.run.run_json.read_text() == run_json
    assert sorted(p.name for p in (prep.run.path / "images").iterdir()) == images
    # The same data may extend the run (another --limit), and a rerun is a no-op.
    generate(tmp_path / "runs", dataset__name="ap10k", dataset__data_root=str(a), dataset__limit=2)
    assert len(list((prep.run.path / "images").iterdir())) == 2


def test_resume_of_the_real_row_notices_other_image_files(tmp_path):
    a = ap10k_folder(tmp_path / "a")
    c = ap10k_folder(tmp_path / "c")
    for image in (c / "data").iterdir():
        with Image.open(image) as im:
            im.convert("RGB").save(image, quality=40)  # same name and size, other pixels
    generate(tmp_path / "runs", method__name="real", dataset__name="ap10k", dataset__data_root=str(a))
    with pytest.raises(SpbenchError, match="other data .*reference image"):
        generate(tmp_path / "runs", method__name="real", dataset__name="ap10k", dataset__data_root=str(c))


# =================================================================================================
# 2. No pickle executes code


class Payload:
    """What a malicious pickle does: unpickling it runs code (here: it leaves a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def plant(path: Path, marker: Path, extra: dict | None = None) -> None:
    torch.save({"payload": Payload(marker), **(extra or {})}, path)


def test_planted_inception_weights_are_refused_without_running(tmp_path):
    from spbench.metrics.fid_inception import load_extractor

    marker = tmp_path / "pickle-ran"
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    plant(weights, marker, {"fc.weight": torch.zeros(2, 2)})
    with pytest.raises(SpbenchError) as e:
        load_extractor(str(weights))
    assert not marker.exists()
    assert str(weights) in str(e.value) and "\n" not in str(e.value)


def _random_inception_state(monkeypatch) -> dict:
    """torch-fidelity's FID Inception with random weights (its own loading switched off)."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with monkeypatch.context() as m:
        m.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        torch.manual_seed(0)
        module = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    return {k: v.contiguous() for k, v in module.state_dict().items()}


def test_inception_weights_load_safely_from_pth_and_safetensors(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from spbench.metrics.fid_inception import load_extractor

    state = _random_inception_state(monkeypatch)
    torch.save(state, tmp_path / "inception.pth")
    save_file(state, tmp_path / "inception.safetensors")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    a = load_extractor(str(tmp_path / "inception.pth"))([image])
    b = load_extractor(str(tmp_path / "inception.safetensors"))([image])
    assert a.shape == (1, 2048) and np.abs(a).max() > 0
    np.testing.assert_array_equal(a, b)


TRAIN = dict(method="controlnet", limit=2, batch_size=2, progress=False, checkpointing_steps=1)


@pytest.fixture(scope="module")
def one_step(tmp_path_factory):
    """A tiny training run stopped after its first step (checkpoint-1)."""
    from spbench.training import TrainingOptions, run_training

    out = tmp_path_factory.mktemp("train")
    run_training(TrainingOptions(out=str(out), max_steps=1, **TRAIN))
    return out


def test_training_checkpoints_hold_no_custom_pickle(one_step):
    folder = one_step / "checkpoint-1"
    assert (folder / "lr_scheduler.json").is_file() and not list(folder.glob("custom_checkpoint_*"))
    assert json.loads((folder / "lr_scheduler.json").read_text())["last_epoch"] == 1


def test_a_planted_custom_checkpoint_pickle_never_runs_on_resume(one_step, tmp_path):
    from spbench.training import TrainingOptions, run_training

    out = tmp_path / "train"
    shutil.copytree(one_step, out)
    marker = tmp_path / "pickle-ran"
    # A well-formed LambdaLR state (what accelerate wrote there before) carrying the payload.
    scheduler_state = {"base_lrs": [1e-5], "last_epoch": 1, "_step_count": 2, "_last_lr": [1e-5], "lr_lambdas": [None]}
    plant(out / "checkpoint-1" / "custom_checkpoint_0.pkl", marker, scheduler_state)
    run_training(TrainingOptions(out=str(out), max_steps=2, resume="latest", **TRAIN))
    assert not marker.exists()
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    scheduler = json.loads((out / "checkpoint-2" / "lr_scheduler.json").read_text())
    assert scheduler["last_epoch"] == 2  # restored from JSON and stepped once more


def test_a_planted_optimizer_pickle_is_refused_on_resume(one_step, tmp_path):
    from spbench.training import TrainingOptions, run_training

    out = tmp_path / "train"
    shutil.copytree(one_step, out)
    marker = tmp_path / "pickle-ran"
    plant(out / "checkpoint-1" / "optimizer.bin", marker)
    with pytest.raises(SpbenchError) as e:
        run_training(TrainingOptions(out=str(out), max_steps=2, resume="latest", **TRAIN))
    assert not marker.exists()
    assert "checkpoint-1" in str(e.value) and "\n" not in str(e.value)


def test_no_unsafe_unpickling_anywhere_in_spbench():
    """Every torch.load says weights_only=True; nothing calls pickle.load(s), numpy with pickles,
    or registers an object accelerate would unpickle with weights_only=False."""
    offences = []
    for path in SPBENCH_SOURCES.rglob("*.py"):
        text = "\n".join(line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end(): call.end() + 200].split("\n\n")[0]
            if "weights_only=True" not in args:
                offences.append(f"{path.name}: torch.load without weights_only=True")
        for pattern in (r"weights_only\s*=\s*False\s*[,)]", r"pickle\.loads?\(", r"allow_pickle\s*=\s*True",
                        r"register_for_checkpointing\(", r"load_custom_state\(", r"torch\.jit\.load\("):
            if re.search(pattern, text):
                offences.append(f"{path.name}: {pattern}")
    assert not offences


# =================================================================================================
# 3. Validate everything before generating


def _run_cli(tmp_path, *extra):
    args = ["run", "--limit", "1", "--samples", "1", "--steps", "1", "--out", str(tmp_path), *extra]
    return CliRunner().invoke(app, args)


def test_a_misspelt_protocol_is_found_before_generating(tmp_path):
    result = _run_cli(tmp_path, "--protocol", "oficial")
    assert isinstance(result.exception, SpbenchError), result.output
    assert "oficial" in str(result.exception) and "official" in str(result.exception)
    assert not (tmp_path / RUN / "images").exists()


@pytest.mark.parametrize("metric, setting", [
    ("pose", "models.pose"), ("clip", "models.clip"), ("det", "models.detector"), ("fid", "models.inception"),
])
def test_a_missing_metric_model_path_is_found_before_generating(tmp_path, metric, setting):
    missing = tmp_path / "no-such-model"
    result = _run_cli(tmp_path, "--metrics", metric, "--set", f"{setting}={missing}")
    assert isinstance(result.exception, SpbenchError), result.output
    assert str(missing) in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / RUN / "images").exists()


def test_a_missing_pose_model_via_the_flag_is_found_before_generating(tmp_path):
    result = _run_cli(tmp_path, "--pose-model", str(tmp_path / "nowhere"))
    assert isinstance(result.exception, SpbenchError), result.output
    assert not (tmp_path / RUN / "images").exists()


def test_evaluate_checks_every_metric_model_before_scoring(scored_run, tmp_path, monkeypatch):
    import spbench.metrics.pose_scoring as evaluation

    run = _copy(scored_run, tmp_path)
    info = json.loads((run / "run.json").read_text())
    missing = tmp_path / "no-such-clip"
    info["config"]["models"]["clip"] = str(missing)
    (run / "run.json").write_text(json.dumps(info))
    scored = []
    monkeypatch.setattr(evaluation, "score_pose", lambda *a, **k: scored.append("pose"))
    with pytest.raises(SpbenchError, match="no-such-clip"):
        harness.evaluate(run, ["pose", "clip"], "oracle")
    assert scored == []  # found before the first metric ran


@pytest.mark.parametrize("item, key", [
    ("generation.canvas=60", "generation.canvas"),
    ("generation.canvas=0", "generation.canvas"),
    ("generation.canvas=-64", "generation.canvas"),
    ("generation.batch_size=0", "generation.batch_size"),
    ("generation.steps=0", "generation.steps"),
    ("generation.samples=0", "generation.samples"),
    ("generation.steps=null", "generation.steps"),
    ("generation.guidance_scale=.nan", "generation.guidance_scale"),
    ("generation.guidance_scale=.inf", "generation.guidance_scale"),
    ("generation.canvas_mode=strech", "generation.canvas_mode"),
    ("dataset.limit=0", "dataset.limit"),
])
def test_bad_set_values_are_refused_with_the_key_and_the_fix(item, key):
    with pytest.raises(SpbenchError) as e:
        resolve(load_profile("tiny"), "ap10k", {}, [item])
    message = str(e.value)
    assert key in message and "--set" in message and "\n" not in message


def test_bad_values_in_a_profile_name_the_profile(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("tiny: true\nmodels: {base: tiny://sd15}\ngeneration: {canvas: 100}\n")
    with pytest.raises(SpbenchError, match="profile mine: generation.canvas must be a positive multiple of 8"):
        resolve(load_profile(str(profile)), "ap10k", {}, [])


def test_profile_paths_resolve_relative_to_the_profile_file(tmp_path, monkeypatch):
    folder = tmp_path / "profiles"
    (folder / "weights" / "pose").mkdir(parents=True)
    (folder / "weights" / "clip").mkdir(parents=True)
    (folder / "my.yaml").write_text(
        "tiny: true\n"
        "models: {base: tiny://sd15, clip: weights/clip, detector: IDEA-Research/grounding-dino-tiny, inception: ../inc.pth}\n"
        "pose_models: {ap10k: {id: ./weights/pose}, coco17: {id: oracle}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = resolve(load_profile(str(folder / "my.yaml")), "ap10k", {}, [])
    assert cfg["models"]["pose"] == str(folder / "weights" / "pose")
    assert cfg["models"]["clip"] == str(folder / "weights" / "clip")           # exists next to the profile
    assert cfg["models"]["inception"] == str(tmp_path / "inc.pth")             # ../ is always a path
    assert cfg["models"]["detector"] == "IDEA-Research/grounding-dino-tiny"    # a hub id stays one
    assert cfg["models"]["base"] == "tiny://sd15"
    assert resolve(load_profile(str(folder / "my.yaml")), "coco17", {}, [])["models"]["pose"] == "oracle"
    # The packaged profiles keep naming ./weights/ under the working directory (README).
    assert resolve(load_profile("paper"), "ap10k", {}, [])["models"]["pose"] == "./weights/vitpose-plus-huge-ap10k"


# =================================================================================================
# 4. Bad values never traceback, never pass silently


def _set(path, value):
    def mutate(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return mutate


def _keypoint(index, value):
    def mutate(doc):
        doc["annotations"][0]["keypoints"][index] = value
    return mutate


@pytest.mark.parametrize("mutate, words", [
    (_set(["images", 0, "width"], math.inf), ["images[0].width", "finite"]),
    (_set(["images", 0, "width"], math.nan), ["images[0].width", "finite"]),
    (_set(["images", 0, "height"], -math.inf), ["images[0].height"]),
    (_set(["annotations", 0, "bbox"], [5, 10, math.nan, 60]), ["annotations[0].bbox", "finite"]),
    (_set(["annotations", 0, "bbox"], [5, 10, -80, 60]), ["annotations[0].bbox", ">= 0"]),
    (_set(["annotations", 0, "area"], math.nan), ["annotations[0].area"]),
    (_keypoint(3, math.nan), ["annotations[0].keypoints", "nan", "not an out-of-frame keypoint", "keypoint 1"]),
    (_keypoint(4, math.inf), ["annotations[0].keypoints", "inf", "not an out-of-frame keypoint"]),
    (_set(["images", 0, "file_name"], "../outside.jpg"), ["images[0].file_name", "inside the data root"]),
    (_set(["images", 0, "file_name"], "/etc/hostname"), ["images[0].file_name", "inside the data root"]),
    (_set(["images", 0, "file_name"], "data/../../x.jpg"), ["images[0].file_name"]),
])
def test_bad_annotation_values_are_one_line_errors(tmp_path, mutate, words):
    ann = write_ap10k(tmp_path, mutate)
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", ann=str(ann), check_images=False)
    message = str(e.value)
    assert str(ann) in message and "\n" not in message
    for w in words:
        assert w in message, message


def test_bad_annotation_value_exits_2_with_one_line_from_the_cli(tmp_path):
    ann = write_ap10k(tmp_path, _set(["images", 0, "width"], math.inf))
    line = one_line(spbench("data", "check", "--dataset", "ap10k", "--ann", str(ann)))
    assert str(ann) in line and "images[0].width" in line


@pytest.mark.parametrize("problem", ["wrong size", "not an image"])
def test_bad_image_files_are_found_by_data_check_and_before_generating(tmp_path, problem):
    ann = write_ap10k(tmp_path, image_size=(50, 80) if problem == "wrong size" else None)
    image = tmp_path / "data" / "000000000001.jpg"
    if problem == "not an image":
        image.write_bytes(b"<html>not found</html>")
    expected = "50x80" if problem == "wrong size" else "do not decode"
    with pytest.raises(SpbenchError, match=expected):
        data_check_report("ap10k", ann=str(ann))
    with pytest.raises(SpbenchError, match=expected) as e:
        harness.prepare(flags(dataset__name="ap10k", dataset__ann=str(ann)), "tiny", [], str(tmp_path / "runs"))
    assert str(image) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "runs").exists()
    line = one_line(spbench_in_process("data", "check", "--dataset", "ap10k", "--ann", str(ann)))
    assert str(image) in line


def test_image_headers_of_the_shipped_sample_check_out():
    for split in ("ap10k", "humanart"):
        summary, _ = data_check_report("sample", split)
        assert summary["images"] == 9


def test_a_profile_without_a_base_model_is_refused_before_generating(tmp_path):
    profile = tmp_path / "nobase.yaml"
    profile.write_text("tiny: true\nmodels: {clip: tiny://clip}\npose_models: {ap10k: {id: tiny://vitpose}}\n")
    with pytest.raises(SpbenchError) as e:
        harness.prepare(flags(), str(profile), [], str(tmp_path / "runs"))
    assert "models.base" in str(e.value) and "nobase" in str(e.value) and "\n" not in str(e.value)
    # The Real Image row needs no Stable Diffusion.
    harness.prepare(flags(method__name="real"), str(profile), [], str(tmp_path / "runs"))
    line = one_line(spbench_in_process("run", "--profile", str(profile), "--out", str(tmp_path / "runs")))
    assert "models.base" in line


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A generated and scored 1-image tiny run folder (copy it before damaging it)."""
    out = tmp_path_factory.mktemp("scored")
    prep = generate(out)
    harness.evaluate(prep.run.path, ["pose"], "oracle")
    return prep.run.path


def _copy(run, tmp_path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


@pytest.mark.parametrize("damage, words", [
    ("truncated", ["manifest.jsonl", "line 1", "truncated"]),
    ("incomplete", ["manifest.jsonl", "line 1", "incomplete", "file"]),
    ("not an object", ["manifest.jsonl", "line 1", "JSON object"]),
])
def test_damaged_manifest_lines_are_one_line_errors(scored_run, tmp_path, damage, words):
    run = _copy(scored_run, tmp_path)
    text = (run / "manifest.jsonl").read_text()
    if damage == "truncated":
        (run / "manifest.jsonl").write_text(text[: len(text) // 2])
    elif damage == "incomplete":
        row = json.loads(text.splitlines()[0])
        del row["file"]
        (run / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    else:
        (run / "manifest.jsonl").write_text("[1, 2]\n")
    before = (run / "result.json").read_bytes()
    with pytest.raises(SpbenchError) as e:
        harness.evaluate(run, ["pose"], "oracle")
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value) and "generate" in str(e.value)
    assert (run / "result.json").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "incomplete"])
def test_damaged_samples_lines_are_one_line_errors(scored_run, tmp_path, damage):
    run = _copy(scored_run, tmp_path)
    text = (run / "samples.jsonl").read_text()
    if damage == "truncated":
        (run / "samples.jsonl").write_text(text[: len(text) // 2])
    else:
        row = json.loads(text.splitlines()[0])
        del row["instances"]
        (run / "samples.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(SpbenchError) as e:
        harness.evaluate(run, ["pose"], "oracle")
    assert "samples.jsonl" in str(e.value) and "line 1" in str(e.value) and "\n" not in str(e.value)
    line = one_line(spbench_in_process("evaluate", str(run), "--pose-model", "oracle"))
    assert "samples.jsonl" in line


def test_a_manifest_naming_an_unknown_sample_is_a_one_line_error(scored_run, tmp_path):
    run = _copy(scored_run, tmp_path)
    rows = read_jsonl(run / "manifest.jsonl")
    rows[0]["sample_id"] = "ap10k-999999999999"
    atomic_write_jsonl(run / "manifest.jsonl", rows)
    with pytest.raises(SpbenchError, match="ap10k-999999999999") as e:
        harness.evaluate(run, ["pose"], "oracle")
    assert "samples.jsonl" in str(e.value) and "\n" not in str(e.value)


def test_an_empty_manifest_never_overwrites_the_result(scored_run, tmp_path):
    run = _copy(scored_run, tmp_path)
    before = (run / "result.json").read_bytes()
    (run / "manifest.jsonl").write_text("")
    line = one_line(spbench_in_process("evaluate", str(run), "--pose-model", "oracle"))
    assert "manifest.jsonl" in line and "no images" in line
    assert (run / "result.json").read_bytes() == before


def test_resume_after_a_truncated_samples_file_still_checks_the_data(scored_run, tmp_path):
    run = _copy(scored_run, tmp_path)
    (run / "samples.jsonl").write_text('{"sample_id": ')
    # The same data: the split hash in run.json agrees, so the rerun rewrites the file.
    prep = generate(tmp_path)
    assert prep.run.path == run
    assert len(read_jsonl(run / "samples.jsonl")) == 1


@pytest.mark.parametrize("option", ["--limit", "--samples", "--batch-size", "--steps"])
@pytest.mark.parametrize("value", ["0", "many"])
def test_usage_errors_of_numeric_options_fit_on_one_line(option, value, tmp_path):
    # One case through `python -m spbench` itself (a usage error from click), the rest in-process.
    run = spbench if (option, value) == ("--steps", "many") else spbench_in_process
    line = one_line(run("run", option, value, "--out", str(tmp_path)))
    assert option in line and "--help" in line and "╭" not in line
    assert not (tmp_path / RUN).exists()


def test_no_bare_nan_in_any_json_written(tmp_path):
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))

    record = {"fid": math.nan, "per_k": {"0": {"AP": -math.inf}}, "values": [np.float32("nan"), np.float64(1.5)],
              "n": np.int64(3), "ok": 2.0}
    atomic_write_json(tmp_path / "r.json", record)
    data = strict((tmp_path / "r.json").read_text())
    assert data == {"fid": None, "per_k": {"0": {"AP": None}}, "values": [None, 1.5], "n": 3, "ok": 2.0}
    atomic_write_jsonl(tmp_path / "r.jsonl", [{"loss": math.nan}, {"loss": 0.5}])
    assert [strict(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()] == [{"loss": None}, {"loss": 0.5}]


def test_a_scored_run_with_an_undefined_fid_writes_strict_json(scored_run, tmp_path):
    """FID of a single image is undefined (NaN): the record says null, which strict readers accept."""
    run = _copy(scored_run, tmp_path)
    harness.evaluate(run, ["fid"])
    for name in ("result.json", "run.json"):
        json.loads((run / name).read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in {name}"))
    for line in (run / "per_image.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in per_image.jsonl"))
    assert RunFolder(run).read_manifest()


def test_pose_model_input_mismatch_is_a_one_line_error():
    """The official protocol's crop boxes must come one list per image (a mismatch is the caller's
    mistake, reported as such, not a NameError)."""
    from spbench.metrics.pose_models import _check_original_size

    with pytest.raises(SpbenchError, match="pose model got 1 images, 1 samples, 2 box lists"):
        _check_original_size([None], [quadruped_sample(0)], [[], []])
