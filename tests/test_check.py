"""`spbench check`: expected metrics with tolerances and directions against result records."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from spbench.errors import SpbenchError
from spbench.results.check import MetricSpec, check_command, read_expected, status

REPO = Path(__file__).resolve().parents[1]


def write_record(root: Path, name: str, metrics: dict, pose_model="tiny://vitpose", method="controlnet", variant=None,
                 date="2026-01-01T00:00:00+00:00") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({
        "run": name, "dataset": {"name": "sample", "split": "ap10k"}, "method": {"name": method, "variant": variant},
        "tiny": True, "metrics": metrics, "evaluation": {"pose": {"model": pose_model}},
        "config": {"profile": {"name": "tiny", "tiny": True}}, "provenance": {"date": date},
    }))


def expected_file(tmp_path: Path, metrics: dict, **match) -> Path:
    entry = {"dataset": "sample", "split": "ap10k", "method": "controlnet", "variant": None, "profile": "tiny", **match,
             "metrics": metrics}
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({"version": 1, "expected": [entry]}))
    return path


def run_check(expected, results) -> tuple[int, str]:
    console = Console(record=True, width=200)
    code = check_command(expected, [str(r) for r in results], console=console)
    return code, console.export_text()


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_record(root, "r", {"pose": {"AP": 50.0, "per_k": {"0": {"AP": 49.0}}}, "fid": {"fid": 20.0}})
    return root


def test_passes_on_matching_records(tmp_path, runs):
    exp = expected_file(tmp_path, {"pose.AP": {"value": 50.2, "tolerance": 0.5, "direction": "both"},
                                   "pose.per_k.0.AP": {"value": 49.0, "tolerance": 0.0, "direction": "higher"},
                                   "fid.fid": {"value": 20.0, "tolerance": 0.1, "direction": "lower"}})
    code, out = run_check(exp, [runs])
    assert code == 0
    assert "3 ok, 0 improved, 0 regressed, 0 missing" in out


@pytest.mark.parametrize("metric,spec,code,word", [
    ("pose.AP", {"value": 51.0, "tolerance": 0.5, "direction": "higher"}, 1, "regressed"),   # 50 < 51 − 0.5
    ("pose.AP", {"value": 48.0, "tolerance": 0.5, "direction": "higher"}, 0, "improved"),    # better: passes
    ("pose.AP", {"value": 48.0, "tolerance": 0.5, "direction": "both"}, 1, "regressed"),     # moved either way
    ("fid.fid", {"value": 19.0, "tolerance": 0.5, "direction": "lower"}, 1, "regressed"),    # 20 > 19 + 0.5
    ("fid.fid", {"value": 22.0, "tolerance": 0.5, "direction": "lower"}, 0, "improved"),
    ("pose.AP", {"value": 50.5, "tolerance": 0.5, "direction": "higher"}, 0, "ok"),          # on the boundary
])
def test_direction_and_tolerance(tmp_path, runs, metric, spec, code, word):
    got, out = run_check(expected_file(tmp_path, {metric: spec}), [runs])
    assert got == code
    assert f"1 {word}" in out


def test_missing_record_or_metric_fails(tmp_path, runs):
    code, out = run_check(expected_file(tmp_path, {"pose.AP": {"value": 50, "tolerance": 1}}, method="spctrl"), [runs])
    assert code == 1 and "no matching record" in out
    code, out = run_check(expected_file(tmp_path, {"det.AP75": {"value": 5, "tolerance": 1}}), [runs])
    assert code == 1 and "1 missing" in out


def test_where_tells_oracle_from_tiny_pose_model(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_record(a, "same-name", {"pose": {"AP": 0.0}}, pose_model="tiny://vitpose")
    write_record(b, "same-name", {"pose": {"AP": 100.0}}, pose_model="oracle", date="2025-01-01T00:00:00+00:00")
    spec = {"pose.AP": {"value": 100.0, "tolerance": 0.01, "direction": "higher"}}
    assert run_check(expected_file(tmp_path, spec, where={"evaluation.pose.model": "oracle"}), [a, b])[0] == 0
    # without `where`, the newest record (tiny ViTPose, AP 0) is the one compared
    code, out = run_check(expected_file(tmp_path, spec), [a, b])
    assert code == 1 and "newest of 2" in out


def test_status_by_hand():
    higher = MetricSpec("k", 10.0, 1.0, "higher")
    assert [status(higher, v) for v in (8.9, 9.0, 10.0, 11.0, 11.1, None)] == \
        ["regressed", "ok", "ok", "ok", "improved", "missing"]
    lower = MetricSpec("k", 10.0, 1.0, "lower")
    assert [status(lower, v) for v in (8.9, 9.0, 11.0, 11.1)] == ["improved", "ok", "ok", "regressed"]
    both = MetricSpec("k", 10.0, 1.0, "both")
    assert [status(both, v) for v in (8.9, 9.0, 11.0, 11.1)] == ["regressed", "ok", "ok", "regressed"]


@pytest.mark.parametrize("text,field", [
    ("expected: [{dataset: sample, method: controlnet, metrics: {pose.AP: {value: 1, tolerance: 1, direction: up}}}]",
     "expected[0].metrics.pose.AP.direction"),
    ("expected: [{dataset: sample, method: controlnet, metrics: {pose.AP: {value: 1}}}]", "expected[0].metrics.pose.AP.tolerance"),
    ("expected: [{dataset: sample, method: controlnet, metrics: {pose.AP: {value: high, tolerance: 1}}}]",
     "expected[0].metrics.pose.AP.value"),
    ("expected: [{dataset: sample, method: controlnet, metrics: {pose.AP: {value: 1, tolerance: -1}}}]",
     "expected[0].metrics.pose.AP.tolerance"),
    ("expected: [{method: controlnet, metrics: {pose.AP: 1}}]", "expected[0].dataset"),
    ("expected: [{dataset: sample, method: controlnet, metric: {}}]", "expected[0].metric"),
    ("expected: {}", "expected"),
    ("expected: [unclosed", "line"),
])
def test_malformed_expected_file_exits_2_with_one_line(tmp_path, runs, capsys, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert check_command(path, [str(runs)], console=Console(record=True)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(path) in err and field in err
    assert len(err.splitlines()) == 1


def test_missing_results_folder_is_a_usage_error(tmp_path, capsys):
    exp = expected_file(tmp_path, {"pose.AP": {"value": 1, "tolerance": 1}})
    assert check_command(exp, [str(tmp_path / "nowhere")], console=Console(record=True)) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_shipped_tiny_baseline_is_well_formed():
    expectations = read_expected(REPO / "results" / "expected" / "tiny-sample.yaml")
    # The run (canvas protocol) and its copy scored with the official protocol, told apart by the
    # protocol of their perturbed-oracle pose score (tests/test_ci_baseline.py runs and mutates them).
    key = "evaluation.pose@perturbed-oracle-4.protocol"
    assert [e.where for e in expectations] == [{key: "canvas"}, {key: "official"}]
    for e in expectations:
        ap = {m.key: m for m in e.metrics}["pose@perturbed-oracle-4.AP"]
        assert 0 < ap.value < 100 and ap.direction == "both" and ap.tolerance <= 0.01


def test_read_expected_defaults(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("defaults: {tolerance: 0.25, direction: lower}\n"
                    "expected: [{dataset: ap10k, method: spctrl, metrics: {fid.fid: 18.5}}]\n")
    (exp,) = read_expected(path)
    assert exp.match == {"dataset": "ap10k", "method": "spctrl", "variant": None}
    assert exp.metrics == (MetricSpec("fid.fid", 18.5, 0.25, "lower"),)
    path.write_text("defaults: {tolerance: 1, slack: 2}\nexpected: [{dataset: a, method: b, metrics: {x: 1}}]\n")
    with pytest.raises(SpbenchError, match="defaults.slack"):
        read_expected(path)
