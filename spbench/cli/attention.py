"""`spbench attention`: cross-attention maps of keypoint tokens over one generated image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spbench.cli.console import console


def _int_list(text: str | None) -> list[int] | None:
    from spbench.errors import SpbenchError

    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SpbenchError(f"--steps {text!r}: expected comma-separated step indices, e.g. 0,25,-1") from None


def attention(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `spbench run` or `generate`.")],
    sample: Annotated[str, typer.Option("--sample", help="Sample id (a name in the run's images/, before _k<k>.png).")],
    k: Annotated[int, typer.Option("--k", help="Which of the prompt's images.", min=0)] = 0,
    steps: Annotated[str, typer.Option("--steps", help="Denoising step indices to show, e.g. 0,25,-1 (default: first, middle, last).")] = "",
    blocks: Annotated[str, typer.Option("--blocks", help="UNet blocks whose cross-attention layers are averaged, e.g. down_blocks.2.")] = "down_blocks,mid_block,up_blocks",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write (default: RUN_DIR/attention/<sample>_k<k>.png).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
):
    """Draw what each keypoint token (and the category word) attends to: the image is generated again
    from the run's settings and seed, and a labelled grid (rows: steps and their mean; columns: the
    image, then each word's map over it) is written with a JSON of what it shows. `spbench report`
    embeds the grids it finds in a run's attention/ folder.

    Example:

        spbench attention spbench-runs/ap10k-val-split1-spctrl-paper --sample 000000001996 --steps 0,10,25,-1
    """
    from spbench.report.attention import write_attention

    chosen = tuple(b.strip() for b in blocks.split(",") if b.strip())
    path = write_attention(run_dir, sample, k, _int_list(steps), chosen, out, device)
    console.print(f"attention maps: {path}", highlight=False, soft_wrap=True)
