"""KCL: the heatmap loss against hand-computed values, and the attention capture against
diffusers' own modules (same forward, probabilities recomputed from the layer's weights, Q
without gradient, processors restored)."""

import copy

import pytest
import torch

from spbench.errors import SpbenchError
from spbench.models.attention_capture import capture_cross_attention
from spbench.training.kcl_loss import heatmap_targets, kcl_loss, keypoint_token_positions, spatial_shape

# One 2×2 map per token (T = 4 tokens), written as [HW, T] with pixels in row-major order
# (0,0), (0,1), (1,0), (1,1). Token 2 stands for keypoint 1. All values lie in [0, 0.5].
MAP = torch.tensor([
    [0.0, 0.3, 0.5, 0.1],
    [0.2, 0.1, 0.1, 0.4],
    [0.1, 0.0, 0.2, 0.3],
    [0.5, 0.2, 0.0, 0.2],
])
# Heatmaps of K = 2 keypoints; keypoint 1 is the one token 2 stands for.
HEAT = torch.tensor([
    [[0.0, 0.0], [0.0, 0.0]],
    [[1.0, 0.0], [0.25, 0.0]],
])


def batch(timesteps, tokens_per_sample):
    """B samples with the same map and heatmaps; ``tokens_per_sample[b]`` says whether sample b
    has keypoint-1's token at position 2 (else it has no keypoint tokens)."""
    b = len(timesteps)
    maps = [MAP.expand(b, 4, 4).clone()]
    token_keypoint = torch.full((b, 4), -1)
    for i, has in enumerate(tokens_per_sample):
        if has:
            token_keypoint[i, 2] = 1
    return maps, token_keypoint, HEAT.expand(b, 2, 2, 2).clone(), torch.tensor(timesteps)


def test_paper_definition_by_hand():
    # Token 2's map (0.5, 0.1, 0.2, 0.0) vs keypoint 1's heatmap (1, 0, 0.25, 0):
    # squared errors 0.25, 0.01, 0.0025, 0 -> sum 0.2625 -> / (H'W' = 4) = 0.065625.
    maps, tk, heat, t = batch([300], [True])
    loss = kcl_loss(maps, tk, heat, t, latent_hw=(2, 2), definition="paper")
    assert loss.item() == pytest.approx(0.065625, abs=1e-7)
    # Sample 2 (t = 700) is outside 250..500: it counts 0; sample 3 has no tokens: not counted.
    maps, tk, heat, t = batch([300, 700, 400], [True, True, False])
    loss = kcl_loss(maps, tk, heat, t, latent_hw=(2, 2), definition="paper")
    assert loss.item() == pytest.approx(0.065625 / 2, abs=1e-7)


def test_official_definition_by_hand():
    # Min 0, max 0.5 over all tokens and pixels: normalised = 2 × map, so token 2 reads
    # (1.0, 0.2, 0.4, 0.0); against (1, 0, 0.25, 0): squared errors 0, 0.04, 0.0225, 0 (sum 0.0625).
    # Sample 2 (t = 700) adds 4 selected elements of weight 0: 0.0625 / 8.
    maps, tk, heat, t = batch([300, 700], [True, True])
    loss = kcl_loss(maps, tk, heat, t, latent_hw=(2, 2), definition="official", size=2)
    assert loss.item() == pytest.approx(0.0625 / 8, abs=1e-7)
    # The uint8 quirk turns the target into floor(255·H) clamped: (1, 0, 1, 0);
    # squared errors 0, 0.04, 0.36, 0 -> 0.4 / 8.
    loss = kcl_loss(maps, tk, heat, t, latent_hw=(2, 2), definition="official", size=2, uint8_target_quirk=True)
    assert loss.item() == pytest.approx(0.4 / 8, abs=1e-7)


def test_timestep_bounds_paper_inclusive_official_strict():
    for t_edge in (250, 500):
        maps, tk, heat, t = batch([t_edge], [True])
        assert kcl_loss(maps, tk, heat, t, (2, 2), "paper").item() == pytest.approx(0.065625, abs=1e-7)
        assert kcl_loss(maps, tk, heat, t, (2, 2), "official", size=2).item() == 0.0
    maps, tk, heat, t = batch([100], [True])
    assert kcl_loss(maps, tk, heat, t, (2, 2), "paper", timestep_range=(0, 250)).item() > 0


