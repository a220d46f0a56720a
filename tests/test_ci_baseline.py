"""The project's own regression check: the commands in the header of
results/expected/tiny-sample.yaml, run as written, pass it; and it has teeth: each change of a
metric's definition that issue #17 lists (applied by monkeypatching, then the runs scored again
the way the header scores them) makes `spbench check` exit 1.

The runs are made once per module (generation is the slow part); each test scores copies."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from spbench import schemas
from spbench.canvas import CanvasTransform
from spbench.cli import app
from spbench.metrics import clip_score, pose_official
from spbench.metrics import fid_scoring as fid
from spbench.metrics.pose import PoseEvaluator
from spbench.results.check import compare, read_expected
from spbench.results.load import load_records

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "results" / "expected" / "tiny-sample.yaml"
EXPECTED_ARG = "results/expected/tiny-sample.yaml"  # as the header writes it (relative to the repo)
RUN = "sample-ap10k-controlnet-tiny"
# The AP-10K sigma table before mmpose v0.21's fix (COCO's left/right pairing).
PRE_FIX_AP10K_SIGMAS = (0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)


def header_commands() -> list[str]:
    """The header's block of command lines (``#   export ...`` up to the first other line),
    ``&&`` split."""
    lines = []
    for line in EXPECTED.read_text().splitlines():
        text = line[1:] if line.startswith("#") else ""
        if text.startswith("   ") and text.split()[0] in ("export", "spbench", "mkdir", "cp"):
            lines += [part.strip() for part in text.split("&&")]
        elif lines:
            break
    return lines


@contextlib.contextmanager
def working_directory(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def execute(command: str, cwd: Path, cli: CliRunner):
    """One header command, run in ``cwd`` as written: spbench in-process (CliRunner), mkdir and
    cp by hand; the expected file is this repository's."""
    argv = shlex.split(command)
    with working_directory(cwd):
        if argv[0] == "export":
            return None  # HF_HUB_OFFLINE=1: tests/conftest.py sets it for the whole session
        if argv[:2] == ["mkdir", "-p"]:
            for folder in argv[2:]:
                Path(folder).mkdir(parents=True, exist_ok=True)
            return None
        if argv[:2] == ["cp", "-r"]:
            source, target = Path(argv[2]), Path(argv[3])
            shutil.copytree(source, target / source.name if argv[3].endswith("/") else target)
            return None
        assert argv[0] == "spbench", command
        return cli.invoke(app, [str(EXPECTED) if a == EXPECTED_ARG else a for a in argv[1:]])


COMMANDS = header_commands()
GENERATE = [c for c in COMMANDS if c.startswith("spbench run ")]
CHECK = [c for c in COMMANDS if c.startswith("spbench check ")]
AFTER_RUN = [c for c in COMMANDS[COMMANDS.index(GENERATE[0]) + 1:] if c not in CHECK] if GENERATE else []


def rescore_command() -> str:
    """The scoring of the header's `spbench run` line, as `spbench evaluate` of its run folder:
    the same --metrics and --pose-model (the run's config keeps its --set models)."""
    argv = shlex.split(GENERATE[0])
    keep = []
    for flag in ("--metrics", "--pose-model", "--protocol"):
        if flag in argv:
            keep += [flag, argv[argv.index(flag) + 1]]
    out = argv[argv.index("--out") + 1]
    return shlex.join(["spbench", "evaluate", f"{out}/{RUN}", *keep])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The header's commands up to the check, once; returns their working folder."""
    assert len(GENERATE) == 1 and len(CHECK) == 1 and AFTER_RUN, COMMANDS
    cwd = tmp_path_factory.mktemp("ci")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPBENCH_CACHE", str(cwd / "cache"))
        cli = CliRunner()
        for command in COMMANDS:
            if command in CHECK:
                continue
            result = execute(command, cwd, cli)
            assert result is None or result.exit_code == 0, (command, result and result.output)
    return cwd


def check(cwd: Path):
    """The header's check command run in ``cwd``: (exit status, {"<protocol>:<metric key>": status}
    of the checks that did not hold, its output)."""
    result = execute(CHECK[0], cwd, CliRunner())
    folders = [cwd / f for f in ("ci-runs", "ci-official")]
    failed = {f"{o.expectation.where.get('evaluation.pose@perturbed-oracle-4.protocol')}:{o.spec.key}": o.status
              for o in compare(read_expected(EXPECTED), load_records(folders, warn=lambda m: None))
              if o.status not in ("ok", "improved")}
    return result.exit_code, failed, result.output


