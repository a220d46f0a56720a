"""Training with tiny models on the shipped sample: every method trains, keypoint tokens are the
only rows that move, the capture is emptied every step, resume equals an uninterrupted run, and
the saved checkpoint generates through the CLI."""

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from spbench.cli import app
from spbench.errors import SpbenchError
from spbench.files import read_jsonl
from spbench.training import TrainingOptions, run_training

# Keypoint tokens always present and the heatmap loss on every timestep, so 2 steps exercise it.
KCL = dict(caption_dropout=0.0, kpt_token_probability=1.0, kcl_timesteps=(0, 1000))
FAST = dict(batch_size=2, progress=False, validation_inference_steps=1, validation_samples=1)


def options(out, **kw):
    return TrainingOptions(out=str(out), **{**FAST, **kw})


def weights(folder):
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def losses_finite(out):
    rows = read_jsonl(out / "steps.jsonl")
    return rows and all(math.isfinite(r["loss"]) and math.isfinite(r["ldm"]) for r in rows)


# -- the "+ KCL" row (ControlNet variant kcl): straight vs resumed -------------------------------

KCL_RUN = dict(method="controlnet", variant="kcl", limit=3, checkpointing_steps=1, **KCL)


# TensorBoard logging is checked where the package is installed (it is an optional dependency).
TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """3 steps in one go (3 samples, batch 2: 2 steps per epoch), a checkpoint every step (1 kept),
    validating every 2 steps."""
    out = tmp_path_factory.mktemp("straight")
    run_training(options(out, max_steps=3, validation_steps=2, checkpoints_total_limit=1,
                         report_to="tensorboard" if TENSORBOARD else "none", **KCL_RUN))
    return out


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """1 step, stop; then resume from the latest checkpoint (mid-epoch) to step 3."""
    out = tmp_path_factory.mktemp("resumed")
    run_training(options(out, max_steps=1, **KCL_RUN))
    run_training(options(out, max_steps=3, resume="latest", **KCL_RUN))
    return out


def test_resume_equals_the_uninterrupted_run(straight, resumed):
    a, b = weights(straight / "checkpoint-3" / "controlnet"), weights(resumed / "checkpoint-3" / "controlnet")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    ea = torch.load(straight / "checkpoint-3" / "controlnet" / "learned_embeds.bin", weights_only=True)
    eb = torch.load(resumed / "checkpoint-3" / "controlnet" / "learned_embeds.bin", weights_only=True)
    for token in ea:
        torch.testing.assert_close(ea[token], eb[token], rtol=0, atol=1e-7)
    # The same batches in the same order, each step's loss the same.
    ra, rb = read_jsonl(straight / "steps.jsonl"), read_jsonl(resumed / "steps.jsonl")
    assert [r["samples"] for r in ra] == [r["samples"] for r in rb]
    assert [r["loss"] for r in ra] == pytest.approx([r["loss"] for r in rb], rel=1e-6)
    assert json.loads((resumed / "train.json").read_text())["training"]["resumed_from"].endswith("checkpoint-1")


