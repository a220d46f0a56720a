"""Keypoint-token embeddings are found where the official checkpoints keep them, and a trained
checkpoint never runs silently on untrained (word-initialised) tokens."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from spbench.cli import app
from spbench.errors import SpbenchError
from spbench.methods.spctrl import SPCtrlMethod
from spbench.models.keypoint_tokens import LEARNED_EMBEDS
from spbench.run.requests import MethodContext
from test_spctrl import config, official_folder, tiny  # noqa: F401  (fixtures)


@pytest.fixture()
def official_training_layout(official_folder, tmp_path):
    """The official training's checkpoint: ``checkpoint-N/controlnet/`` (config + weights) with
    ``learned_embeds.bin`` beside it in ``checkpoint-N/`` (SPEC §2; its inference reads
    ``controlnet_path/../learned_embeds.bin``)."""
    folder, _ = official_folder
    step = tmp_path / "checkpoint-528000"
    model = step / "controlnet"
    model.mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.bin"):
        shutil.copy(folder / name, model / name)
    shutil.copy(folder / LEARNED_EMBEDS, step / LEARNED_EMBEDS)
    return step


def _run(tmp_path, checkpoint, *extra):
    args = ["run", "--method", "spctrl", "--dataset", "sample", "--split", "humanart", "--profile", "tiny",
            "--checkpoint", str(checkpoint), "--steps", "1", "--samples", "1", "--limit", "1",
            "--out", str(tmp_path / "runs"), *extra]
    return CliRunner().invoke(app, args)


def test_tokens_beside_the_controlnet_folder_are_loaded(official_training_layout, tmp_path):
    model_dir = official_training_layout / "controlnet"
    method = SPCtrlMethod(MethodContext(config(checkpoint=str(model_dir), split="humanart")))
    method.load()
    learned = torch.load(official_training_layout / LEARNED_EMBEDS, weights_only=True)
    rows = method.sd.text_encoder.get_input_embeddings().weight
    for token in ("<nose>", "<right-ankle>"):
        assert torch.equal(rows[method.sd.tokenizer.convert_tokens_to_ids(token)], learned[token])

    result = _run(tmp_path, model_dir)
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    # The record names the file the rows came from.
    assert record["models"]["keypoint_tokens"]["embeddings"] == str((official_training_layout / LEARNED_EMBEDS).resolve())


def test_a_checkpoint_without_tokens_stops_before_any_work(official_training_layout, tmp_path):
    (official_training_layout / LEARNED_EMBEDS).unlink()
    result = _run(tmp_path, official_training_layout / "controlnet")
    # A SpbenchError: `spbench` prints it as one line and exits 2 (spbench.cli.main).
    assert isinstance(result.exception, SpbenchError), result.output
    message = str(result.exception)
    assert len(message.splitlines()) == 1
    assert LEARNED_EMBEDS in message and "allow_untrained_tokens" in message
    assert not list((tmp_path / "runs").glob("*/images/*.png"))


def test_untrained_tokens_only_on_purpose(official_training_layout, tmp_path):
    (official_training_layout / LEARNED_EMBEDS).unlink()
    result = _run(tmp_path, official_training_layout / "controlnet", "--set", "method.options.allow_untrained_tokens=true")
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert "untrained" in record["models"]["keypoint_tokens"]["embeddings"]
