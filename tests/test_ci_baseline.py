"""The project's own regression check: a deterministic tiny run of the sample against
results/expected/tiny-sample.yaml, exactly as that file's header says CI runs it."""

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from spbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "results" / "expected" / "tiny-sample.yaml"
RUN = "sample-ap10k-controlnet-tiny"


def test_tiny_sample_run_passes_the_checked_in_baseline_and_a_moved_value_fails(tmp_path):
    cli = CliRunner()
    runs, oracle = tmp_path / "ci-runs", tmp_path / "ci-oracle"
    result = cli.invoke(app, ["run", "--method", "controlnet", "--dataset", "sample", "--profile", "tiny",
                              "--steps", "2", "--out", str(runs)])
    assert result.exit_code == 0, result.output
    shutil.copytree(runs / RUN, oracle / RUN)
    result = cli.invoke(app, ["evaluate", str(oracle / RUN), "--pose-model", "oracle"])
    assert result.exit_code == 0, result.output

    check = ["check", "--results", str(runs), "--results", str(oracle)]
    result = cli.invoke(app, [*check[:1], str(EXPECTED), *check[1:]])
    assert result.exit_code == 0, result.output

    moved = yaml.safe_load(EXPECTED.read_text())
    moved["expected"][1]["metrics"]["pose@oracle.num_images"]["value"] = 30  # past tolerance 0
    bad = tmp_path / "moved.yaml"
    bad.write_text(yaml.safe_dump(moved))
    result = cli.invoke(app, [*check[:1], str(bad), *check[1:]])
    assert result.exit_code == 1, result.output
