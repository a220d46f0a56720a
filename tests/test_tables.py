"""Tables 1–3 and Figs. 6–7 against the paper's numbers typed from SPEC §4 and hand-computed
differences (never the renderer's own output)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from spbench.errors import SpbenchError
from spbench.results.load import load_records
from spbench.tables.build import table_command
from spbench.tables.definitions import FIGURES
from spbench.tables.figures import figure_values, render_figures
from spbench.tables.render import build_table, render

# SPEC §4, typed by hand: (pose mAP, FID, CLIP, det AP.75); None where the paper has "—".
TABLE1 = {
    ("AP-10K", "Real Image"): (83.00, None, 24.45, 50.81),
    ("AP-10K", "T2I-Adapter"): (48.16, 27.29, 25.52, 24.23),
    ("AP-10K", "ControlNet"): (44.25, 19.40, 24.77, 24.35),
    ("AP-10K", "Ours"): (55.63, 18.52, 24.51, 25.10),
    ("Human-Art", "Real Image"): (79.97, None, 26.87, 6.78),
    ("Human-Art", "T2I-Adapter"): (38.37, 40.01, 27.36, 6.78),
    ("Human-Art", "ControlNet"): (45.26, 26.69, 27.84, 8.18),
    ("Human-Art", "HumanSD†"): (49.92, 35.18, 27.35, 8.29),
    ("Human-Art", "GRPose†"): (50.93, 28.85, 27.95, 6.51),
    ("Human-Art", "Ours"): (51.11, 29.30, 26.30, 9.11),
}
TABLE2 = {"ControlNet": (44.25, 19.40, 24.77), "+ Spatial Pose": (52.85, 19.67, 24.62),
          "+ KCL": (51.34, 18.94, 24.67), "Ours": (55.63, 18.52, 24.51)}
TABLE3 = {("Mask", "ControlNet"): (26.74, 21.15, 24.39), ("Depth", "ControlNet"): (57.07, 19.85, 24.44),
          ("Sparse Pose", "ControlNet"): (44.25, 19.40, 24.77), ("Sparse Pose", "Ours"): (55.63, 18.52, 24.51)}
HEADERS4 = ("Pose mAP↑", "FID↓", "CLIP-Score↑", "Det AP.75↑")


def write_record(root: Path, name: str, dataset: str, method: str, variant=None, split=None, metrics=None,
                 tiny=False, date="2026-01-01T00:00:00+00:00", profile="paper", limit=None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    record = {
        "record_version": 1, "run": name,
        "dataset": {"name": dataset, "split": split, "hash": "0"},
        "method": {"name": method, "variant": variant},
        "tiny": tiny, "metrics": metrics or {},
        "config": {"profile": {"name": profile, "tiny": tiny}, "dataset": {"limit": limit}},
        "provenance": {"date": date},
    }
    (folder / "result.json").write_text(json.dumps(record))
    return folder / "result.json"


def cell(df, idx, header, field):
    return df.loc[idx, (header, field)]


def test_no_records_table1_is_the_paper():
    df = build_table("1", [])
    for idx, numbers in TABLE1.items():
        for header, expected in zip(HEADERS4, numbers):
            got = cell(df, idx, header, "paper")
            assert (math.isnan(got) if expected is None else got == pytest.approx(expected)), (idx, header)
            assert math.isnan(cell(df, idx, header, "ours"))
            assert math.isnan(cell(df, idx, header, "diff"))
    assert len(df) == len(TABLE1)


def test_no_records_tables_2_and_3_are_the_paper():
    df2 = build_table("2", [])
    for label, numbers in TABLE2.items():
        for header, expected in zip(HEADERS4, numbers):
            assert cell(df2, label, header, "paper") == pytest.approx(expected)
    assert list(df2.index) == list(TABLE2)
    df3 = build_table("3", [])
    for idx, numbers in TABLE3.items():
        for header, expected in zip(HEADERS4, numbers):
            assert cell(df3, idx, header, "paper") == pytest.approx(expected)


def test_markdown_without_records_prints_paper_numbers_and_notes():
    text = render("1", [], "md")
    assert "| AP-10K | Real Image | 83.00 / — | — / — | 24.45 / — | 50.81 / — |" in text
    assert "|  | GRPose† | 50.93 / — | 28.85 / — | 27.95 / — | 6.51 / — |" in text
    assert "24.51* / —" in text and "26.30* / —" in text  # the table's CLIP of Ours, with the note
    assert "23.86" in text and "25.94" in text            # ... which names the summary's numbers
    assert "SP-Ctrl paper, ICCV 2025, Table 1" in text
    assert "†tiny" not in text


def test_records_fill_their_cells_with_differences(tmp_path):
    write_record(tmp_path, "a", "ap10k", "controlnet", split="val-split1",
                 metrics={"pose": {"AP": 40.0}, "fid": {"fid": 21.0}, "clip": {"score": 25.0}, "det": {"AP75": 20.35}})
    write_record(tmp_path, "b", "ap10k", "controlnet", "kcl", split="val-split1", metrics={"pose": {"AP": 52.0}})
    write_record(tmp_path, "c", "ap10k", "spctrl", "spr-only", split="val-split1", metrics={"pose": {"AP": 50.0}})
    records = load_records([tmp_path])
    df = build_table("1", records)
    ours = ("AP-10K", "ControlNet")
    # hand-computed: ours − paper
    for header, o, d in zip(HEADERS4, (40.0, 21.0, 25.0, 20.35), (-4.25, 1.60, 0.23, -4.00)):
        assert cell(df, ours, header, "ours") == pytest.approx(o)
        assert cell(df, ours, header, "diff") == pytest.approx(d)
        assert cell(df, ours, header, "marker") == ""
    assert math.isnan(cell(df, ("Human-Art", "ControlNet"), "Pose mAP↑", "ours"))
    assert "44.25 / 40.00 (-4.25)" in render("1", records, "md")
    df2 = build_table("2", records)
    assert cell(df2, "+ KCL", "Pose mAP↑", "diff") == pytest.approx(52.0 - 51.34)
    assert cell(df2, "+ Spatial Pose", "Pose mAP↑", "diff") == pytest.approx(50.0 - 52.85)
    assert cell(df2, "ControlNet", "Pose mAP↑", "ours") == pytest.approx(40.0)  # not the kcl variant
    df3 = build_table("3", records)
    assert cell(df3, ("Sparse Pose", "ControlNet"), "FID↓", "diff") == pytest.approx(1.60)
    assert math.isnan(cell(df3, ("Mask", "ControlNet"), "FID↓", "ours"))


def test_tiny_sample_records_are_marked(tmp_path):
    write_record(tmp_path, "t", "sample", "spctrl", split="humanart", metrics={"pose": {"AP": 1.5}}, tiny=True, profile="tiny")
    df = build_table("1", load_records([tmp_path]))
    idx = ("Human-Art", "Ours")
    assert cell(df, idx, "Pose mAP↑", "ours") == pytest.approx(1.5)
    assert cell(df, idx, "Pose mAP↑", "diff") == pytest.approx(1.5 - 51.11)
    assert cell(df, idx, "Pose mAP↑", "marker") == "†tiny"
    assert math.isnan(cell(df, ("AP-10K", "Ours"), "Pose mAP↑", "ours"))  # the split picks the dataset
    text = render("1", load_records([tmp_path]), "md")
    assert "51.11 / 1.50†tiny (-49.61)" in text
    assert "tiny numbers are not results" in text


def test_newest_record_wins_and_full_runs_beat_tiny_ones(tmp_path):
    write_record(tmp_path, "old", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 30.0}}, date="2026-01-01T00:00:00+00:00")
    write_record(tmp_path, "new", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 31.0}}, date="2026-02-01T00:00:00+00:00")
    write_record(tmp_path, "tiny", "sample", "controlnet", split="ap10k", metrics={"pose": {"AP": 0.0}}, tiny=True,
                 date="2026-03-01T00:00:00+00:00")
    records = load_records([tmp_path])
    df = build_table("2", records)
    assert cell(df, "ControlNet", "Pose mAP↑", "ours") == pytest.approx(31.0)
    assert cell(df, "ControlNet", "Pose mAP↑", "marker") == ""
    text = render("2", records, "md")
    assert "3 records match" in text and str(tmp_path / "new" / "result.json") in text


def test_latex_and_csv(tmp_path):
    write_record(tmp_path, "a", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 40.0}})
    records = load_records([tmp_path])
    tex = render("3", records, "latex")
    assert r"\begin{tabular}{llccc}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"44.25 / 40.00 ($-$4.25)" in tex
    assert r"Pose mAP$\uparrow$" in tex and r"FID$\downarrow$" in tex
    from io import StringIO

    csv = pd.read_csv(StringIO(render("3", records, "csv")))
    row = csv[(csv["Condition"] == "Sparse Pose") & (csv["Method"] == "ControlNet")].iloc[0]
    assert row["pose.AP paper"] == pytest.approx(44.25)
    assert row["pose.AP ours"] == pytest.approx(40.0)
    assert row["pose.AP diff"] == pytest.approx(-4.25)
    assert csv[csv["Condition"] == "Mask"].iloc[0]["fid.fid paper"] == pytest.approx(21.15)


def test_malformed_records_are_skipped_with_a_warning(tmp_path):
    write_record(tmp_path, "good", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 40.0}})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text("{not json")
    (tmp_path / "nometrics").mkdir()
    (tmp_path / "nometrics" / "result.json").write_text(json.dumps({"dataset": {"name": "ap10k"}, "method": {"name": "x"}}))
    warnings = []
    records = load_records([tmp_path], warn=warnings.append)
    assert [r.path.parent.name for r in records] == ["good"]
    assert len(warnings) == 2
    assert any(str(tmp_path / "bad" / "result.json") in w for w in warnings)
    assert any("nometrics" in w and "missing metrics" in w for w in warnings)


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(SpbenchError, match="unknown table '4'"):
        render("4", [], "md")
    with pytest.raises(SpbenchError, match="unknown table format 'html'"):
        render("1", [], "html")
    with pytest.raises(SpbenchError, match="no such file or folder"):
        table_command([str(tmp_path / "nowhere")], "1", "md")
    with pytest.raises(SpbenchError, match="csv writes one table"):
        table_command([str(tmp_path)], "all", "csv")
    assert table_command([str(tmp_path)], "all", "md").count("**Table ") == 3


def _ap10k(tmp_path, name, method, variant, ap, tiny=False):
    write_record(tmp_path, name, "ap10k", method, variant, split="val-split1", metrics={"pose": {"AP": ap}}, tiny=tiny)


def test_figures_from_variant_records(tmp_path):
    _ap10k(tmp_path, "d", "spctrl", None, 55.00)
    _ap10k(tmp_path, "t", "spctrl", "text-init", 54.30)
    _ap10k(tmp_path, "s", "spctrl", "skeleton-learnable", 53.50)
    _ap10k(tmp_path, "k", "controlnet", "kcl-t0-250", 47.5)
    records = load_records([tmp_path])
    six = figure_values(FIGURES["6"], records)
    assert six["text-init"]["ours"] == pytest.approx(-0.70) and six["text-init"]["paper"] == pytest.approx(-0.88)
    assert six["skeleton-learnable"]["ours"] == pytest.approx(-1.50) and six["skeleton-learnable"]["paper"] == pytest.approx(-1.96)
    assert six["skeleton-interp"]["ours"] is None and six["skeleton-interp"]["paper"] == pytest.approx(-0.86)
    seven = figure_values(FIGURES["7"], records)
    assert seven["t0-250"]["ours"] == pytest.approx(47.5) and seven["t0-250"]["paper"] == pytest.approx(48)
    assert seven["t250-500"]["paper"] == pytest.approx(53) and seven["tokens-heatmap"]["paper"] == pytest.approx(51.34)
    paths = render_figures(records, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["fig6-spatial-pose.png", "fig7-keypoint-concepts.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 400


def test_no_figure_without_ablation_records(tmp_path):
    _ap10k(tmp_path, "d", "spctrl", None, 55.0)
    _ap10k(tmp_path, "c", "controlnet", None, 44.0)
    assert render_figures(load_records([tmp_path]), tmp_path / "figs") == []


def test_oracle_pose_records_are_not_results(tmp_path):
    path = write_record(tmp_path, "o", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 100.0}, "fid": {"fid": 20.0}})
    data = json.loads(path.read_text())
    data["evaluation"] = {"pose": {"model": "oracle"}}
    path.write_text(json.dumps(data))
    records = load_records([tmp_path])
    df = build_table("2", records)
    assert math.isnan(cell(df, "ControlNet", "Pose mAP↑", "ours"))
    assert cell(df, "ControlNet", "FID↓", "ours") == pytest.approx(20.0)  # its other metrics still count
    assert "oracle pose model" in render("2", records, "md")
