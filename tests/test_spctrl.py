"""SP-Ctrl end to end: the model, its checkpoints (ours and the official format), the method and
its variants on the shipped sample with tiny models."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from helpers import generate_run, run_pixels as pixels, wake_up
from spbench.cli import app
from spbench.conditions import render_index_map
from spbench.config import load_profile, resolve
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.files import read_jsonl
from spbench.generation import engine
from spbench.methods.spctrl import SPCtrlMethod
from spbench.models.keypoint_tokens import LEARNED_EMBEDS, save_learned_embeds
from spbench.models.spctrl_checkpoint import load_spctrl_checkpoint
from spbench.models.spctrl import SPCtrlControlNetModel
from spbench.models.stable_diffusion import build_tiny_sd
from spbench.run.folder import RunFolder
from spbench.run.requests import MethodContext
from spbench.schemas import AP10K

SPLIT = load_split("sample").limit(2)


def config(variant=None, checkpoint=None, options=(), split="ap10k", samples=1):
    flags = {"method.name": "spctrl", "method.variant": variant, "method.checkpoint": checkpoint,
             "dataset.split": split, "generation.steps": 2, "generation.samples": samples}
    return resolve(load_profile("tiny"), "ap10k", flags, [f"method.options.{o}" for o in options])


def generate(path, method, split=SPLIT) -> RunFolder:
    return generate_run(path, method, split, info={"models": method.identity()}, batch_size=4)[0]


class TrainedSPCtrl(SPCtrlMethod):
    """SP-Ctrl whose ControlNet and keypoint rows look trained (seeded), to save as a checkpoint."""

    def load(self):
        super().load()
        wake_up(self.model, seed=1)
        weight = self.sd.text_encoder.get_input_embeddings().weight
        with torch.no_grad():
            weight[-17:] = torch.randn(17, weight.shape[1], generator=torch.Generator().manual_seed(2))


# -- the model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sd()


def test_forward_is_diffusers_controlnet_on_the_spr_map(tiny):
    from diffusers import ControlNetModel

    model = SPCtrlControlNetModel.from_unet(tiny.unet, cond_channels=3, skeleton_type="interp_kpt", seed=4).eval()
    wake_up(model, seed=0)
    # The reference: diffusers' own ControlNet with the same weights, fed the mask-loop SPR map.
    plain = ControlNetModel.from_unet(tiny.unet, conditioning_channels=3).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("spatext_embedding.")}
    plain.load_state_dict(state)
    index = torch.from_numpy(render_index_map(SPLIT.samples[1], engine.plan_requests(SPLIT, config()["generation"])[1].transform))
    index = index[None].float()
    args = (torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), 10,
            torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        ours = model(*args, controlnet_cond=index[:, None], return_dict=False)
        ref = plain(*args, controlnet_cond=model.spatext_embedding.forward_masked(index.long()), return_dict=False)
    assert ours[1].abs().max() > 0  # the ControlNet really outputs something
    for a, b in zip([*ours[0], ours[1]], [*ref[0], ref[1]]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # A map that went through image preprocessing (values / 255) is refused.
    with pytest.raises(ValueError, match="non-integer"):
        model(*args, controlnet_cond=index[:, None] / 255)


def test_save_and_from_pretrained_round_trip(tiny, tmp_path):
    e0 = torch.randn(17, 32)
    model = SPCtrlControlNetModel.from_unet(tiny.unet, cond_channels=8, init_embedding=e0, init_emb="text",
                                            skeleton_type="rand", learnable_e0=True, layer_version="sigmoid_version")
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert {k: saved[k] for k in saved if k.startswith("spatext_")} == {
        "spatext_cond_channels": 8, "spatext_init_emb": "text", "spatext_skeleton_type": "rand",
        "spatext_enable_learn_kpt": True, "spatext_enable_learn_sks": False, "spatext_detach_kpt_grad_from_sks": False,
        "spatext_layer_version": "sigmoid_version", "spatext_embedding_dim": 32, "spatext_limb_schema": "ap10k"}
    assert saved["conditioning_channels"] == 8
    for loaded in (SPCtrlControlNetModel.from_pretrained(tmp_path / "ckpt"), load_spctrl_checkpoint(str(tmp_path / "ckpt"))[0]):
        a, b = model.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert torch.equal(loaded.spatext_embedding.keypoint_emb, e0)
        public = lambda c: json.loads(json.dumps({k: v for k, v in c.items() if not k.startswith("_")}))  # noqa: E731
        assert public(loaded.config) == public(model.config)
        index = torch.randint(0, 70, (1, 16, 16))
        with torch.no_grad():
            assert torch.equal(loaded.spatext_embedding(index), model.eval().spatext_embedding(index))


# -- the method -----------------------------------------------------------------------------------

def test_the_index_map_reaches_the_spr_unchanged(tmp_path):
    seen = []

    class Spy(SPCtrlMethod):
        def load(self):
            super().load()
            self.model.spatext_embedding.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))

    spy = Spy(MethodContext(config()))
    generate(tmp_path / "run", spy)
    requests = engine.plan_requests(SPLIT, spy.context.config["generation"])
    expected = torch.stack([torch.from_numpy(render_index_map(r.sample, r.transform)).long() for r in requests])
    assert expected.shape == (2, 64, 64) and expected.max() >= 51
    # Every step sees the batch twice (classifier-free guidance): conditional and unconditional.
    assert len(seen) == 2 and all(torch.equal(s, torch.cat([expected, expected])) for s in seen)
    # The default variant: C' = 3, keypoint tokens on.
    assert spy.model.config.conditioning_channels == 3
    assert all("<left-eye>" in r["prompt"] for r in read_jsonl(RunFolder(tmp_path / "run").manifest_jsonl))


def pooled_name_embeddings() -> torch.Tensor:
    """CLIP's pooled output for the AP-10K keypoint names, straight from the tiny text encoder."""
    sd = build_tiny_sd()
    names = ["left eye", "right eye", "nose", "neck", "root of tail", "left shoulder", "left elbow",
             "left front paw", "right shoulder", "right elbow", "right front paw", "left hip", "left knee",
             "left back paw", "right hip", "right knee", "right back paw"]
    ids = sd.tokenizer(names, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        return sd.text_encoder(input_ids=ids).pooler_output


VARIANT_CHECKS = {
    "spr-only": lambda m: not m.kcl.enabled,
    "c1": lambda m: m.model.config.conditioning_channels == 1 and m.model.controlnet_cond_embedding.conv_in.in_channels == 1,
    "text-init": lambda m: torch.equal(m.model.spatext_embedding.keypoint_emb, pooled_name_embeddings()),
    "learnable-e0": lambda m: isinstance(m.model.spatext_embedding.keypoint_emb, torch.nn.Parameter),
    "skeleton-interp": lambda m: m.model.spatext_embedding.skeleton_type == "interp_kpt",
    "skeleton-learnable": lambda m: isinstance(m.model.spatext_embedding.skeleton_emb, torch.nn.Parameter),
}


@pytest.mark.parametrize("variant", list(VARIANT_CHECKS))
def test_every_variant_runs_on_the_sample(variant, tmp_path):
    assert set(VARIANT_CHECKS) == set(SPCtrlMethod.variants)
    method = SPCtrlMethod(MethodContext(config(variant)))
    run = generate(tmp_path / "run", method)
    assert len(pixels(run)) == 2 and VARIANT_CHECKS[variant](method)
    rows = read_jsonl(run.manifest_jsonl)
    with_tokens = variant != "spr-only"
    assert all(("<left-eye>" in r["prompt"]) == with_tokens and r["prompt_truncated"] is False for r in rows)
    identity = json.loads(run.run_json.read_text())["models"]
    assert identity["variant"] == variant and identity["options"] == method.options


def test_cli_run(tmp_path):
    args = ["run", "--method", "spctrl", "--dataset", "sample", "--profile", "tiny", "--steps", "2",
            "--limit", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "sample-ap10k-spctrl-tiny"
    record = json.loads((run / "result.json").read_text())
    assert record["method"]["name"] == "spctrl" and record["metrics"]["pose"]["AP"] is not None
    assert len(list((run / "images").glob("*.png"))) == 6
    condition = np.asarray(Image.open(run / "conditions" / f"{SPLIT.samples[0].sample_id}.png"))
    assert condition.ndim == 2 and condition.max() >= 51  # the index map, as rendered


def test_checkpoint_round_trip_gives_the_same_images(tmp_path):
    trained = TrainedSPCtrl(MethodContext(config()))
    first = generate(tmp_path / "trained", trained)
    folder = tmp_path / "ckpt"
    trained.model.save_pretrained(folder)
    save_learned_embeds(folder / LEARNED_EMBEDS, trained.sd.tokenizer, trained.sd.text_encoder, AP10K)

    reloaded = SPCtrlMethod(MethodContext(config(checkpoint=str(folder))))
    assert reloaded.identity()["keypoint_tokens"]["embeddings"] == str(folder / LEARNED_EMBEDS)
    again = generate(tmp_path / "reloaded", reloaded)
    a, b = pixels(first), pixels(again)
    assert a.keys() == b.keys() and len(a) == 2
    assert max(int(np.abs(a[k] - b[k]).max()) for k in a) <= 1
    # The trained weights matter: the untrained model draws other images.
    untrained = pixels(generate(tmp_path / "untrained", SPCtrlMethod(MethodContext(config()))))
    assert max(int(np.abs(a[k] - untrained[k]).max()) for k in a) > 1


def test_variant_and_options_must_agree(tmp_path, tiny):
    with pytest.raises(SpbenchError, match="variant 'c1' sets method.options.cond_channels=1"):
        SPCtrlMethod(MethodContext(config("c1", options=["cond_channels=3"])))
    with pytest.raises(SpbenchError, match="method.options.skeleton"):
        SPCtrlMethod(MethodContext(config(options=["skeleton=one"])))
    with pytest.raises(SpbenchError, match="init_emb='clip'"):
        SPCtrlMethod(MethodContext(config(options=["init_emb=clip"])))
    SPCtrlControlNetModel.from_unet(tiny.unet, cond_channels=3).save_pretrained(tmp_path / "c3")
    method = SPCtrlMethod(MethodContext(config("c1", checkpoint=str(tmp_path / "c3"), options=["allow_untrained_tokens=true"])))
    with pytest.raises(SpbenchError, match="conditioning_channels=3"):
        method.load()


# -- the official checkpoint format ---------------------------------------------------------------

def official_spr_state(channels: int, seed: int) -> dict:
    """SPR tensors under the documented official names, shapes from SPEC §2 (not from our module)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.1  # noqa: E731
    state = {"keypoint_emb": r(17, 768) * 10, "skeleton_emb": torch.ones(17, channels),
             "linear_in.weight": r(256, 768), "linear_in.bias": r(256),
             "linear_out.weight": r(channels, 256), "linear_out.bias": r(channels)}
    for block in (0, 2, 4):
        for j in (0, 3):
            state[f"mlps.{block}.ff.{j}.weight"], state[f"mlps.{block}.ff.{j}.bias"] = r(256, 256), r(256)
    for norm in (1, 3, 5):
        state[f"mlps.{norm}.weight"], state[f"mlps.{norm}.bias"] = 1 + r(256), r(256)
    return {"spatext_embedding." + k: v for k, v in state.items()}


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory, tiny):
    from diffusers import ControlNetModel

    folder = tmp_path_factory.mktemp("official") / "sp-ctrl-humanart"
    folder.mkdir()
    plain = ControlNetModel.from_unet(tiny.unet, conditioning_channels=3)
    wake_up(plain, seed=3)
    cfg = {k: v for k, v in plain.config.items() if not k.startswith("_")}
    cfg.update({"_class_name": "SpaTextControlNetModel", "_diffusers_version": "0.25.0",
                "spatext_init_emb": "/dat03/someone/kptname_emb.bin", "spatext_skeleton_type": "one",
                "spatext_enable_learn_kpt": False, "spatext_enable_learn_sks": False,
                "spatext_detach_kpt_grad_from_sks": False, "spatext_layer_version": None})
    (folder / "config.json").write_text(json.dumps(cfg))
    state = {**plain.state_dict(), **official_spr_state(3, seed=5)}
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    g = torch.Generator().manual_seed(6)
    from spbench.schemas import COCO17

    torch.save({t: torch.randn(32, generator=g) for t in COCO17.tokens}, folder / LEARNED_EMBEDS)
    return folder, state


def test_official_folder_loads_and_generates(official_folder, tmp_path):
    from test_spr import g_by_hand

    folder, state = official_folder
    model, learned = load_spctrl_checkpoint(str(folder))
    assert learned == str(folder / LEARNED_EMBEDS) and model.config.spatext_cond_channels == 3
    spr_state = {k[len("spatext_embedding."):]: v for k, v in state.items() if k.startswith("spatext_embedding.")}
    with torch.no_grad():
        torch.testing.assert_close(model.spatext_embedding.keypoint_embeddings(), g_by_hand(spr_state))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    split = load_split("sample", "humanart").limit(2)
    method = SPCtrlMethod(MethodContext(config(checkpoint=str(folder), split="humanart")))
    run = generate(tmp_path / "run", method, split)
    assert len(pixels(run)) == 2
    # Human-Art: COCO-17 tokens after the caption, in the official format.
    prompt = read_jsonl(run.manifest_jsonl)[0]["prompt"]
    assert prompt.startswith(split.samples[0].prompt + " <<nose>, <left-eye>") and prompt.endswith("<right-ankle>>")
    rows = method.sd.text_encoder.get_input_embeddings().weight
    learned_rows = torch.load(folder / LEARNED_EMBEDS, weights_only=True)
    assert torch.equal(rows[method.sd.tokenizer.convert_tokens_to_ids("<nose>")], learned_rows["<nose>"])


def test_official_folder_with_a_missing_key_names_it(official_folder, tmp_path):
    folder, state = official_folder
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    damaged = {k: v for k, v in state.items() if k != "spatext_embedding.mlps.3.weight"}
    damaged["spatext_embedding.spatext_init_emb"] = torch.zeros(17, 768)  # the v0 layer's extra buffer
    torch.save(damaged, broken / "diffusion_pytorch_model.bin")
    with pytest.raises(SpbenchError) as e:
        load_spctrl_checkpoint(str(broken))
    msg = str(e.value)
    assert "missing keys spatext_embedding.mlps.3.weight" in msg and "unexpected keys spatext_embedding.spatext_init_emb" in msg
    assert str(broken / "diffusion_pytorch_model.bin") in msg and "\n" not in msg


def test_plain_controlnet_folders_stay_with_the_controlnet_method(tiny, tmp_path):
    from diffusers import ControlNetModel

    from spbench.models.controlnet import load_controlnet

    ControlNetModel.from_unet(tiny.unet).save_pretrained(tmp_path / "openpose")
    assert type(load_controlnet(str(tmp_path / "openpose"), tiny.unet)) is ControlNetModel
    with pytest.raises(SpbenchError, match="--method controlnet"):
        load_spctrl_checkpoint(str(tmp_path / "openpose"))
    with pytest.raises(SpbenchError, match="HF_HUB_OFFLINE"):
        load_spctrl_checkpoint("nobody/no-such-spctrl")
