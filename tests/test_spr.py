"""The SPR module against the official formulation: parameter names, the MLP, the mask loop."""

import pytest
import torch
import torch.nn.functional as F

from spbench.canvas import CanvasTransform
from spbench.conditions import render_index_map
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.models.spr import SpatialPoseRepresentation

# The official checkpoint's SPR parameter names (without the "spatext_embedding." prefix).
OFFICIAL_NAMES = (
    ["keypoint_emb", "skeleton_emb", "linear_in.weight", "linear_in.bias"]
    + [f"mlps.{i}.ff.{j}.{p}" for i in (0, 2, 4) for j in (0, 3) for p in ("weight", "bias")]
    + [f"mlps.{i}.{p}" for i in (1, 3, 5) for p in ("weight", "bias")]
    + ["linear_out.weight", "linear_out.bias"]
)
# The official code's AP-10K limb links (1-based keypoint ids), limb j = index value 51 + j.
OFFICIAL_LINKS = [(1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (4, 6), (6, 7), (7, 8), (4, 9), (9, 10),
                  (10, 11), (5, 12), (12, 13), (13, 14), (5, 15), (15, 16), (16, 17)]


def g_by_hand(state: dict, sigmoid: bool = False) -> torch.Tensor:
    """G(E0) written out from the parameter list (eval mode: dropout is the identity)."""
    x = F.linear(state["keypoint_emb"], state["linear_in.weight"], state["linear_in.bias"])
    for block, norm in ((0, 1), (2, 3), (4, 5)):
        x = F.linear(x, state[f"mlps.{block}.ff.0.weight"], state[f"mlps.{block}.ff.0.bias"])
        x = F.linear(F.gelu(x), state[f"mlps.{block}.ff.3.weight"], state[f"mlps.{block}.ff.3.bias"])
        x = F.layer_norm(x, (x.shape[-1],), state[f"mlps.{norm}.weight"], state[f"mlps.{norm}.bias"])
    x = F.linear(x, state["linear_out.weight"], state["linear_out.bias"])
    return torch.sigmoid(x) if sigmoid else x


def random_index_map(seed: int, b: int = 2, h: int = 24, w: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Every value a uint8 map can hold, so unused values (18..50, 68..255) are covered too.
    return torch.randint(0, 256, (b, h, w), generator=g)


def rendered_index_map() -> torch.Tensor:
    sample = load_split("sample").samples[1]  # two zebras
    transform = CanvasTransform.fit(sample.width, sample.height, 96, "stretch")
    return torch.from_numpy(render_index_map(sample, transform)).long()[None]


def test_parameter_names_and_shapes_are_the_official_ones():
    state = SpatialPoseRepresentation(3).state_dict()
    assert sorted(state) == sorted(OFFICIAL_NAMES)
    assert state["keypoint_emb"].shape == (17, 768) and state["skeleton_emb"].shape == (17, 3)
    assert state["linear_in.weight"].shape == (256, 768) and state["linear_out.weight"].shape == (3, 256)
    assert state["mlps.1.weight"].shape == (256,)


@pytest.mark.parametrize("skeleton_type", ["one", "interp_kpt"])
@pytest.mark.parametrize("channels", [1, 3, 8])
def test_gather_equals_the_official_mask_loop(skeleton_type, channels):
    spr = SpatialPoseRepresentation(channels, skeleton_type=skeleton_type, seed=channels).eval()
    rendered = rendered_index_map()
    assert {1, 51}.issubset(set(rendered.unique().tolist()))  # keypoints and limbs are drawn
    with torch.no_grad():
        for index in (random_index_map(channels), rendered):
            out = spr(index)
            assert out.shape == (index.shape[0], channels, *index.shape[1:])
            torch.testing.assert_close(out, spr.forward_masked(index), rtol=0, atol=1e-6)


def test_pixels_get_g_of_e0_and_the_skeleton_rows():
    spr = SpatialPoseRepresentation(3).eval()
    state = spr.state_dict()
    index = torch.tensor([[[0, 1, 17, 18], [50, 51, 67, 68]]])
    with torch.no_grad():
        out = spr(index)[0]
    g = g_by_hand(state)
    torch.testing.assert_close(out[:, 0, 1], g[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, 0, 2], g[16], rtol=0, atol=1e-6)
    assert torch.equal(out[:, 1, 1], torch.ones(3)) and torch.equal(out[:, 1, 2], torch.ones(3))
    for y, x in ((0, 0), (0, 3), (1, 0), (1, 3)):
        assert torch.equal(out[:, y, x], torch.zeros(3))


def test_interpolated_skeleton_is_the_mean_of_the_official_links():
    spr = SpatialPoseRepresentation(3, skeleton_type="interp_kpt").eval()
    g = g_by_hand(spr.state_dict())
    index = torch.arange(51, 68).view(1, 1, 17)
    with torch.no_grad():
        out = spr(index)[0, :, 0]  # [3, 17]
    expected = torch.stack([(g[a - 1] + g[b - 1]) / 2 for a, b in OFFICIAL_LINKS], dim=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_sigmoid_version_squashes_the_keypoint_rows():
    spr = SpatialPoseRepresentation(3, layer_version="sigmoid_version").eval()
    with torch.no_grad():
        torch.testing.assert_close(spr.keypoint_embeddings(), g_by_hand(spr.state_dict(), sigmoid=True))


def test_skeleton_types_zero_and_rand():
    zero = SpatialPoseRepresentation(2, skeleton_type="zero").state_dict()["skeleton_emb"]
    rand = SpatialPoseRepresentation(2, skeleton_type="rand").state_dict()["skeleton_emb"]
    assert torch.equal(zero, torch.zeros(17, 2)) and rand.std() > 0.1


def test_e0_is_fixed_or_learnable_and_seeded():
    fixed = SpatialPoseRepresentation(3, seed=5)
    fixed.requires_grad_(True)  # as a training script would: E0 must stay out of the optimiser
    names = {n for n, _ in fixed.named_parameters()}
    assert "keypoint_emb" not in names and "skeleton_emb" not in names and "linear_in.weight" in names
    assert not fixed.keypoint_emb.requires_grad
    assert torch.equal(fixed.keypoint_emb, torch.randn(17, 768, generator=torch.Generator().manual_seed(5)))
    again, other = SpatialPoseRepresentation(3, seed=5), SpatialPoseRepresentation(3, seed=6)
    assert all(torch.equal(a, b) for a, b in zip(fixed.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(fixed.state_dict()["linear_in.weight"], other.state_dict()["linear_in.weight"])

    learnable = SpatialPoseRepresentation(3, learnable_e0=True, learnable_skeleton=True)
    names = {n for n, _ in learnable.named_parameters()}
    assert {"keypoint_emb", "skeleton_emb"} <= names
    assert sorted(learnable.state_dict()) == sorted(OFFICIAL_NAMES)


def test_given_e0_of_any_width():
    e0 = torch.randn(17, 32)
    spr = SpatialPoseRepresentation(3, init_embedding=e0)
    assert torch.equal(spr.keypoint_emb, e0) and spr.linear_in.in_features == 32


@pytest.mark.parametrize("learnable_e0", [False, True])
def test_gradients_equal_the_mask_loop(learnable_e0):
    index = rendered_index_map()
    grads = []
    for forward in ("forward", "forward_masked"):
        # float64: both sum thousands of pixel gradients per row, in different orders.
        spr = SpatialPoseRepresentation(3, learnable_e0=learnable_e0, skeleton_type="interp_kpt", seed=1).eval().double()
        getattr(spr, forward)(index).pow(2).sum().backward()
        grads.append({n: p.grad for n, p in spr.named_parameters()})
    assert grads[0].keys() == grads[1].keys() and ("keypoint_emb" in grads[0]) == learnable_e0
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-9)


def test_detached_interpolation_sends_no_gradient_through_limbs():
    index = torch.full((1, 4, 4), 51)  # limb pixels only
    spr = SpatialPoseRepresentation(3, skeleton_type="interp_kpt", detach_kpt_grad_from_sks=True)
    spr(index).sum().backward()
    assert spr.linear_out.weight.grad is None or torch.count_nonzero(spr.linear_out.weight.grad) == 0


@pytest.mark.parametrize("kwargs, words", [
    ({"skeleton_type": "bones"}, ["bones", "interp_kpt"]),
    ({"skeleton_type": "interp_kpt", "learnable_skeleton": True}, ["interp_kpt", "learnable"]),
    ({"layer_version": "v2"}, ["v2", "sigmoid_version"]),
    ({"cond_channels": 0}, ["cond_channels"]),
])
def test_bad_settings_are_one_line_errors(kwargs, words):
    with pytest.raises(SpbenchError) as e:
        SpatialPoseRepresentation(**kwargs)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)
