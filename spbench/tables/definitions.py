"""The paper's Tables 1–3 and Figs. 6–7, declared once as data.

A table is rows (a label and the (method, variant) whose records fill it) by columns (a metric
key below ``metrics`` in a result record, a label and a direction), per dataset. The paper's
numbers are not here: they are reference records in ``results/paper/*.json``, read by
:func:`paper_records`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.metrics.spec import METRIC_SPECS

DATASET_LABELS = {"ap10k": "AP-10K", "humanart": "Human-Art"}


@dataclass(frozen=True)
class Column:
    key: str        # below ``metrics`` in a record: "pose.AP"
    label: str
    direction: str  # "↑" higher is better, "↓" lower is better

    @property
    def header(self) -> str:
        return f"{self.label}{self.direction}"

    @classmethod
    def of(cls, metric: str) -> Column:
        """The headline column of a metric, as its spec (spbench.metrics.spec) declares it."""
        spec = METRIC_SPECS[metric]
        return cls(spec.path, spec.label, spec.arrow)


@dataclass(frozen=True)
class Row:
    label: str
    method: str
    variant: str | None = None
    group: str | None = None              # Table 3's "Condition"
    datasets: tuple[str, ...] | None = None  # None: every dataset of the table
    quoted: bool = False                  # †: another paper's method, numbers quoted

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.method, self.variant)


@dataclass(frozen=True)
class TableDef:
    id: str
    title: str
    datasets: tuple[str, ...]
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    group_label: str | None = None  # header of Row.group, when rows are grouped
    paper_file: str | None = None   # its reference numbers in results/paper (None: table<id>.json)

    def rows_for(self, dataset: str) -> list[Row]:
        return [r for r in self.rows if r.datasets is None or dataset in r.datasets]


POSE = Column.of("pose")
FID = Column.of("fid")
CLIP = Column.of("clip")
DET = Column.of("det")
# Columns the paper does not have, shown after a table's own only when a record in it has them
# (spbench.tables.extra_columns): the diversity of each prompt's k images (no paper numbers).
EXTRA_COLUMNS = (Column.of("diversity"), Column("diversity.vendi", "Vendi (DINOv2)", Column.of("diversity").direction))
OURS = Row("Ours", "spctrl")

TABLES: dict[str, TableDef] = {
    "1": TableDef(
        "1", "Table 1. Pose-guided T2I methods on AP-10K and Human-Art",
        ("ap10k", "humanart"),
        (
            Row("Real Image", "real"),
            Row("T2I-Adapter", "t2i-adapter"),
            Row("ControlNet", "controlnet"),
            Row("HumanSD†", "humansd", datasets=("humanart",), quoted=True),
            Row("GRPose†", "grpose", datasets=("humanart",), quoted=True),
            OURS,
        ),
        (POSE, FID, CLIP, DET),
    ),
    "2": TableDef(
        "2", "Table 2. Ablations of the proposed modules (AP-10K)",
        ("ap10k",),
        (
            Row("ControlNet", "controlnet"),
            Row("+ Spatial Pose", "spctrl", "spr-only"),
            Row("+ KCL", "controlnet", "kcl"),
            OURS,
        ),
        (POSE, FID, CLIP),
    ),
    "3": TableDef(
        "3", "Table 3. Different conditional guidance (AP-10K)",
        ("ap10k",),
        (
            Row("ControlNet", "controlnet-mask", group="Mask"),
            Row("ControlNet", "controlnet-depth", group="Depth"),
            Row("ControlNet", "controlnet", group="Sparse Pose"),
            Row("Ours", "spctrl", group="Sparse Pose"),
        ),
        (POSE, FID, CLIP),
        group_label="Condition",
    ),
    # HumanSD's protocol on Human-Art (--protocol humansd, spbench.metrics.humansd_protocol), with the
    # numbers published under it (results/paper/humansd_protocol.json names the source of each).
    "humansd": TableDef(
        "humansd", "HumanSD protocol on Human-Art (AP, CAP, PCE, FID, KID, CLIPSIM as HumanSD's evaluation code)",
        ("humanart",),
        (
            Row("T2I-Adapter", "t2i-adapter"),
            Row("ControlNet", "controlnet"),
            Row("HumanSD†", "humansd", quoted=True),
            OURS,
        ),
        (Column("humansd-pose.AP", "AP", "↑"), Column("humansd-pose.AP_m", "AP(m)", "↑"),
         Column("humansd-pose.CAP", "CAP", "↑"), Column("humansd-pose.PCE", "PCE", "↓"),
         Column("humansd-fid.fid", "FID", "↓"), Column("humansd-kid.kid_x10", "KID×10", "↓"),
         Column("humansd-clip.score", "CLIPSIM", "↑")),
        paper_file="humansd_protocol.json",
    ),
    # Stable-Pose's version of that protocol (--protocol stable-pose), which GRPose's code ships too,
    # with GRPose's published numbers (results/paper/stable_pose_protocol.json names the source).
    "stable-pose": TableDef(
        "stable-pose", "Stable-Pose/GRPose protocol on Human-Art (HumanSD's metrics as Stable-Pose's and GRPose's "
                       "evaluation code runs them)",
        ("humanart",),
        (
            Row("T2I-Adapter", "t2i-adapter"),
            Row("ControlNet", "controlnet"),
            Row("HumanSD†", "humansd", quoted=True),
            Row("GRPose†", "grpose", quoted=True),
            OURS,
        ),
        (Column("stablepose-pose.AP", "AP", "↑"), Column("stablepose-pose.CAP", "CAP (SAP)", "↑"),
         Column("stablepose-pose.PCE", "PCE", "↓"), Column("stablepose-fid.fid", "FID", "↓"),
         Column("stablepose-kid.kid_x100", "KID×100", "↓"), Column("stablepose-clip.score", "CLIP-Score", "↑")),
        paper_file="stable_pose_protocol.json",
    ),
}

QUOTED_NOTE = "† additional pretrained pose estimators are required in training; the paper's numbers are quoted, spbench does not run these methods."


def get_table(table_id: str) -> TableDef:
    key = str(table_id).lower().removeprefix("table").strip()
    if key not in TABLES:
        raise SpbenchError(f"unknown table {table_id!r} (known: {', '.join(TABLES)})")
    return TABLES[key]


# -- Figures 6-7: each point is a (method, variant) whose records give its mAP ------------------


@dataclass(frozen=True)
class Point:
    id: str                       # key of the paper's value in figures.json
    label: str
    method: str
    variants: tuple[str | None, ...]  # records of the first variant found are used


@dataclass(frozen=True)
class Panel:
    title: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class FigureDef:
    id: str
    title: str
    kind: str           # "delta": each point minus the reference; "absolute": the values
    panels: tuple[Panel, ...]
    reference: tuple[str, str | None] | None = None  # (method, variant) of the delta's zero
    dataset: str = "ap10k"
    metric: Column = POSE


FIGURES: dict[str, FigureDef] = {
    "6": FigureDef(
        "6", "Fig. 6: spatial-pose representation (AP-10K): mAP minus SP-Ctrl's default", "delta",
        (
            Panel("(a) E0 initialisation", (
                Point("openpose-rgb", "OpenPose RGB", "controlnet", (None,)),
                Point("text-init", "text-init E0", "spctrl", ("text-init",)),
                Point("learnable-e0", "learnable E0", "spctrl", ("learnable-e0",)),
            )),
            Panel("(b) skeleton embedding", (
                Point("skeleton-interp", "interpolation", "spctrl", ("skeleton-interp",)),
                Point("skeleton-learnable", "learnable", "spctrl", ("skeleton-learnable",)),
            )),
            Panel("(c) channels C'", (
                Point("c1", "C' = 1", "spctrl", ("c1",)),
            )),
        ),
        reference=("spctrl", None),
    ),
    "7": FigureDef(
        "7", "Fig. 7: keypoint concept learning with OpenPose (AP-10K): pose mAP", "absolute",
        (
            Panel("(a) keypoint tokens and heatmap loss", (
                Point("openpose", "OpenPose", "controlnet", (None,)),
                Point("tokens-only", "+ tokens", "controlnet", ("kcl-tokens-only",)),
                Point("tokens-heatmap", "+ tokens + L_ht", "controlnet", ("kcl",)),
            )),
            Panel("(b) timesteps of L_ht", (
                Point("t0-250", "0-250", "controlnet", ("kcl-t0-250",)),
                Point("t250-500", "250-500", "controlnet", ("kcl-t250-500", "kcl")),
                Point("t500-750", "500-750", "controlnet", ("kcl-t500-750",)),
                Point("t750-999", "750-999", "controlnet", ("kcl-t750-999",)),
            )),
        ),
    ),
}


# -- the paper's numbers ----------------------------------------------------------------------


def paper_dir() -> Path:
    """``results/paper`` of the source tree, or the packaged copy (``spbench.paper_results``)."""
    here = Path(__file__).resolve().parents[2] / "results" / "paper"
    if here.is_dir():
        return here
    try:
        return Path(str(resources.files("spbench.paper_results")))
    except ModuleNotFoundError:
        raise SpbenchError(f"the paper's reference numbers are missing: expected {here}") from None


def load_paper_file(name: str) -> dict:
    path = paper_dir() / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SpbenchError(f"cannot read the paper's reference numbers {path}: {e}") from None


def paper_records(table_id: str) -> list[dict]:
    """The reference records of one table, each carrying its ``source`` (its own, else the file's)."""
    table = get_table(table_id)
    data = load_paper_file(table.paper_file or f"table{table.id}.json")
    return [{"source": data["source"], **r} for r in data["records"]]


def paper_figure_values(figure_id: str) -> dict[str, dict]:
    data = load_paper_file("figures.json")
    return data[f"fig{figure_id}"]["points"]