def test_no_keypoint_tokens_gives_none_and_no_maps_is_an_error():
    maps, tk, heat, t = batch([300], [False])
    assert kcl_loss(maps, tk, heat, t, (2, 2)) is None
    with pytest.raises(SpbenchError, match="no cross-attention maps"):
        kcl_loss([], tk, heat, t, (2, 2))


def test_official_resizes_to_64_and_targets_clamp():
    maps, tk, heat, t = batch([300], [True])
    heat = heat * 3.0  # two overlapping instances can exceed 1: the target is clamped
    assert heatmap_targets(heat).max().item() == 1.0
    loss = kcl_loss(maps, tk, heat, t, (2, 2), "official")  # 2×2 -> 64×64 (bilinear, align_corners)
    assert 0.0 < loss.item() < 1.0


def test_token_positions_and_map_shapes():
    ids = torch.tensor([[49406, 7, 500, 9, 501, 49407]])
    assert keypoint_token_positions(ids, [501, 500]).tolist() == [[-1, -1, 1, -1, 0, -1]]
    assert spatial_shape(16 * 16, (64, 64)) == (16, 16)
    assert spatial_shape(4 * 3, (8, 5)) == (4, 3)  # odd sizes round up, as stride-2 convolutions do
    with pytest.raises(SpbenchError):
        spatial_shape(7, (8, 8))


# -- attention capture on a real (tiny) ControlNet ------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    from diffusers import ControlNetModel

    from spbench.models.stable_diffusion import build_tiny_sd

    sd = build_tiny_sd()
    controlnet = ControlNetModel.from_unet(sd.unet)
    return sd, controlnet


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(2, 4, 8, 8, generator=g), timestep=torch.tensor([300, 400]),
                encoder_hidden_states=torch.randn(2, 77, 32, generator=g),
                controlnet_cond=torch.rand(2, 3, 64, 64, generator=g), return_dict=False)


def _attn2_inputs(model, name):
    """The hidden states and text states that reach ``name`` (a forward pre-hook records them)."""
    seen = {}
    module = model.get_submodule(name)
    handle = module.register_forward_pre_hook(lambda m, args, kwargs: seen.update(args=args, kwargs=kwargs), with_kwargs=True)
    return seen, handle


def test_capture_leaves_the_output_unchanged(tiny):
    _, controlnet = tiny
    reference = controlnet(**_inputs())
    with capture_cross_attention(controlnet) as store, store.record():
        out = controlnet(**_inputs())
        assert len(store) == 1
    for a, b in zip([*reference[0], reference[1]], [*out[0], out[1]], strict=True):
        assert torch.equal(a, b)


def test_capture_values(tiny):
    _, controlnet = tiny
    name = "down_blocks.2.attentions.0.transformer_blocks.0.attn2"
    attn = controlnet.get_submodule(name)
    seen, handle = _attn2_inputs(controlnet, name)
    try:
        with capture_cross_attention(controlnet) as store:
            with store.record():
                controlnet(**_inputs())
            maps = list(store.maps)
    finally:
        handle.remove()
    assert [n for n, _ in maps] == [name]
    probs = maps[0][1]
    hidden = seen["args"][0] if seen["args"] else seen["kwargs"]["hidden_states"]
    context = seen["kwargs"]["encoder_hidden_states"]
    # Independent reference: softmax(Q Kᵀ / √d) per head from the layer's weights, heads averaged.
    heads, d = attn.heads, attn.to_q.weight.shape[0] // attn.heads
    q = (hidden @ attn.to_q.weight.T).view(2, -1, heads, d).transpose(1, 2)
    k = (context @ attn.to_k.weight.T).view(2, -1, heads, d).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1).mean(dim=1)
    assert probs.shape == (2, 4, 77)  # 2×2 pixels in down_blocks.2 of the tiny model, 77 tokens
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4))


