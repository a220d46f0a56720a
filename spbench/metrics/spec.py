"""What each metric is, declared once: its scoring function, the headline key of its result, the
label it is shown under, which way is better, and how a value is written. The metric registry
(``METRICS``, :mod:`spbench.metrics.evaluate`), the paper tables, the report page, ``spbench
check`` and the CLI's result table all read it from here.

Imports nothing: the scoring function is a ``"module:function"`` string.
"""

from __future__ import annotations

from dataclasses import dataclass

HIGHER, LOWER = "higher", "lower"
ARROWS = {HIGHER: "↑", LOWER: "↓"}


@dataclass(frozen=True)
class MetricSpec:
    name: str       # the metric's name in --metrics and in a record's ``metrics``
    scorer: str     # "module:function" of its scoring function
    key: str        # the headline key of its result ("AP", "fid", ...)
    label: str      # how tables and the report name the headline
    direction: str  # HIGHER or LOWER is better
    fmt: str = "{:.2f}"
    # (label, key) rows of the CLI's result table, the headline first.
    rows: tuple[tuple[str, str], ...] = ()

    @property
    def arrow(self) -> str:
        return ARROWS[self.direction]

    @property
    def path(self) -> str:
        """The headline's dotted path below a record's ``metrics`` ("pose.AP")."""
        return f"{self.name}.{self.key}"

    def format(self, value) -> str:
        return "—" if value is None else self.fmt.format(value)


METRIC_SPECS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("pose", "spbench.metrics.pose_scoring:score_pose", "AP", "Pose mAP", HIGHER,
                   rows=(("pose AP", "AP"), ("pose AP50", "AP50"), ("pose AP75", "AP75"))),
        MetricSpec("clip", "spbench.metrics.clip_scoring:score_clip", "score", "CLIP-Score", HIGHER,
                   rows=(("CLIP-Score", "score"),)),
        MetricSpec("fid", "spbench.metrics.fid_scoring:score_fid", "fid", "FID", LOWER,
                   rows=(("FID", "fid"),)),
        MetricSpec("det", "spbench.metrics.detection_scoring:score_detection", "AP75", "Det AP.75", HIGHER,
                   rows=(("det AP75", "AP75"), ("det AP", "AP"), ("det AP50", "AP50"))),
        MetricSpec("diversity", "spbench.metrics.diversity_scoring:score_diversity", "lpips", "LPIPS diversity", HIGHER,
                   fmt="{:.3f}", rows=(("LPIPS diversity", "lpips"), ("Vendi (DINOv2)", "vendi"))),
        # HumanSD's protocol (--protocol humansd; spbench.metrics.humansd_protocol).
        MetricSpec("humansd-pose", "spbench.metrics.humansd_pose_scoring:score_humansd_pose", "AP", "AP (HumanSD)", HIGHER,
                   rows=(("HumanSD AP", "AP"), ("HumanSD AP(m)", "AP_m"), ("HumanSD AR", "AR"), ("HumanSD CAP", "CAP"),
                         ("HumanSD PCE ↓", "PCE"))),
        MetricSpec("humansd-fid", "spbench.metrics.humansd_quality_scoring:score_humansd_fid", "fid", "FID (HumanSD)",
                   LOWER, rows=(("HumanSD FID (64-d)", "fid"),)),
        MetricSpec("humansd-kid", "spbench.metrics.humansd_quality_scoring:score_humansd_kid", "kid", "KID (HumanSD)",
                   LOWER, fmt="{:.4f}", rows=(("HumanSD KID", "kid"), ("HumanSD KID x10", "kid_x10"))),
        MetricSpec("humansd-clip", "spbench.metrics.humansd_clip_scoring:score_humansd_clip", "score", "CLIPSIM (HumanSD)",
                   HIGHER, rows=(("HumanSD CLIPSIM", "score"),)),
        # Stable-Pose's version of it, which GRPose ships too (--protocol stable-pose).
        MetricSpec("stablepose-pose", "spbench.metrics.humansd_pose_scoring:score_stablepose_pose", "AP",
                   "AP (Stable-Pose)", HIGHER,
                   rows=(("Stable-Pose AP", "AP"), ("Stable-Pose AP(m)", "AP_m"), ("Stable-Pose AR", "AR"),
                         ("Stable-Pose CAP", "CAP"), ("Stable-Pose PCE ↓", "PCE"))),
        MetricSpec("stablepose-fid", "spbench.metrics.humansd_quality_scoring:score_stablepose_fid", "fid",
                   "FID (Stable-Pose)", LOWER, rows=(("Stable-Pose FID (64-d, scene mean)", "fid"),)),
        MetricSpec("stablepose-kid", "spbench.metrics.humansd_quality_scoring:score_stablepose_kid", "kid",
                   "KID (Stable-Pose)", LOWER, fmt="{:.4f}",
                   rows=(("Stable-Pose KID (scene mean)", "kid"), ("Stable-Pose KID x100", "kid_x100"))),
        MetricSpec("stablepose-clip", "spbench.metrics.humansd_clip_scoring:score_stablepose_clip", "score",
                   "CLIPSIM (Stable-Pose)", HIGHER, rows=(("Stable-Pose CLIPSIM", "score"),)),
    )
}


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``, or of the metric a diagnostic score is of (``pose@oracle``)."""
    return METRIC_SPECS[name.partition("@")[0]]
