"""The report's cross-species section: for each run under the cross-species protocol
(:mod:`spbench.data.cross_species`), the species pairs its samples use — the annotated pose's
species and family, and the species (and family) its prompt, the detector and CLIP name. Empty when
no run is cross-species."""

from __future__ import annotations

import html

from spbench.report.runs import RunView

NOTE = ("Cross-species protocol: each AP-10K pose is generated from a prompt naming a species of another family. "
        "Pose AP is scored against the condition pose; detection AP.75 and CLIP-Score against the prompted species.")


def cross_species_section(runs: list[RunView]) -> str:
    parts = []
    for r in runs:
        info = ((r.info.get("dataset") or {}).get("stats") or {}).get("cross_species")
        if not isinstance(info, dict):
            continue
        fam = info.get("families") or {}
        used = info.get("used") or info.get("pairs") or {}
        rows = "".join(f"<tr><td>{html.escape(pose)}</td><td>{html.escape(str(fam.get(pose, '')))}</td>"
                       f"<td>{html.escape(prompt)}</td><td>{html.escape(str(fam.get(prompt, '')))}</td></tr>"
                       for pose, prompt in sorted(used.items()))
        parts.append(f"<h4>{html.escape(r.label)}{' †tiny' if r.tiny else ''}</h4>"
                     f'<p class="muted">{html.escape(str(info.get("rule", "")))}</p>'
                     "<table><tr><th>pose species</th><th>its family</th><th>prompted species</th><th>its family</th></tr>"
                     + rows + "</table>")
    if not parts:
        return ""
    return "<h3>Cross-species pairs</h3>" + f'<p class="muted">{html.escape(NOTE)}</p>' + "".join(parts)