def test_blocks_and_source_are_configurable(tiny):
    from spbench.models.attention_capture import chosen_processors

    sd, _ = tiny
    names = chosen_processors(sd.unet.attn_processors, ("down_blocks.1", "up_blocks.3"), "attn2")
    assert names == ["down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor",
                     "up_blocks.3.attentions.0.transformer_blocks.0.attn2.processor",
                     "up_blocks.3.attentions.1.transformer_blocks.0.attn2.processor"]
    assert chosen_processors(sd.unet.attn_processors, ("down_blocks.2",), "attn1") == [
        "down_blocks.2.attentions.0.transformer_blocks.0.attn1.processor"]


def test_processors_are_restored_and_an_unknown_block_is_an_error(tiny):
    _, controlnet = tiny
    before = dict(controlnet.attn_processors)
    with capture_cross_attention(controlnet, ("down_blocks.2",)):
        during = controlnet.attn_processors
        changed = [k for k in before if during[k] is not before[k]]
        assert changed == ["down_blocks.2.attentions.0.transformer_blocks.0.attn2.processor"]
    after = controlnet.attn_processors
    assert all(after[k] is before[k] for k in before)
    with pytest.raises(SpbenchError, match="down_blocks.9"):
        with capture_cross_attention(controlnet, ("down_blocks.9",)):
            pass
    assert all(controlnet.attn_processors[k] is before[k] for k in before)


def test_heatmap_loss_reaches_keys_and_tokens_but_not_queries(tiny):
    """L_ht alone: gradient on the keypoint-token embedding and the captured layers' to_k, none on to_q.
    Control: the same loss on probabilities computed with Q attached does reach to_q."""
    from diffusers import ControlNetModel

    sd, _ = tiny
    controlnet = ControlNetModel.from_unet(sd.unet).train()
    text = copy.deepcopy(sd.text_encoder)
    embedding = text.get_input_embeddings()
    embedding.weight.requires_grad_(True)
    ids = sd.tokenizer(["a photo of dog paw"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    paw = sd.tokenizer.convert_tokens_to_ids("paw</w>")
    token_keypoint = keypoint_token_positions(ids, [paw])
    hidden = text(ids)[0]
    inputs = {**_inputs(), "encoder_hidden_states": hidden.expand(2, -1, -1), "timestep": torch.tensor([300, 300])}
    heat = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    with capture_cross_attention(controlnet) as store:
        with store.record():
            controlnet(**inputs)
        loss = kcl_loss(store.take(), token_keypoint.expand(2, -1), heat, inputs["timestep"], (8, 8))
    loss.backward()
    attn = controlnet.get_submodule("down_blocks.2.attentions.0.transformer_blocks.0.attn2")
    assert attn.to_q.weight.grad is None
    assert attn.to_k.weight.grad is not None and attn.to_k.weight.grad.abs().sum() > 0
    assert embedding.weight.grad[paw].abs().sum() > 0
    touched = [n for n, p in controlnet.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert touched == ["down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight"]

    # Control: Q attached (probabilities recomputed from the recorded inputs without no_grad).
    controlnet.zero_grad(set_to_none=True)
    seen, handle = _attn2_inputs(controlnet, "down_blocks.2.attentions.0.transformer_blocks.0.attn2")
    try:
        controlnet(**{**inputs, "encoder_hidden_states": inputs["encoder_hidden_states"].detach()})
    finally:
        handle.remove()
    h, c = seen["args"][0] if seen["args"] else seen["kwargs"]["hidden_states"], seen["kwargs"]["encoder_hidden_states"]
    q, k = attn.head_to_batch_dim(attn.to_q(h)), attn.head_to_batch_dim(attn.to_k(c))
    probs = attn.get_attention_scores(q, k).view(2, attn.heads, 4, 77).mean(1)
    kcl_loss([probs], token_keypoint.expand(2, -1), heat, inputs["timestep"], (8, 8)).backward()
    assert attn.to_q.weight.grad is not None and attn.to_q.weight.grad.abs().sum() > 0