def rescore(made: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the generated run, scored again as the header scores it (its `spbench run`
    scoring as `spbench evaluate`, then the header's later commands), in a fresh FID cache."""
    cwd = tmp_path / "ci"
    cwd.mkdir()
    shutil.copytree(made / "ci-runs", cwd / "ci-runs")
    monkeypatch.setenv("SPBENCH_CACHE", str(tmp_path / "cache"))
    cli = CliRunner()
    for command in [rescore_command(), *AFTER_RUN]:
        result = execute(command, cwd, cli)
        assert result is None or result.exit_code == 0, (command, result and result.output)
    return cwd


# -- the baseline holds --------------------------------------------------------------------------------


def test_header_commands_pass_the_checked_in_baseline(made):
    status, failed, output = check(made)
    assert status == 0 and not failed, output
    assert "(diagnostic)" in output  # the perturbed oracles' pose and det scores are marked
    for record in load_records([made / "ci-runs", made / "ci-official"], warn=lambda m: None):
        assert record.data["tiny"] and "pose" not in record.data["metrics"]  # no score passes for a result
        for key in ("pose@perturbed-oracle-4.AP", "det.AP75"):
            assert record.diagnostic(key) == "scored with the diagnostic model perturbed-oracle:4", key
            assert record.data["metrics"][key.split(".")[0]]["diagnostic"] is True


def test_rescored_copies_pass_unchanged(made, tmp_path, monkeypatch):
    """The control for the mutation tests: scoring again, unmutated, passes."""
    status, failed, output = check(rescore(made, tmp_path, monkeypatch))
    assert status == 0 and not failed, output


def test_tolerances_absorb_pixel_noise(made, tmp_path, monkeypatch):
    """±4/255 of uniform noise on every pixel of every generated image (more than float rounding
    on another CPU changes) keeps every check green: the CLIP and FID tolerances are not tighter
    than what another machine's images would need."""
    rng = np.random.default_rng(0)
    noisy = tmp_path / "made"
    shutil.copytree(made / "ci-runs", noisy / "ci-runs")
    for path in sorted((noisy / "ci-runs" / RUN / "images").glob("*.png")):
        pixels = np.asarray(Image.open(path)).astype(np.int64)
        pixels = np.clip(pixels + rng.integers(-4, 5, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
    rescored = rescore(noisy, tmp_path, monkeypatch)
    status, failed, output = check(rescored)
    assert status == 0 and not failed, output


def test_expected_file_has_no_value_a_constant_could_meet():
    """No AP of 0 or 100, no empty tolerance on a score: every score is a measured, non-trivial
    value (counts, num_*, are exact by nature)."""
    for entry in read_expected(EXPECTED):
        scores = [m for m in entry.metrics if not m.key.split(".")[-1].startswith("num_")]
        assert scores, entry.describe()
        for m in scores:
            assert m.value not in (0.0, 100.0) and m.direction == "both", m
            assert 0 < m.tolerance < 0.01 * abs(m.value), m  # under 1% of the value


# -- each mutation of a metric's definition turns it red -----------------------------------------------


def other_sigma_table(monkeypatch):
    monkeypatch.setitem(schemas.SCHEMAS, "ap10k", dataclasses.replace(schemas.AP10K, sigmas=PRE_FIX_AP10K_SIGMAS))


def area_not_scaled_to_the_canvas(monkeypatch):
    monkeypatch.setattr(CanvasTransform, "area", lambda self, area: float(area))


def canvas_frame_under_the_official_protocol(monkeypatch):
    monkeypatch.setattr(pose_official, "scoring_frame", lambda sample, canvas: CanvasTransform(**canvas))


def ignored_ground_truth_dropped(monkeypatch):
    monkeypatch.setattr(PoseEvaluator, "keeps_ignored_gt", property(lambda self: False))


def clip_without_max(monkeypatch):
    monkeypatch.setattr(clip_score, "clip_score_value", lambda cosine: 100.0 * float(cosine))


def fid_on_the_other_resize(monkeypatch):
    load = fid.load_extractor
    other = {"antialias": "tf1", "tf1": "antialias"}
    monkeypatch.setattr(fid, "load_extractor", lambda spec, resize="antialias", device="cpu": load(spec, other[resize], device))


# Mutation -> the checks it turns red (measured; see the expected file's header). Every one moves
# at least one AP-type value or score, not only a count or oks_mean.
MUTATIONS = {
    "sigma table": (other_sigma_table, {
        "canvas:pose@perturbed-oracle-4.AP", "canvas:pose@perturbed-oracle-4.per_k.2.AP",
        "canvas:pose@perturbed-oracle-4.oks_mean",
        "official:pose@perturbed-oracle-4.AP", "official:pose@perturbed-oracle-4.oks_mean"}),
    "OKS area": (area_not_scaled_to_the_canvas, {
        "canvas:pose@perturbed-oracle-4.AP", "canvas:pose@perturbed-oracle-4.AP75",
        "canvas:pose@perturbed-oracle-4.per_k.2.AP", "canvas:pose@perturbed-oracle-4.oks_mean"}),
    "official frame": (canvas_frame_under_the_official_protocol, {
        "official:pose@perturbed-oracle-4.AP", "official:pose@perturbed-oracle-4.oks_mean"}),
    "ignored GT": (ignored_ground_truth_dropped, {
        "official:pose@perturbed-oracle-4.AP", "official:pose@perturbed-oracle-4.AP75",
        "official:pose@perturbed-oracle-4.num_instances",
        "official:pose@perturbed-oracle-4.num_ignored_instances"}),
    "CLIP max": (clip_without_max, {"canvas:clip.score"}),
    "FID resize": (fid_on_the_other_resize, {"canvas:fid.fid"}),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_turns_the_check_red(made, tmp_path, monkeypatch, name):
    mutate, turns_red = MUTATIONS[name]
    mutate(monkeypatch)
    status, failed, output = check(rescore(made, tmp_path, monkeypatch))
    assert status == 1, output
    assert set(failed) == turns_red and set(failed.values()) == {"regressed"}, (failed, output)
