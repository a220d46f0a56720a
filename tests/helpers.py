"""Hand-built samples for tests that must not depend on the dataset readers."""

import torch

from spbench.data.records import KPT_PLACEHOLDER, Instance, Sample, Split

# A side-view quadruped in AP-10K order on a 200x100 image (x, y, v).
QUADRUPED = (
    (40, 30, 2), (44, 30, 2), (30, 36, 2), (60, 40, 2), (150, 40, 2),
    (70, 55, 2), (70, 70, 2), (70, 90, 2), (78, 55, 2), (78, 70, 1), (78, 90, 2),
    (140, 55, 2), (140, 70, 2), (140, 90, 2), (148, 55, 2), (148, 70, 0), (148, 90, 2),
)


def quadruped_sample(i: int, dx: float = 0.0, width: int = 200, height: int = 100) -> Sample:
    kpts = tuple((x + dx, y, v) for x, y, v in QUADRUPED)
    inst = Instance(category="dog", bbox=(25 + dx, 25, 130, 70), area=130 * 70, keypoints=kpts)
    return Sample(
        sample_id=f"test-{i:03d}", image_id=i, file=f"{i}.jpg", width=width, height=height,
        schema="ap10k", instances=(inst,), prompt_template=f"A good photo of dog{KPT_PLACEHOLDER}", scene="grass",
    )


def quadruped_split(n: int = 3) -> Split:
    return Split("test", "hand", tuple(quadruped_sample(i, dx=5.0 * i) for i in range(n)))


def wake_up(model: torch.nn.Module, seed: int) -> None:
    """Make a from-scratch ControlNet influence the UNet, as training would: its zero-initialised
    output convolutions get random weights (seeded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
