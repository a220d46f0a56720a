"""Every run is a row (issue #15, item 2): runs outside the paper's rows (a user's method, an
imported run, a variant without a row) get rows of their own under the paper's tables, and
`spbench table` names each record it leaves out with the reason.

The records are written by the documented schema of ``result.json``; the expected cells are the
records' numbers written by hand with two decimals, and the paper tables are compared with the
output of the code before this section existed (``PAPER_TABLE_2_BEFORE``) and with the output for
the paper-row records alone."""

import json
from importlib.metadata import EntryPoint
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from helpers import spbench_in_process
from spbench.results.load import load_records
from spbench.tables.build import table_command
from spbench.tables.extra import build_extra, place_records
from spbench.tables.render import latex_escape

ROOT = Path(__file__).resolve().parents[1]
JAN, FEB, MAR = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"


def write_record(folder: Path, dataset: str, method: str, variant=None, split=None, metrics=None, tiny=False,
                 date=JAN, evaluation=None, departures=None, imported=False, version=1) -> Path:
    folder.mkdir(parents=True)
    record = {
        "record_version": version, "run": folder.name,
        "dataset": {"name": dataset, "split": split, "hash": "0"},
        "method": {"name": method, "variant": variant, **({"imported": True} if imported else {})},
        "tiny": tiny, "metrics": metrics if metrics is not None else {},
        "evaluation": evaluation or {},
        "departures": departures or [],
        "config": {"profile": {"name": "tiny" if tiny else "paper", "tiny": tiny}, "dataset": {"limit": None}},
        "provenance": {"date": date},
    }
    (folder / "result.json").write_text(json.dumps(record))
    return folder / "result.json"


def paper_row_records(a: Path) -> None:
    """Records of the paper's rows (the same as before this section existed)."""
    write_record(a / "cn-old", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 40.0}, "fid": {"fid": 21.0}})
    write_record(a / "cn-new", "ap10k", "controlnet", split="val-split1", metrics={"pose": {"AP": 41.5}}, date=FEB)
    write_record(a / "sp-ha", "humanart", "spctrl", split="validation", metrics={"pose": {"AP": 50.0}, "clip": {"score": 26.0}},
                 departures=["generation.steps=20 (paper: 50)"])


@pytest.fixture
def results(tmp_path) -> Path:
    a, b = tmp_path / "runs-a", tmp_path / "runs-b"
    paper_row_records(a)
    # A user's method: two runs of it (two folders), one of them twice (the newer copy wins).
    write_record(a / "mine", "ap10k", "my-method", split="val-split1",
                 metrics={"pose": {"AP": 47.126}, "fid": {"fid": 19.0}, "clip": {"score": 25.004}, "det": {"AP75": 23.0}})
    write_record(b / "mine", "ap10k", "my-method", split="val-split1", date=MAR,
                 metrics={"pose": {"AP": 48.004}, "fid": {"fid": 18.5}, "clip": {"score": 25.5}, "det": {"AP75": 24.0}})
    write_record(a / "mine-ckpt2", "ap10k", "my-method", split="val-split1", metrics={"pose": {"AP": 45.0}},
                 departures=["generation.guidance_scale=5.0 (paper: 7.5)"])
    # An imported run; a newer tiny record of the same folder name does not replace a full one.
    write_record(a / "imp", "humanart", "comfy-x", split="validation", metrics={"pose": {"AP": 33.3}, "clip": {"score": 27.1}},
                 imported=True)
    write_record(b / "imp", "humanart", "comfy-x", split="validation", metrics={"pose": {"AP": 1.0}}, tiny=True, date=MAR,
                 imported=True)
    # A tiny run on the shipped sample, and a variant that has a row only on another dataset.
    write_record(a / "tinyx", "sample", "text-only", split="ap10k", metrics={"pose": {"AP": 0.5}}, tiny=True)
    write_record(a / "spr-ha", "humanart", "spctrl", "spr-only", split="validation", metrics={"pose": {"AP": 48.0}})
    # Records no cell can show.
    write_record(a / "oracle", "ap10k", "my-method", split="val-split1",
                 metrics={"pose@oracle": {"AP": 100.0, "diagnostic": True}},
                 evaluation={"pose@oracle": {"model": "oracle", "diagnostic": True}})
    write_record(a / "invalid", "ap10k", "other-method", split="val-split1", metrics={"pose": {"AP": 12.0}},
                 evaluation={"pose": {"model": "vitpose-coco", "invalid": "AP-10K pose from a COCO-head model"}})
    write_record(a / "coco", "coco", "my-method", split="val", metrics={"pose": {"AP": 10.0}})
    write_record(a / "future", "ap10k", "my-method", split="val-split1", metrics={"pose": {"AP": 10.0}}, version=99)
    write_record(a / "unscored", "ap10k", "my-method", split="val-split1", metrics={})
    (a / "broken").mkdir()
    (a / "broken" / "result.json").write_text("{")
    return tmp_path


