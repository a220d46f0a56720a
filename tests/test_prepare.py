"""Prepare, generate anywhere, score: `spbench prepare` -> images made by another tool ->
`spbench evaluate DIR --name NAME` scores them as `spbench run` scores its own (tiny random models:
the numbers check the machinery, they are not results)."""

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import spbench_in_process
from spbench.canvas import CanvasTransform
from spbench.conditions import CONDITIONS
from spbench.data.registry import load_split
from spbench.files import read_jsonl
from spbench.generation import engine
from spbench.methods.base import Method
from spbench.run.prepared import size_problem, to_canvas
from spbench.run.requests import MethodContext
from spbench.run.seeds import initial_noise

LIMIT, K = 2, 2
DATA = ["--dataset", "sample-ap10k", "--profile", "tiny", "--limit", LIMIT, "--images-per-prompt", K]
METRICS = ["--metrics", "pose,clip,fid"]
RUN = "sample-ap10k-controlnet-tiny"


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The images, manifest and record of `spbench run` on the same data and seeds (one image per
    model call, as the script below makes them: batches of 4 round some pixels differently)."""
    out = tmp_path_factory.mktemp("runs")
    ok(spbench_in_process("run", "--method", "controlnet", *DATA, "--steps", 1, "--batch-size", 1, *METRICS, "--out", out))
    return out / RUN


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """A model folder for the other tool: the tiny profile's SD1.5 and ControlNet (the tiny://sd15
    weights, ControlNetModel.from_unet), saved by diffusers' save_pretrained."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from spbench.models.stable_diffusion import build_tiny_sd, make_scheduler

    sd = build_tiny_sd(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-sd15-controlnet"
    StableDiffusionControlNetPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        controlnet=ControlNetModel.from_unet(sd.unet), scheduler=make_scheduler("unipc", sd.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(folder)
    return folder


def readme_script(run, models, steps):
    """The README's "another tool" (a plain diffusers script reading requests.jsonl), with the model
    folder and the step count as parameters and float32 on the CPU."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, UniPCMultistepScheduler

    controlnet = ControlNetModel.from_pretrained(models / "controlnet")
    pipe = StableDiffusionControlNetPipeline.from_pretrained(models, controlnet=controlnet, safety_checker=None)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    for line in open(run / "requests.jsonl"):
        r = json.loads(line)
        image = pipe(r["prompt"], image=Image.open(run / r["conditions"]["openpose"]), negative_prompt=r["negative_prompt"] or None,
                     width=r["width"], height=r["height"], num_inference_steps=steps, guidance_scale=7.5,
                     generator=torch.Generator("cpu").manual_seed(r["seed"])).images[0]
        (run / r["file"]).parent.mkdir(exist_ok=True)
        image.save(run / r["file"])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "mytool"
    result = ok(spbench_in_process("prepare", *DATA, "--condition", "openpose,spatial-pose", "--out", out))
    assert "4 images to make" in result.stdout and f"spbench evaluate {out} --name NAME" in result.stdout
    return out


@pytest.fixture
def prepared(pristine, tmp_path):
    """A fresh copy of the prepared folder (each test makes its own images)."""
    return shutil.copytree(pristine, tmp_path / "mytool")


def other_tool(prepared, source_images):
    """The separate step: read requests.jsonl and write each requested file (here: the image the
    spbench run made from the same prompt, seed and condition)."""
    for row in read_jsonl(prepared / "requests.jsonl"):
        shutil.copyfile(source_images / f"{row['sample_id']}_k{row['k']}.png", prepared / row["file"])


def test_images_of_a_diffusers_script_score_as_the_run_scores_its_own(tiny_run, tiny_pipeline, prepared):
    readme_script(prepared, tiny_pipeline, steps=1)
    # From the prepared prompts, seeds and conditions the script makes the run's very images ...
    for path in sorted((tiny_run / "images").glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(prepared / "images" / path.name))), path.name
    # ... and `spbench evaluate` scores them as `spbench run` scored its own.
    result = ok(spbench_in_process("evaluate", prepared, "--name", "mytool", *METRICS))
    assert "imported 4 images of mytool" in result.stdout
    run = json.loads((tiny_run / "result.json").read_text())
    imported = json.loads((prepared / "result.json").read_text())
    assert set(run["metrics"]) == {"pose", "clip", "fid"}
    assert imported["metrics"] == run["metrics"]
    per_image = lambda folder: sorted(read_jsonl(folder / "per_image.jsonl"), key=json.dumps)  # noqa: E731
    assert per_image(prepared) == per_image(tiny_run)
    # An ordinary record of method "mytool", marked as imported, that knows what it does not know.
    assert imported["method"]["name"] == "mytool" and imported["run"] == "mytool"
    assert imported["method"]["imported"]["images"] == 4 and imported["method"]["imported"]["resized"]["count"] == 0
    assert imported["dataset"]["hash"] == run["dataset"]["hash"]
    assert imported["config"]["generation"]["steps"] is None and imported["config"]["models"]["base"] is None
    assert "generation.steps=None (paper: 50)" in imported["departures"] and imported["tiny"] is True
    # A row of `spbench table`, in the section of runs outside the paper's rows, with its pose AP.
    table = ok(spbench_in_process("table", "--results", prepared.parent, "--table", "extra")).stdout
    row = next(line for line in table.splitlines() if "mytool (imported)" in line)
    assert f"{imported['metrics']['pose']['AP']:.2f}" in row and "†tiny" in row
    # Evaluating again merges by metric, as for any run folder; the official protocol's bookkeeping
    # (scored k, original frame) agrees too: the perturbed oracle scores strictly between 0 and 100.
    oracle = ["--metrics", "pose", "--pose-model", "perturbed-oracle", "--protocol", "official"]
    ok(spbench_in_process("evaluate", prepared, "--name", "mytool", *oracle))
    ok(spbench_in_process("evaluate", tiny_run, *oracle))
    again = json.loads((prepared / "result.json").read_text())
    assert set(again["metrics"]) == {"pose", "clip", "fid", "pose@perturbed-oracle"}
    expected = json.loads((tiny_run / "result.json").read_text())["metrics"]["pose@perturbed-oracle"]
    assert again["metrics"]["pose@perturbed-oracle"] == expected and 0 < expected["AP"] < 100


def test_requests_carry_the_engines_seeds_prompts_and_conditions(tiny_run, pristine):
    rows = read_jsonl(pristine / "requests.jsonl")
    manifest = {(r["sample_id"], r["k"]): r for r in read_jsonl(tiny_run / "manifest.jsonl")}
    samples = {s.sample_id: s for s in load_split("sample-ap10k").limit(LIMIT).samples}
    assert [(r["sample_id"], r["k"]) for r in rows] == list(manifest)
    for row in rows:
        sid, k = row["sample_id"], row["k"]
        # The seed scheme, computed here from its definition: sha256 of "base:sample:k", 63 bits.
        digest = hashlib.sha256(f"0:{sid}:{k}".encode()).digest()
        assert row["seed"] == int.from_bytes(digest[:8], "big") & (2**63 - 1) == manifest[sid, k]["seed"]
        assert row["prompt"] == manifest[sid, k]["prompt"] == samples[sid].prompt
        assert (row["width"], row["height"]) == (64, 64)
        assert (row["original_width"], row["original_height"]) == (samples[sid].width, samples[sid].height)
        assert row["negative_prompt"] == "" and row["file"] == f"images/{sid}_k{k}.png"
        # The OpenPose condition is the one the run's ControlNet was given, pixel for pixel.
        ours = np.asarray(Image.open(pristine / row["conditions"]["openpose"]))
        assert np.array_equal(ours, np.asarray(Image.open(tiny_run / manifest[sid, k]["condition"]["file"])))
        assert Image.open(pristine / row["conditions"]["spatial-pose"]).mode == "L"
    # A diffusers pipeline seeded with the row's seed (a CPU generator, one image per call)
    # starts from the noise spbench's engine starts from.
    from diffusers.utils.torch_utils import randn_tensor

    seed = rows[1]["seed"]
    theirs = randn_tensor((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(seed), device=torch.device("cpu"))
    assert torch.equal(theirs[0], initial_noise([seed], (4, 8, 8))[0])
    half = randn_tensor((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(seed), device=torch.device("cpu"),
                        dtype=torch.float16)
    assert torch.equal(half[0], initial_noise([seed], (4, 8, 8))[0].half())  # the engine casts after drawing


@pytest.mark.parametrize("render", ["native", "official"])
def test_every_registered_kind_is_drawn_as_a_method_of_that_kind_draws_it(tmp_path, render):
    kinds = CONDITIONS.names()
    out = tmp_path / "p"
    humans = ["--dataset", "sample-humanart", *DATA[2:]]  # a human schema: every kind draws it
    ok(spbench_in_process("prepare", *humans, "--condition", ",".join(kinds), "--set", f"generation.condition_render={render}",
                          "--out", out))
    split = load_split("sample-humanart").limit(LIMIT)
    config = json.loads((out / "prepare.json").read_text())["config"]
    for kind in kinds:
        method = type("Drawn", (Method,), {"name": "drawn", "condition": kind, "load": None, "generate": None})
        drawer = method(MethodContext(config))
        for request in engine.plan_requests(split, config["generation"])[::K]:
            expected = drawer.condition_image(request)
            got = Image.open(out / "conditions" / kind / f"{request.sample.sample_id}.png")
            assert got.mode == expected.mode and np.array_equal(np.asarray(got), np.asarray(expected)), (kind, render)


def test_missing_extra_and_unreadable_images_are_listed_before_scoring(tiny_run, prepared):
    other_tool(prepared, tiny_run / "images")
    names = sorted(p.name for p in (prepared / "images").iterdir())
    (prepared / "images" / names[0]).unlink()
    shutil.copyfile(tiny_run / "images" / names[1], prepared / "images" / "cat.png")
    shutil.copyfile(tiny_run / "images" / names[0], prepared / "images" / names[0].replace(".png", ".jpg"))
    (prepared / "images" / names[2]).write_bytes(b"not a png")
    result = spbench_in_process("evaluate", prepared, "--name", "mytool", *METRICS)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert "(1 missing, 2 extra, 1 unreadable); nothing was scored" in lines[0]
    assert f"  missing images/{names[0]}" in lines
    assert "  extra images/cat.png" in lines
    assert f"  extra images/{names[0][:-4]}.jpg (spbench reads PNG files: save it as .png)" in lines
    assert any(line.startswith(f"  unreadable images/{names[2]} (") for line in lines)
    assert len(lines) == 5
    assert not any((prepared / f).exists() for f in ("run.json", "manifest.jsonl", "result.json"))


def test_images_of_another_size_are_brought_to_the_canvas_and_listed(tiny_run, prepared):
    other_tool(prepared, tiny_run / "images")
    name = sorted(p.name for p in (prepared / "images").iterdir())[1]
    big = Image.open(tiny_run / "images" / name).resize((128, 96), Image.Resampling.NEAREST)
    big.save(prepared / "images" / name)
    ok(spbench_in_process("evaluate", prepared, "--name", "mytool", "--metrics", "clip"))
    record = json.loads((prepared / "result.json").read_text())
    resized = record["method"]["imported"]["resized"]
    assert resized["count"] == 1 and resized["images"] == {name: "128x96"} and resized["to"] == "64x64"
    row = next(r for r in read_jsonl(prepared / "manifest.jsonl") if r["file"].endswith(name))
    assert row["file"] == f"resized/{name}" and row["resized_from"] == {"file": f"images/{name}", "width": 128, "height": 96}
    # Stretched to the canvas with PIL bicubic, as the dataset's real images are; the original is kept.
    expected = big.convert("RGB").resize((64, 64), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(Image.open(prepared / "resized" / name)), np.asarray(expected))
    assert Image.open(prepared / "images" / name).size == (128, 96)
    # With the canvas-sized image back, the copy goes and the record says nothing was resized.
    shutil.copyfile(tiny_run / "images" / name, prepared / "images" / name)
    ok(spbench_in_process("evaluate", prepared, "--name", "mytool", "--metrics", "clip"))
    record = json.loads((prepared / "result.json").read_text())
    assert record["method"]["imported"]["resized"]["count"] == 0 and not list((prepared / "resized").glob("*.png"))
    run = json.loads((tiny_run / "result.json").read_text())
    assert record["metrics"]["clip"] == run["metrics"]["clip"]


def test_letterboxed_canvas_takes_its_own_shape_or_the_original_size():
    sample = load_split("sample-ap10k").samples[0]
    box = CanvasTransform.fit(200, 100, 64, "letterbox")  # scale 0.32: 64x32 at offset y = 16
    sample = dataclasses.replace(sample, width=200, height=100)
    assert size_problem((128, 128), box, sample) == "" and size_problem((200, 100), box, sample) == ""
    assert "canvas_mode letterbox" in size_problem((120, 100), box, sample)
    white = Image.new("RGB", (200, 100), (255, 255, 255))
    pixels = np.asarray(to_canvas(white, box, sample))
    assert pixels.shape == (64, 64, 3)
    assert (pixels[:16] == 0).all() and (pixels[48:] == 0).all() and (pixels[16:48] == 255).all()
    assert size_problem((100, 30), CanvasTransform.fit(200, 100, 64), sample) == ""  # stretch: any size


@pytest.mark.parametrize("args, words", [
    (["--condition", "opnpose"], ["--condition 'opnpose': unknown condition kind", "did you mean 'openpose'?", "spatial-pose"]),
    (["--condition", ","], ["--condition is empty"]),
    (["--condition", "openpose,openpose18"], ["'openpose18'", "schema 'ap10k'"]),  # a kind for human bodies
])
def test_bad_condition_kind_is_one_line(tmp_path, args, words):
    result = spbench_in_process("prepare", *DATA, *args, "--out", tmp_path / "p")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert all(w in result.stderr for w in words), result.stderr
    assert not (tmp_path / "p").exists()


def test_names_are_required_own_and_only_for_prepared_folders(tiny_run, prepared):
    result = spbench_in_process("evaluate", prepared)
    assert result.returncode == 2 and "pass --name NAME" in result.stderr
    result = spbench_in_process("evaluate", prepared, "--name", "controlnet")
    assert result.returncode == 2 and "is the name of spbench's method 'controlnet'" in result.stderr
    result = spbench_in_process("evaluate", prepared, "--name", "my/tool")
    assert result.returncode == 2 and "use letters, digits" in result.stderr
    result = spbench_in_process("evaluate", tiny_run, "--name", "mytool")
    assert result.returncode == 2 and "has no prepare.json" in result.stderr
    result = spbench_in_process("evaluate", prepared, "--name", "mytool", "--pose-model", "perturbed-oracle:x")
    assert result.returncode == 2 and "seed must be a whole number" in result.stderr  # checked before any import
    assert not (prepared / "run.json").exists()


def test_preparing_again_needs_the_same_settings(pristine, prepared, tiny_run):
    ok(spbench_in_process("prepare", *DATA, "--condition", "openpose,spatial-pose", "--out", prepared))
    result = spbench_in_process("prepare", *DATA, "--condition", "openpose", "--out", tiny_run)
    assert result.returncode == 2 and "holds a run folder (run.json)" in result.stderr
    result = spbench_in_process("prepare", *DATA, "--condition", "openpose,spatial-pose", "--seed", 1, "--out", prepared)
    assert result.returncode == 2 and "was prepared with other settings (seed" in result.stderr
    assert read_jsonl(prepared / "requests.jsonl") == read_jsonl(pristine / "requests.jsonl")


@pytest.mark.slow
def test_two_processes_import_once_and_score_as_one(tiny_run, prepared, tmp_path):
    import os
    import subprocess
    import sys

    other_tool(prepared, tiny_run / "images")
    alone = shutil.copytree(prepared, tmp_path / "alone")
    ok(spbench_in_process("evaluate", alone, "--name", "mytool", *METRICS))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "-m", "spbench", "evaluate", str(prepared), "--name", "mytool", *METRICS]
    two = subprocess.run(launch, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=1200)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("imported 4 images of mytool") == 1  # the main process imports, the other waits
    a = json.loads((alone / "result.json").read_text())["metrics"]
    b = json.loads((prepared / "result.json").read_text())["metrics"]
    for metric, key in (("pose", "AP"), ("clip", "score"), ("fid", "fid")):
        # Same images; only the order of float sums differs between one and two processes.
        assert b[metric][key] == pytest.approx(a[metric][key], rel=1e-6, abs=1e-6), metric
