"""Scoring a run's diversity (:mod:`spbench.metrics.diversity`): for each prompt, LPIPS between
every pair of its k images (``models.lpips``, :mod:`spbench.metrics.diversity_lpips`) and the Vendi
score of their DINOv2 embeddings (``models.dino``, :mod:`spbench.metrics.diversity_dino`).

A prompt's images must be scored together, so with several processes the work is shared by
prompt (every image of a prompt on one process), not by image as the other metrics share it.
"""

from __future__ import annotations

import os

import numpy as np

from spbench.metrics.diversity import DiversityEvaluator
from spbench.metrics.diversity_dino import TINY_DINO, DinoEmbedder
from spbench.metrics.diversity_lpips import TINY_LPIPS, backbone_file, load_lpips
from spbench.metrics.evaluate import ScoringContext
from spbench.metrics.model_specs import is_tiny


def diversity_settings(ctx: ScoringContext) -> dict:
    ev = ctx.config.get("evaluation", {})
    return {"batch_size": int(ev.get("diversity_batch_size") or 16)}


def check_diversity_models(config: dict) -> None:
    """Before any image is made: ``models.lpips`` names a backbone file that exists (or a tiny
    one) and ``models.dino`` is set (a one-line SpbenchError otherwise)."""
    from spbench.errors import SpbenchError

    models = config.get("models") or {}
    lpips = models.get("lpips")
    if not lpips:
        raise SpbenchError("no LPIPS backbone configured for the diversity metric: set models.lpips to alex, vgg, "
                           "squeeze or torchvision's weights file (--set models.lpips=/weights/alexnet-owt-7be5be79.pth)")
    if not is_tiny(os.fspath(lpips), TINY_LPIPS, "LPIPS network (models.lpips)"):
        backbone_file(os.fspath(lpips))
    dino = models.get("dino")
    if not dino:
        raise SpbenchError("no DINOv2 model configured for the diversity metric: set models.dino "
                           "(e.g. facebook/dinov2-base or a local folder)")
    is_tiny(os.fspath(dino), TINY_DINO, "DINOv2 model (models.dino)")


def prompt_share(ctx: ScoringContext, rows: list[dict]) -> list[dict]:
    """The manifest rows this process scores: ``rows`` in one process; with several, every image
    of the prompts (sample ids, sorted) that fall to this process in turn."""
    from accelerate.state import PartialState

    state = PartialState()
    if state.num_processes <= 1:
        return list(rows)
    manifest = ctx.run.read_manifest()
    ids = sorted({r["sample_id"] for r in manifest})
    mine = set(ids[state.process_index::state.num_processes])
    return [r for r in manifest if r["sample_id"] in mine]


def prompt_chunks(rows: list[dict], size: int) -> list[list[list[dict]]]:
    """Prompts (each its rows, sorted by k) gathered into chunks of about ``size`` images; a
    prompt is never split."""
    prompts: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["sample_id"], int(r["k"]))):
        prompts.setdefault(r["sample_id"], []).append(r)
    chunks, current, count = [], [], 0
    for group in prompts.values():
        if current and count + len(group) > size:
            chunks.append(current)
            current, count = [], 0
        current.append(group)
        count += len(group)
    if current:
        chunks.append(current)
    return chunks


def to_unit_tensor(image):
    """A PIL image as a float tensor [3, H, W] in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def pair_distances(lpips, images: list) -> dict[tuple[int, int], float]:
    """LPIPS of every pair (a, b), a < b, of ``images`` (one prompt's, same size), in one batch."""
    import torch

    pairs = [(a, b) for a in range(len(images)) for b in range(a + 1, len(images))]
    if not pairs:
        return {}
    tensors = [to_unit_tensor(im) for im in images]
    first = torch.stack([tensors[a] for a, _ in pairs])
    second = torch.stack([tensors[b] for _, b in pairs])
    return dict(zip(pairs, lpips.distances(first, second), strict=True))


def score_diversity(ctx: ScoringContext, rows: list[dict], progress=None) -> DiversityEvaluator:
    """Mean pairwise LPIPS and the DINOv2 Vendi score of each prompt's k images."""
    settings = diversity_settings(ctx)
    models = ctx.config["models"]
    check_diversity_models(ctx.config)
    lpips_spec, dino_spec = os.fspath(models["lpips"]), os.fspath(models["dino"])
    evaluator = DiversityEvaluator(lpips=lpips_spec, embedding=dino_spec)
    evaluator.description = {
        "model": dino_spec,
        "lpips": {"spec": lpips_spec},
        "score": "per prompt over its k images: mean LPIPS over the k(k-1)/2 pairs, and the Vendi score "
                 "exp(H(eigenvalues of K/k)) with K the cosine similarity of their DINOv2 embeddings; "
                 "each averaged over prompts with at least 2 images",
        "lpips_input": "generated canvas images, RGB in [0, 1] (torchmetrics normalize=True), not resized",
        "embedding": "Dinov2Model pooler_output (layer-normed class token) through the model's own image processor",
        "sharing": "by prompt: all images of a prompt on one process",
    }
    mine = prompt_share(ctx, rows)
    if not mine:
        return evaluator
    lpips = load_lpips(lpips_spec, device=ctx.device)
    embedder = DinoEmbedder.load(dino_spec, device=ctx.device, batch_size=settings["batch_size"])
    evaluator.description["lpips"] = {"spec": lpips_spec, "net": lpips.net, "backbone": lpips.backbone,
                                      "linear_layers": lpips.linear}
    evaluator.description["extra_models"] = {"lpips": lpips.backbone, "lpips_linear": lpips.linear}
    task = progress.add_task("scoring diversity", total=len(mine)) if progress else None
    for chunk in prompt_chunks(mine, settings["batch_size"]):
        flat = [r for group in chunk for r in group]
        images = ctx.load_images(flat)
        embeddings = embedder.embed(images)
        start = 0
        for group in chunk:
            own = images[start:start + len(group)]
            distances = pair_distances(lpips, own)
            ks = [int(r["k"]) for r in group]
            evaluator.update_prompt(group[0]["sample_id"], ks, embeddings[start:start + len(group)],
                                    {(ks[a], ks[b]): d for (a, b), d in distances.items()})
            start += len(group)
        if progress:
            progress.advance(task, len(flat))
    return evaluator
