"""`spbench convert`: checkpoints from other toolkits turned into folders spbench loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spbench.cli.console import console
from spbench.errors import SpbenchError

convert_app = typer.Typer(help="Convert checkpoints from other toolkits into folders spbench loads.", no_args_is_help=True)


@convert_app.command("vitpose")
def convert_vitpose(
    checkpoint: Annotated[Path, typer.Argument(help="mmpose / ViTPose .pth checkpoint.")],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the transformers VitPoseForPoseEstimation.")],
    head: Annotated[Optional[str], typer.Option(help="ViTPose++: which dataset head to keep (coco, aic, mpii, ap10k, apt36k, wholebody, or an index).")] = None,
    image_size: Annotated[str, typer.Option(help="Input size HxW.")] = "256x192",
    num_keypoints: Annotated[Optional[int], typer.Option(help="Check the kept head predicts this many keypoints.")] = None,
    num_heads: Annotated[Optional[int], typer.Option(help="Attention heads, for backbones other than ViTPose-S/B/L/H.")] = None,
):
    """Turn an mmpose ViTPose / ViTPose++ checkpoint into a folder `--pose-model` loads (safe unpickling only).

    Examples:

        spbench convert vitpose vitpose+_huge.pth weights/vitpose-plus-huge-ap10k --head ap10k

        spbench convert vitpose td-hm_ViTPose-huge_8xb64-210e_humanart-256x192.pth weights/vitpose-huge-humanart
    """
    from spbench.models.convert_vitpose import convert_mmpose_vitpose

    try:
        h, w = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        raise SpbenchError(f"--image-size {image_size!r}: expected HxW, e.g. 256x192") from None
    head_arg = int(head) if head is not None and head.isdigit() else head
    summary = convert_mmpose_vitpose(str(checkpoint), str(out_dir), head=head_arg, num_keypoints=num_keypoints,
                                     image_size=(h, w), num_heads=num_heads)
    console.print(f"wrote {out_dir}: {summary.get('num_keypoints')} keypoints, {summary.get('num_experts')} expert(s)"
                  + (f"; score with dataset_index {summary['dataset_index']}" if summary.get("dataset_index") is not None else ""))