# Table 2 for paper_row_records() as `spbench table --table 2` printed it before the section of
# other runs existed (the code of this repository's previous commit; {a} is runs-a).
PAPER_TABLE_2_BEFORE = """\
**Table 2. Ablations of the proposed modules (AP-10K)** — Each cell: paper / ours (ours − paper); — where there is no number.

| Method | Pose mAP↑ | FID↓ | CLIP-Score↑ |
|:--|--:|--:|--:|
| ControlNet | 44.25 / 41.50 (-2.75) | 19.40 / 21.00 (+1.60) | 24.77 / — |
| + Spatial Pose | 52.85 / — | 19.67 / — | 24.62 / — |
| + KCL | 51.34 / — | 18.94 / — | 24.67* / — |
| Ours | 55.63 / — | 18.52 / — | 24.51* / — |

- Paper numbers: SP-Ctrl paper, ICCV 2025, Table 2.
- AP-10K / ControlNet: 2 records match; each cell uses the newest with that metric (full runs before tiny ones): {a}/cn-new/result.json, {a}/cn-old/result.json
- * CLIP-Score of + KCL is computed with the keypoint descriptions in place of the keypoint tokens (paper §4.4, Appendix §C).
- * CLIP-Score of Ours: the paper's tables say 24.51 (AP-10K); the paper summary lists 23.86. The table's number is used.
"""
SECTION = "**Runs outside the paper's rows**"


def paper_part(text: str) -> str:
    return text.split(SECTION)[0]


def quiet(*roots):
    return load_records(list(roots), warn=lambda m: None)


def test_paper_tables_are_unchanged_by_other_runs(results, tmp_path):
    a = results / "runs-a"
    every = table_command([str(a), str(results / "runs-b")], "2", "md")
    assert paper_part(every).rstrip("\n") == PAPER_TABLE_2_BEFORE.format(a=a).rstrip("\n")
    alone = tmp_path / "alone"
    paper_row_records(alone)
    for table, fmts in (("1", ("md", "latex")), ("2", ("md",)), ("3", ("md", "latex"))):
        for fmt in fmts:
            mixed = table_command([str(a), str(results / "runs-b")], table, fmt)
            before = table_command([str(alone)], table, fmt).replace(str(alone), str(a))
            before = before.replace(latex_escape(str(alone)), latex_escape(str(a)))  # paths in LaTeX notes
            assert mixed.startswith(before), (table, fmt)  # the paper's table, then the section
            assert mixed[len(before):].lstrip("\n").startswith(
                SECTION if fmt == "md" else "\\begin{table}[t]\n\\centering\n\\small\n\\caption{Runs outside the paper's rows")
    csv = table_command([str(a), str(results / "runs-b")], "1", "csv")
    assert csv == table_command([str(alone)], "1", "csv")
    text = table_command([str(a)], "1", "md")
    assert "| AP-10K | Real Image | 83.00 / — |" in text
    assert "|  | ControlNet | 44.25 / 41.50 (-2.75) | 19.40 / 21.00 (+1.60) | 24.77 / — | 24.35 / — |" in text
    assert "|  | Ours | 51.11 / 50.00¶settings (-1.11) | 29.30 / — | 26.30* / 26.00¶settings (-0.30) | 9.11 / — |" in text


def test_other_runs_have_rows_of_their_own(results):
    text = table_command([str(results / "runs-a"), str(results / "runs-b")], "all", "md")
    section = text.split(SECTION)[1]
    assert text.count(SECTION) == 1 and text.index(SECTION) > text.index("**Table 3.")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows == [
        "| Dataset | Method | Run | Pose mAP↑ | FID↓ | CLIP-Score↑ | Det AP.75↑ |",
        "| AP-10K | my-method | mine | 48.00 | 18.50 | 25.50 | 24.00 |",   # the newer copy of runs-b/mine
        "|  |  | mine-ckpt2 | 45.00¶settings | — | — | — |",
        "|  | text-only | tinyx | 0.50†tiny | — | — | — |",
        "| Human-Art | comfy-x (imported) | imp | 33.30 | — | 27.10 | — |",  # the full run, not the newer tiny one
        "|  | spctrl [spr-only] | spr-ha | 48.00 | — | — | — |",
    ]
    assert f"¶settings {results}/runs-a/mine-ckpt2/result.json: generation.guidance_scale=5.0 (paper: 7.5)" in section
    assert "tiny numbers are not results" in section
    assert "(imported): images generated by another tool and scored by spbench" in section
    assert "2 records match" in section  # each duplicated run says which records fill its cells
    # Table 2 shows AP-10K alone and three columns: so does its section.
    two = table_command([str(results / "runs-a")], "2", "md").split(SECTION)[1]
    assert "| Method | Run | Pose mAP↑ | FID↓ | CLIP-Score↑ |" in two
    assert "| my-method | mine | 47.13 | 19.00 | 25.00 |" in two and "comfy-x" not in two


