"""The report's diversity table: per run, the mean pairwise LPIPS and the DINOv2 Vendi score of
each prompt's k images, averaged over prompts (:mod:`spbench.metrics.diversity`), with their
spread over prompts. Empty when no run was scored for diversity."""

from __future__ import annotations

import html

from spbench.report.runs import RunView

NOTE = ("Diversity of the k images of each prompt, averaged over prompts: LPIPS is the mean distance over "
        "their pairs (0: identical images); Vendi is the effective number of distinct images among them "
        "(1: all alike, k: all different). Higher is more diverse; read it beside pose AP, since an image "
        "that ignores its condition is diverse too.")


def _fmt(value, spec: str) -> str:
    return "—" if value is None else spec.format(value)


def diversity_table(runs: list[RunView]) -> str:
    rows = []
    for r in runs:
        result = (r.record.data.get("metrics") or {}).get("diversity") if r.record else None
        if not isinstance(result, dict):
            continue
        cells = [html.escape(r.label) + (" †tiny" if r.tiny else ""),
                 html.escape(", ".join(str(k) for k in result.get("images_per_prompt") or [])),
                 str(result.get("num_prompts", "—")),
                 _fmt(result.get("lpips"), "{:.3f}") + (f' <span class="muted">± {result["lpips_std"]:.3f}</span>'
                                                       if result.get("lpips_std") is not None else ""),
                 _fmt(result.get("vendi"), "{:.3f}") + (f' <span class="muted">± {result["vendi_std"]:.3f}</span>'
                                                       if result.get("vendi_std") is not None else "")]
        if result.get("note"):
            cells[-1] += f'<br><span class="muted">{html.escape(result["note"])}</span>'
        rows.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i >= 1 else f"<td>{c}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    if not rows:
        return ""
    heads = ["run", "images per prompt", "prompts", "LPIPS diversity ↑ (± std over prompts)", "Vendi (DINOv2) ↑ (± std)"]
    return ("<h3>Diversity</h3>" + f'<p class="muted">{html.escape(NOTE)}</p>'
            + "<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>" + "".join(rows) + "</table>")
