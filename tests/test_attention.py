"""`spbench attention`: cross-attention maps of keypoint tokens, regenerated from a run (tiny
random models: the grids check the machinery, not what a trained model attends to)."""

import json

import numpy as np
import pytest
import torch
from helpers import spbench_in_process
from PIL import Image

from spbench.report.attention import _layer_map, _token_positions, chosen_steps

RUN = "sample-ap10k-spctrl-tiny"
SAMPLE = "ap10k-000000000011"


@pytest.fixture(scope="module")
def spctrl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = spbench_in_process("generate", "--method", "spctrl", "--dataset", "sample-ap10k", "--profile", "tiny",
                                "--steps", "3", "--limit", "1", "--images-per-prompt", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    return out / RUN


def test_grid_and_its_facts_for_every_keypoint_token_of_the_prompt(spctrl_run, tmp_path):
    result = spbench_in_process("attention", spctrl_run, "--sample", SAMPLE, "--k", "1", "--steps", "0,-1",
                                "--blocks", "down_blocks.2,up_blocks.1")
    assert result.returncode == 0, result.stderr
    png = spctrl_run / "attention" / f"{SAMPLE}_k1.png"
    facts = json.loads(png.with_suffix(".json").read_text())
    manifest = {(r["sample_id"], r["k"]): r for r in map(json.loads, (spctrl_run / "manifest.jsonl").read_text().splitlines())}
    row = manifest[(SAMPLE, 1)]
    assert facts["prompt"] == row["prompt"] and facts["seed"] == row["seed"]
    # The same request generated again: the image the run stored (PNG rounding aside).
    assert facts["max_pixel_difference_from_the_run"] <= 1
    # Columns: the category word, then the 17 keypoint tokens, each at its place in the tokenized prompt.
    labels = list(facts["tokens"])
    assert labels[0] == "dog" and len(labels) == 18 and labels[1] == "<left-eye>" and labels[-1] == "<right-back-paw>"
    positions = [p for label in labels for p in facts["tokens"][label]]
    assert positions == sorted(positions) and len(set(positions)) == 18
    assert facts["steps_shown"] == [0, 2] and len(facts["timesteps_shown"]) == 2
    assert all(name.startswith(("down_blocks.2.", "up_blocks.1.")) for name in facts["layers"]) and facts["layers"]
    assert facts["guidance"] == "prompt half" and facts["tiny"] is True
    image = Image.open(png)
    # 110 px of labels, then 19 columns (image + 18 words) of 160 px; title, header, then 3 rows (2 steps + mean).
    assert image.size == (110 + 19 * 160, 22 + 22 + 3 * 160)


def test_layer_map_takes_the_prompt_half_sums_the_word_pieces_and_resizes():
    # [negative, prompt] x (2x2 = 4 positions) x 3 tokens; the negative half must not show.
    probs = torch.zeros(2, 4, 3)
    probs[0] = 9.0
    probs[1, :, 1] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    probs[1, :, 2] = torch.tensor([0.0, 0.5, 0.0, 0.5])
    same_size = _layer_map(probs, 2, 2, [1, 2])
    np.testing.assert_allclose(same_size, [[0.1, 0.7], [0.3, 0.9]], atol=1e-6)  # row-major, pieces summed
    doubled = _layer_map(probs, 4, 4, [1])
    # Bilinear (half-pixel centres) from 2x2 to 4x4: corners keep their values, the inner ring blends 3:1.
    assert doubled[0, 0] == pytest.approx(0.1) and doubled[3, 3] == pytest.approx(0.4)
    assert doubled[0, 1] == pytest.approx(0.75 * 0.1 + 0.25 * 0.2)
    assert doubled[1, 1] == pytest.approx(0.75 * (0.75 * 0.1 + 0.25 * 0.2) + 0.25 * (0.75 * 0.3 + 0.25 * 0.4))


def test_token_positions_find_every_piece_of_a_word():
    from spbench.models.stable_diffusion import build_tiny_sd

    tokenizer = build_tiny_sd().tokenizer
    prompt = "A photo of a dog in the grass"
    ids = tokenizer(prompt)["input_ids"]
    positions = _token_positions(tokenizer, prompt, "dog")
    assert positions and [ids[p] for p in positions] == tokenizer("dog", add_special_tokens=False)["input_ids"]
    assert _token_positions(tokenizer, prompt, "zebra") == []


def test_steps_default_to_first_middle_last_and_bad_input_is_one_line(spctrl_run):
    assert chosen_steps(50, None) == [0, 25, 49] and chosen_steps(50, [-1, 10]) == [49, 10]
    for args, words in ((["--sample", "ap10k-000000000012"], ["no sample", "did you mean 'ap10k-000000000011'"]),
                        (["--sample", SAMPLE, "--k", "2"], ["2 image(s) per prompt"]),
                        (["--sample", SAMPLE, "--steps", "7"], ["3 denoising steps"]),
                        (["--sample", SAMPLE, "--steps", "a,b"], ["comma-separated"])):
        result = spbench_in_process("attention", spctrl_run, *args, "--out", spctrl_run / "bad.png")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and all(w in lines[0] for w in words), result.stderr
    assert not (spctrl_run / "bad.png").exists()


def test_report_embeds_the_grids(spctrl_run, tmp_path):
    assert spbench_in_process("attention", spctrl_run, "--sample", SAMPLE, "--steps", "-1").returncode == 0
    assert spbench_in_process("report", spctrl_run, "--out", tmp_path / "report").returncode == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Cross-attention of keypoint tokens" in page and f"{SAMPLE}_k0.png" in page