def test_the_section_as_csv_and_latex(results):
    roots = [str(results / "runs-a"), str(results / "runs-b")]
    csv = pd.read_csv(StringIO(table_command(roots, "extra", "csv")))
    assert list(csv.columns[:3]) == ["Dataset", "Method", "Run"]
    mine = csv[csv["Run"] == "mine"].iloc[0]
    assert (mine["pose.AP ours"], mine["fid.fid ours"], mine["clip.score ours"], mine["det.AP75 ours"]) == pytest.approx(
        (48.004, 18.5, 25.5, 24.0))
    assert csv[csv["Run"] == "tinyx"].iloc[0]["pose.AP marker"] == "†tiny"
    assert csv[csv["Run"] == "mine-ckpt2"].iloc[0]["pose.AP marker"] == "¶settings"
    assert csv["pose.AP marker"].isna().sum() == 3  # no marker on the other rows
    assert csv[csv["Run"] == "imp"].iloc[0]["Method"] == "comfy-x (imported)"
    assert not any("paper" in c for c in csv.columns)
    tex = table_command(roots, "extra", "latex")
    assert r"my-method & mine & 48.00 & 18.50 & 25.50 & 24.00 \\" in tex
    assert r"0.50\textsuperscript{\dag}tiny" in tex
    df = build_extra(place_records(quiet(*roots)))
    assert df.loc[("Human-Art", "comfy-x (imported)", "imp"), ("Pose mAP↑", "ours")] == pytest.approx(33.3)


def test_every_skipped_record_is_named_with_its_reason(results):
    a, b = results / "runs-a", results / "runs-b"
    done = spbench_in_process("table", "--results", a, "--results", b)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "skipping" in line]
    reasons = {Path(line.split("skipping ")[1].split(": ")[0]).relative_to(results).parent.as_posix(): line for line in lines}
    assert len(reasons) == len(lines)  # one line each
    assert sorted(reasons) == ["runs-a/broken", "runs-a/coco", "runs-a/future", "runs-a/invalid", "runs-a/mine",
                               "runs-a/oracle", "runs-a/unscored", "runs-b/imp"]
    assert "not readable JSON" in reasons["runs-a/broken"]
    assert "dataset coco is in none of the paper's tables (AP-10K, Human-Art)" in reasons["runs-a/coco"]
    assert "record_version 99 is newer" in reasons["runs-a/future"]
    assert "pose.AP is marked invalid: AP-10K pose from a COCO-head model" in reasons["runs-a/invalid"]
    assert "only diagnostic scores (pose@oracle)" in reasons["runs-a/oracle"]
    assert "no metrics yet" in reasons["runs-a/unscored"]
    assert f"superseded by {b}/mine/result.json" in reasons["runs-a/mine"]
    assert f"superseded by {a}/imp/result.json" in reasons["runs-b/imp"]
    # Table 2 alone: records of Table 1's Human-Art rows and Human-Art runs are not shown, and say so.
    two = spbench_in_process("table", "--results", a, "--table", "2")
    assert f"skipping {a}/sp-ha/result.json: its row (Human-Art / Ours) is in Tables 1, humansd, stable-pose, not shown" in two.stderr
    assert f"skipping {a}/imp/result.json: dataset Human-Art is not in the table shown (Table 2)" in two.stderr
    # A CSV of one paper table says where the other runs are.
    csv = spbench_in_process("table", "--results", a, "--table", "1", "--format", "csv")
    assert "--table extra --format csv lists them" in csv.stderr and "my-method" not in csv.stdout


def test_no_section_without_other_runs(tmp_path):
    paper_row_records(tmp_path)
    done = spbench_in_process("table", "--results", tmp_path)
    assert done.returncode == 0 and SECTION not in done.stdout and "skipping" not in done.stderr
    alone = spbench_in_process("table", "--results", tmp_path, "--table", "extra")
    assert f"{SECTION} — none." in alone.stdout and "**Table" not in alone.stdout


def test_a_user_method_from_an_entry_point_is_a_row(tmp_path, monkeypatch):
    """A plug-in registered under the ``spbench.methods`` entry point, run by `spbench run`, then
    `spbench table`: its run is a row of the section, with the record's numbers and †tiny."""
    import spbench.registry

    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "my_plugin.py").write_text(
        "from examples.text_only import TextOnlySD\n\n\n"
        "class MyMethod(TextOnlySD):\n    name = 'my-method'\n")
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(plugin))
    real = spbench.registry.entry_points

    def entry_points(group=None):
        found = list(real(group=group))
        if group == "spbench.methods":
            found.append(EntryPoint("my-method", "my_plugin:MyMethod", group))
        return found

    monkeypatch.setattr(spbench.registry, "entry_points", entry_points)
    runs = tmp_path / "runs"
    done = spbench_in_process("run", "--method", "my-method", "--dataset", "sample", "--profile", "tiny", "--steps", "1",
                              "--limit", "1", "--metrics", "pose", "--out", runs)
    assert done.returncode == 0, done.stderr
    (run,) = runs.iterdir()
    ap = json.loads((run / "result.json").read_text())["metrics"]["pose"]["AP"]
    table = spbench_in_process("table", "--results", runs)
    assert table.returncode == 0, table.stderr
    assert f"| AP-10K | my-method | {run.name} | {ap:.2f}†tiny | — | — | — |" in table.stdout
    assert "skipping" not in table.stderr