def test_every_sample_once_per_epoch(straight):
    rows = read_jsonl(straight / "steps.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and [r["epoch"] for r in rows] == [0, 0, 1]
    epoch0 = [s for r in rows[:2] for s in r["samples"]]
    from spbench.data.registry import load_split

    assert sorted(epoch0) == sorted(s.sample_id for s in load_split("sample").limit(3).samples)
    assert len(rows[2]["samples"]) == 2


def test_record_checkpoints_validation_and_logs(straight):
    record = json.loads((straight / "train.json").read_text())
    assert record["status"] == "finished" and record["training"]["steps"] == 3
    assert record["method"] == {"name": "controlnet", "variant": "kcl", "condition": "openpose",
                                "model_folder": "controlnet", "model_class": "ControlNetModel"}
    kcl = record["kcl"]
    assert kcl["keypoint_tokens"] and kcl["heatmap_loss"] and kcl["definition"] == "official"
    assert kcl["blocks"] == ["down_blocks.2"] and kcl["source"] == "controlnet" and kcl["weight"] == 0.1
    from spbench.data.registry import load_split

    assert record["dataset"]["hash"] == load_split("sample").limit(3).content_hash
    assert math.isfinite(record["losses"]["mean"]["loss"]) and record["losses"]["mean"]["ht"] > 0
    assert record["provenance"]["packages"]["diffusers"]
    # Retention: only the newest checkpoint is kept; it is complete and loadable.
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-3"]
    assert {"optimizer.bin", "trainer_state.json"} <= {p.name for p in (straight / "checkpoint-3").iterdir()}
    from diffusers import ControlNetModel

    ControlNetModel.from_pretrained(straight / "checkpoint-3" / "controlnet")
    assert [p.name for p in (straight / "validation").iterdir()] == ["step-000002"]
    pngs = list((straight / "validation" / "step-000002").glob("*.png"))
    assert len(pngs) == 1 and Image.open(pngs[0]).size == (64, 64)
    assert list((straight / "logs").rglob("events.out.tfevents.*")) or not TENSORBOARD


def test_checkpoint_generates_through_the_cli(straight, tmp_path):
    folder = straight / "checkpoint-3" / "controlnet"
    result = CliRunner().invoke(app, ["generate", "--method", "controlnet", "--variant", "kcl", "--checkpoint", str(folder),
                                      "--dataset", "sample", "--profile", "tiny", "--steps", "2", "--limit", "1",
                                      "--samples", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert run["models"]["keypoint_tokens"]["embeddings"] == str(folder / "learned_embeds.bin")
    assert len(list(tmp_path.glob("*/images/*.png"))) == 1


def test_run_takes_the_training_checkpoint_folder_for_its_model_folder(straight, tmp_path):
    from spbench.training.checkpoints import model_folder

    checkpoint = straight / "checkpoint-3"
    assert model_folder(str(checkpoint)) == str(checkpoint / "controlnet")
    assert model_folder(str(checkpoint / "controlnet")) == str(checkpoint / "controlnet")
    assert model_folder("lllyasviel/sd-controlnet-openpose") == "lllyasviel/sd-controlnet-openpose"
    two = tmp_path / "checkpoint-9"
    for name in ("a", "b"):
        (two / name).mkdir(parents=True)
        (two / name / "config.json").write_text("{}")
    (two / "trainer_state.json").write_text("{}")
    with pytest.raises(SpbenchError, match="model folders are a, b"):
        model_folder(str(two))


def test_starting_over_a_run_or_resuming_differently_is_refused(straight):
    with pytest.raises(SpbenchError, match="--resume latest"):
        run_training(options(straight, max_steps=5, **KCL_RUN))
    with pytest.raises(SpbenchError, match="batch_size 2 -> 3"):
        run_training(options(straight, max_steps=5, resume="latest", **{**KCL_RUN, "batch_size": 3}))
    with pytest.raises(SpbenchError, match="no complete checkpoint"):
        run_training(options(straight, max_steps=5, resume="checkpoint-2", **KCL_RUN))


# -- single steps: token rows, capture memory, learning rates, gradient checkpointing ---------------

STEPS = dict(method="controlnet", variant="kcl", limit=2, kpt_lr_decay_epochs=1, **KCL)


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """A trainer after 2 steps (2 samples, batch 2: one step per epoch), what each step saw, and
    the processors before."""
    from spbench.training.loop import Trainer

    trainer = Trainer(options(tmp_path_factory.mktemp("plain"), **STEPS))
    before = dict(trainer.accelerator.unwrap_model(trainer.model).attn_processors)
    return trainer, run_steps(trainer, 2), before


def run_steps(trainer, n):
    """n steps (one batch = one epoch here); returns each step's values and capture length after it."""
    seen = []
    with trainer.session():
        model = trainer.accelerator.unwrap_model(trainer.model)
        for epoch in range(n):
            for batch in trainer.batches(epoch):
                values = trainer.training_step(batch)
                seen.append((values, len(trainer.store), dict(model.attn_processors)))
    return seen


def test_only_keypoint_rows_move_capture_empties_and_token_lr_halves(stepped):
    from spbench.models.keypoint_tokens import add_keypoint_tokens
    from spbench.models.stable_diffusion import build_tiny_sd
    from spbench.schemas import AP10K

    trainer, seen, before = stepped
    model = trainer.accelerator.unwrap_model(trainer.model)
    # Capture list empty after every step; the captured layers are the same each step.
    assert [n for _, n, _ in seen] == [0, 0]
    assert all(math.isfinite(v["ht"]) and v["ht"] > 0 for v, _, _ in seen)
    assert all(procs.keys() == before.keys() for _, _, procs in seen)
    # Processors restored after the session.
    assert all(model.attn_processors[k] is before[k] for k in before)
    # Token lr 0.5 halved every epoch (kpt_lr_decay_epochs=1, one step per epoch); ControlNet lr fixed.
    assert [v["lr_tokens"] for v, _, _ in seen] == [0.5, 0.25]
    assert [v["lr"] for v, _, _ in seen] == [1e-5] * 2
    # Against an independently built table: every row but the 17 keypoint tokens is unchanged.
    fresh = build_tiny_sd()
    ids = add_keypoint_tokens(fresh.tokenizer, fresh.text_encoder, AP10K)
    now = trainer.sd.text_encoder.get_input_embeddings().weight.detach()
    ref = fresh.text_encoder.get_input_embeddings().weight.detach()
    others = torch.ones(now.shape[0], dtype=torch.bool)
    others[ids] = False
    assert ids == trainer.token_ids
    assert torch.equal(now[others], ref[others])
    assert (now[ids] - ref[ids]).abs().sum(dim=1).min() > 0  # every token row was trained


def test_gradient_checkpointing_gives_the_same_steps(stepped, tmp_path):
    from spbench.training.loop import Trainer

    plain, seen, _ = stepped
    checkpointed = Trainer(options(tmp_path, gradient_checkpointing=True, **STEPS))
    again = run_steps(checkpointed, 2)
    for key in ("loss", "ldm", "ht"):
        assert [v[key] for v, _, _ in again] == pytest.approx([v[key] for v, _, _ in seen], rel=1e-5)
    a = plain.accelerator.unwrap_model(plain.model).state_dict()
    b = checkpointed.accelerator.unwrap_model(checkpointed.model).state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    ea = plain.sd.text_encoder.get_input_embeddings().weight
    eb = checkpointed.sd.text_encoder.get_input_embeddings().weight
    torch.testing.assert_close(ea, eb, rtol=1e-5, atol=1e-6)


# -- every trainable method ---------------------------------------------------------------------

def _condition_dir(tmp_path):
    """Precomputed condition maps for the depth/mask baselines (canvas-sized PNGs per sample)."""
    from spbench.data.registry import load_split

    folder = tmp_path / "conditions"
    folder.mkdir()
    for i, s in enumerate(load_split("sample").limit(2).samples):
        Image.fromarray(np.full((64, 64, 3), 40 * (i + 1), dtype=np.uint8)).save(folder / f"{s.sample_id}.png")
    return folder


@pytest.mark.parametrize("method, folder", [
    ("t2i-adapter", "t2i_adapter"), ("controlnet-depth", "controlnet"), ("controlnet-mask", "controlnet"),
])
def test_baselines_train(method, folder, tmp_path):
    extra = {}
    if method == "t2i-adapter":  # mixed precision (bf16 runs on a CPU), validating in it
        extra = dict(mixed_precision="bf16", validation_steps=1)
    sets = []
    if method == "controlnet-depth":  # precomputed maps
        sets = [f"method.options.conditions_dir={_condition_dir(tmp_path)}"]
    if method == "controlnet-mask":  # tiny SAM-HQ, cached in the test's folder
        sets = [f"paths.cache={tmp_path / 'cache'}"]
    out = run_training(options(tmp_path / "out", method=method, limit=2, max_steps=1, sets=sets, **extra))
    assert losses_finite(out)
    record = json.loads((out / "train.json").read_text())
    assert record["kcl"] == {"keypoint_tokens": False, "heatmap_loss": False}
    assert record["training"]["mixed_precision"] == extra.get("mixed_precision", "no")
    assert len(list(out.glob("validation/step-000001/*.png"))) == (1 if extra else 0)
    assert (out / "checkpoint-1" / folder / "diffusion_pytorch_model.safetensors").is_file()
    assert not (out / "checkpoint-1" / folder / "learned_embeds.bin").exists()


def test_spctrl_trains_and_its_checkpoint_runs(tmp_path):
    out = run_training(options(tmp_path / "out", method="spctrl", limit=2, max_steps=1, validation_steps=1, **KCL))
    rows = read_jsonl(out / "steps.jsonl")
    assert losses_finite(out) and all(r["ht"] > 0 for r in rows)
    assert len(list(out.glob("validation/step-000001/*.png"))) == 1
    folder = out / "checkpoint-1" / "spctrl"
    assert {"config.json", "diffusion_pytorch_model.safetensors", "learned_embeds.bin"} <= {p.name for p in folder.iterdir()}
    result = CliRunner().invoke(app, ["run", "--method", "spctrl", "--checkpoint", str(folder), "--dataset", "sample",
                                      "--profile", "tiny", "--steps", "2", "--limit", "1", "--samples", "1",
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    assert run["models"]["keypoint_tokens"]["embeddings"] == str(folder / "learned_embeds.bin")
    assert (next((tmp_path / "runs").glob("*/result.json"))).is_file()


def test_paper_loss_on_unet_layers(tmp_path):
    """The other definition and source: the paper's loss on the UNet's down_blocks.2 + up_blocks.1."""
    out = run_training(options(tmp_path, method="controlnet", variant="kcl", limit=2, max_steps=1, kcl_definition="paper",
                               kcl_source="unet", kcl_blocks=("down_blocks.2", "up_blocks.1"), **KCL))
    assert read_jsonl(out / "steps.jsonl")[0]["ht"] > 0
    kcl = json.loads((out / "train.json").read_text())["kcl"]
    assert kcl["definition"] == "paper" and kcl["timestep_bounds"] == "inclusive"
    assert kcl["layers"] == ["down_blocks.2.attentions.0.transformer_blocks.0.attn2",
                             "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
                             "up_blocks.1.attentions.1.transformer_blocks.0.attn2"]


def test_user_errors_are_one_line(tmp_path):
    cases = [
        (dict(method="real"), "cannot be trained"),
        (dict(kcl_definition="papr"), "--kcl-definition"),
        (dict(mixed_precision="fp16"), "fp16 needs a CUDA GPU"),
        (dict(method="controlnet", heatmap_loss=True, keypoint_tokens=False), "needs keypoint tokens"),
        (dict(resume="checkpoint-9"), "no complete checkpoint"),
        (dict(method="t2i-adapter", keypoint_tokens=True), "use --kcl-source unet"),
        (dict(method="controlnet", variant="kcl", kcl_blocks=("down_blocks.7",)), "down_blocks.7"),
    ]
    for kw, words in cases:
        if kw.get("mixed_precision") == "fp16" and torch.cuda.is_available():
            continue
        with pytest.raises(SpbenchError, match=words) as e:
            run_training(options(tmp_path / "err", limit=1, max_steps=1, **kw))
        assert "\n" not in str(e.value)


def test_options_parse_cli_lists_and_refuse_bad_values():
    o = TrainingOptions(kcl_timesteps="250,500", kcl_blocks="down_blocks.2, down_blocks.1")
    assert o.kcl_timesteps == (250, 500) and o.kcl_blocks == ("down_blocks.2", "down_blocks.1")
    for kw, words in [(dict(kcl_timesteps="500,250"), "LOW <= HIGH"), (dict(kcl_timesteps="a,b"), "two integers"),
                      (dict(caption_dropout=1.5), "between 0 and 1"), (dict(batch_size=0), "--batch-size"),
                      (dict(report_to="wandb"), "--report-to"), (dict(mixed_precision="fp8"), "--mixed-precision")]:
        with pytest.raises(SpbenchError, match=words):
            TrainingOptions(**kw)


LAUNCH_SCRIPT = """
import sys
from spbench.training import TrainingOptions, run_training
run_training(TrainingOptions(out=sys.argv[1], max_steps=int(sys.argv[2]), resume=sys.argv[3] or None, method="controlnet",
             variant="kcl", limit=3, batch_size=1, checkpointing_steps=1, progress=False,
             caption_dropout=0.0, kpt_token_probability=1.0, kcl_timesteps=(0, 1000)))
"""


@pytest.mark.slow
def test_two_processes_resume_exactly(tmp_path):
    """accelerate launch with 2 CPU processes (gloo): 2 steps straight == 1 step + resume + 1 step."""
    import os
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(LAUNCH_SCRIPT)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for out, steps, resume in ((tmp_path / "a", 2, ""), (tmp_path / "b", 1, ""), (tmp_path / "b", 2, "latest")):
        done = subprocess.run([*launch, str(out), str(steps), resume], capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "a" / "train.json").read_text())["training"]["num_processes"] == 2
    a, b = weights(tmp_path / "a" / "checkpoint-2" / "controlnet"), weights(tmp_path / "b" / "checkpoint-2" / "controlnet")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    assert read_jsonl(tmp_path / "a" / "steps.jsonl") == read_jsonl(tmp_path / "b" / "steps.jsonl")


def test_train_command_defaults_are_the_training_options_defaults(monkeypatch):
    """`spbench train` with no flags trains with TrainingOptions() as it is: its defaults are
    read from the dataclass, not written a second time."""
    import spbench.training as training

    seen = []
    monkeypatch.setattr(training, "run_training", lambda options: seen.append(options) or "folder")
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 0, result.output
    assert seen == [TrainingOptions()]
