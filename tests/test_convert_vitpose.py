"""`convert_mmpose_vitpose`: a transformers ViTPose, written out under mmpose's names (by hand, below),
must come back from the converted folder giving the very same heatmaps."""

import io
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from spbench.errors import SpbenchError
from spbench.models.convert_vitpose import convert_mmpose_vitpose

H, W = 64, 48  # 4 x 3 patches of 16 pixels
LAYERS = 2


def tiny_vitpose(num_keypoints: int, *, simple: bool = False, experts: int = 1, seed: int = 0):
    """A tiny transformers ViTPose with every parameter and statistic random (LayerNorm and
    BatchNorm included), so that any misplaced tensor changes the output."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    backbone = VitPoseBackboneConfig(
        image_size=[H, W], patch_size=[16, 16], hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
        mlp_ratio=2, num_experts=experts, part_features=8 if experts > 1 else 0, layer_norm_eps=1e-6,
        out_indices=[LAYERS],
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=num_keypoints, use_simple_decoder=simple)
    model = VitPoseForPoseEstimation(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return model


# -- mmpose's names, written independently of the converter ---------------------------------------

NAMES = {  # mmpose name pieces per layout
    "vitpose": {"block": "blocks", "ln1": "norm1", "ln2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
                "final": "last_norm", "patch": "patch_embed.proj"},
    "mmpose": {"block": "layers", "ln1": "ln1", "ln2": "ln2", "fc1": "ffn.layers.0.0", "fc2": "ffn.layers.1",
               "final": "ln1", "patch": "patch_embed.projection"},
}


def backbone_as_mmpose(model, layout: str, pos_embed) -> dict:
    sd, n, out = model.state_dict(), NAMES[layout], {}
    experts = model.config.backbone_config.num_experts
    for wb in ("weight", "bias"):
        out[f"backbone.{n['patch']}.{wb}"] = sd[f"backbone.embeddings.patch_embeddings.projection.{wb}"]
        out[f"backbone.{n['final']}.{wb}"] = sd[f"backbone.layernorm.{wb}"]
        for i in range(model.config.backbone_config.num_hidden_layers):
            hf, mm = f"backbone.encoder.layer.{i}.", f"backbone.{n['block']}.{i}."
            out[mm + f"{n['ln1']}.{wb}"] = sd[hf + f"layernorm_before.{wb}"]
            out[mm + f"{n['ln2']}.{wb}"] = sd[hf + f"layernorm_after.{wb}"]
            out[mm + f"attn.qkv.{wb}"] = torch.cat(
                [sd[hf + f"attention.attention.{p}.{wb}"] for p in ("query", "key", "value")])
            out[mm + f"attn.proj.{wb}"] = sd[hf + f"attention.output.dense.{wb}"]
            out[mm + f"{n['fc1']}.{wb}"] = sd[hf + f"mlp.fc1.{wb}"]
            out[mm + f"{n['fc2']}.{wb}"] = sd[hf + f"mlp.fc2.{wb}"]
            for e in range(experts if experts > 1 else 0):  # ViTPose++ (official repository layout)
                out[mm + f"mlp.experts.{e}.{wb}"] = sd[hf + f"mlp.experts.{e}.{wb}"]
    out["backbone.pos_embed"] = pos_embed
    return out


def head_as_mmpose(model, prefix: str) -> dict:
    sd = model.state_dict()
    pairs = [("final_layer", "conv")]
    if not model.config.use_simple_decoder:
        pairs += [("deconv_layers.0", "deconv1"), ("deconv_layers.1", "batchnorm1"),
                  ("deconv_layers.3", "deconv2"), ("deconv_layers.4", "batchnorm2")]
    out = {}
    for mm, hf in pairs:
        for key, value in sd.items():
            if key.startswith(f"head.{hf}."):
                out[prefix + mm + key[len(f"head.{hf}"):]] = value
    return out


def save_mmpose(path, state: dict, meta: dict | None = None) -> str:
    torch.save({"meta": meta or {}, "state_dict": OrderedDict((k, v.clone()) for k, v in state.items())}, path)
    return str(path)


def mmpose_meta(num_keypoints: int) -> dict:
    """What mmengine writes into ``meta``: numpy arrays, numpy scalars, the config text."""
    return {
        "epoch": 210, "iter": 2000, "seed": 0, "mmengine_version": "0.7.3", "time": "20230530_101010",
        "cfg": "backbone=dict(type='mmcls.VisionTransformer', with_cls_token=False, output_cls_token=False)",
        "dataset_meta": {
            "dataset_name": "humanart", "num_keypoints": num_keypoints,
            "keypoint_id2name": {i: f"point_{i}" for i in range(num_keypoints)},
            "flip_indices": list(range(num_keypoints)),
            "keypoint_colors": np.full((num_keypoints, 3), 255, dtype=np.uint8),
            "sigmas": np.linspace(0.02, 0.1, num_keypoints, dtype=np.float32),
            "dataset_keypoint_weights": np.ones(num_keypoints, dtype=np.float64),
            "skeleton_links": [(0, 1)], "names": np.array(["a", "bc"]),
        },
        "hook_msgs": {"best_score": np.float64(0.75), "best_epoch": np.int64(200)},
    }


def as_numpy1_pickle(path) -> None:
    """Rewrite a torch.save file as numpy 1.x pickles it (``numpy.core.multiarray``), as the published
    checkpoints were written."""
    with zipfile.ZipFile(path) as zin:
        records = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for name, data in records:
            if name.endswith("/data.pkl"):
                data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
                assert b"numpy.core.multiarray\n_reconstruct" in data
            zout.writestr(name, data)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def heatmaps(model, dataset_index=None, seed=1):
    pixels = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(seed))
    kwargs = {} if dataset_index is None else {"dataset_index": torch.full((2,), dataset_index)}
    with torch.no_grad():
        return model(pixels, **kwargs).heatmaps


def load(folder):
    from transformers import VitPoseForPoseEstimation

    return VitPoseForPoseEstimation.from_pretrained(folder).eval()


# -- conversions match the original --------------------------------------------------------------

@pytest.mark.parametrize("cls_row", [True, False], ids=["mmcls-with-cls-row", "mmpretrain-no-cls-row"])
def test_mmpose1_layout_with_classic_head_gives_the_original_heatmaps(tmp_path, cls_row):
    """The Human-Art ViTPose layout: mmcls/mmpretrain ViT, head.*, pos_embed without a used class row."""
    from transformers import VitPoseImageProcessor

    model = tiny_vitpose(6)
    with torch.no_grad():  # mmpose's ViT adds no class-row embedding to the patches
        model.backbone.embeddings.position_embeddings[:, 0] = 0
    patches = model.backbone.embeddings.position_embeddings[:, 1:]
    pos = torch.cat([torch.randn(1, 1, 32), patches], dim=1) if cls_row else patches
    state = {**backbone_as_mmpose(model, "mmpose", pos), **head_as_mmpose(model, "head.")}
    if cls_row:
        state["backbone.cls_token"] = torch.randn(1, 1, 32)
    path = save_mmpose(tmp_path / "humanart.pth", state, mmpose_meta(6))
    as_numpy1_pickle(path)

    summary = convert_mmpose_vitpose(path, tmp_path / "out", image_size=(H, W), num_heads=2, num_keypoints=6)

    converted = load(tmp_path / "out")
    assert torch.equal(heatmaps(converted), heatmaps(model))
    assert summary["layout"] == "mmpose" and summary["decoder"] == "classic" and summary["num_experts"] == 1
    assert converted.config.id2label[5] == "point_5"  # from meta['dataset_meta']
    assert converted.config.backbone_config.layer_norm_eps == 1e-6
    assert VitPoseImageProcessor.from_pretrained(tmp_path / "out").size == {"height": H, "width": W}


def test_vitpose_repo_layout_with_simple_head_gives_the_original_heatmaps(tmp_path):
    model = tiny_vitpose(5, simple=True, seed=3)
    pos = model.backbone.embeddings.position_embeddings  # [1, N + 1, C]: row 0 is added to every patch
    state = {**backbone_as_mmpose(model, "vitpose", pos), **head_as_mmpose(model, "keypoint_head.")}
    state["backbone.cls_token"] = torch.zeros(1, 1, 32)
    path = save_mmpose(tmp_path / "vitpose-simple.pth", state, {"hook_msgs": {"best_score": np.float64(0.7)}})

    summary = convert_mmpose_vitpose(path, tmp_path / "out", image_size=(H, W), num_heads=2)

    assert torch.equal(heatmaps(load(tmp_path / "out")), heatmaps(model))
    assert summary["decoder"] == "simple" and summary["ignored_keys"] == ["backbone.cls_token"]


def vitpose_plus_file(tmp_path):
    """A ViTPose++ file: 2 experts, the main head (dataset 0, 5 keypoints) and one associate head
    (dataset 1, 4 keypoints), i.e. two transformers models sharing one backbone."""
    main = tiny_vitpose(5, experts=2, seed=5)
    other = tiny_vitpose(4, experts=2, seed=6)
    other.backbone.load_state_dict(main.backbone.state_dict())
    pos = main.backbone.embeddings.position_embeddings
    state = {**backbone_as_mmpose(main, "vitpose", pos), **head_as_mmpose(main, "keypoint_head."),
             **head_as_mmpose(other, "associate_keypoint_heads.0.")}
    return save_mmpose(tmp_path / "vitpose+.pth", state, {"time": "x"}), main, other


def test_vitpose_plus_keeps_the_picked_head_and_routes_its_expert(tmp_path):
    path, main, other = vitpose_plus_file(tmp_path)
    names = {"human": 0, "animal": 1}

    summary = convert_mmpose_vitpose(path, tmp_path / "animal", head="animal", dataset_index_for=names,
                                     image_size=(H, W), num_heads=2)
    animal = load(tmp_path / "animal")
    assert torch.equal(heatmaps(animal, dataset_index=1), heatmaps(other, dataset_index=1))
    assert animal.config.num_labels == 4 and animal.config.backbone_config.num_experts == 2
    assert animal.config.head_dataset_index == 1
    assert summary["dataset_index"] == 1 and summary["dropped_heads"] == ["keypoint_head"]

    convert_mmpose_vitpose(path, tmp_path / "human", head=0, image_size=(H, W), num_heads=2)
    assert torch.equal(heatmaps(load(tmp_path / "human"), dataset_index=0), heatmaps(main, dataset_index=0))


def test_vitpose_plus_needs_a_head_that_exists(tmp_path):
    path, _, _ = vitpose_plus_file(tmp_path)
    with pytest.raises(SpbenchError, match=r"2 keypoint heads: pick one .*coco \(0\), aic \(1\)"):
        convert_mmpose_vitpose(path, tmp_path / "a", image_size=(H, W), num_heads=2)
    with pytest.raises(SpbenchError, match="'ap10k' .*dataset index 3.* not in the checkpoint"):
        convert_mmpose_vitpose(path, tmp_path / "b", head="ap10k", image_size=(H, W), num_heads=2)
    with pytest.raises(SpbenchError, match="unknown head 'zebra'"):
        convert_mmpose_vitpose(path, tmp_path / "c", head="zebra", image_size=(H, W), num_heads=2)


# -- refusals --------------------------------------------------------------------------------------

def simple_state():
    model = tiny_vitpose(3, simple=True)
    pos = model.backbone.embeddings.position_embeddings
    return {**backbone_as_mmpose(model, "vitpose", pos), **head_as_mmpose(model, "keypoint_head.")}


def one_line_error(path, out, **kwargs) -> str:
    with pytest.raises(SpbenchError) as info:
        convert_mmpose_vitpose(path, out, image_size=(H, W), num_heads=2, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unexpected_and_missing_keys_are_named(tmp_path):
    state = simple_state()
    state["backbone.blocks.0.attn.relative_position_bias_table"] = torch.zeros(3)
    message = one_line_error(save_mmpose(tmp_path / "extra.pth", state), tmp_path / "o1")
    assert "unexpected backbone.blocks.0.attn.relative_position_bias_table" in message

    state = simple_state()
    del state["backbone.blocks.1.norm2.bias"]
    message = one_line_error(save_mmpose(tmp_path / "short.pth", state), tmp_path / "o2")
    assert "missing backbone.encoder.layer.1.layernorm_after.bias" in message
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_wrong_image_size_or_keypoints_are_refused(tmp_path):
    path = save_mmpose(tmp_path / "m.pth", simple_state())
    with pytest.raises(SpbenchError, match="pos_embed has 13 positions but a 256x192 input has 192"):
        convert_mmpose_vitpose(path, tmp_path / "o", num_heads=2)
    assert "predicts 3 keypoints, not 17" in one_line_error(path, tmp_path / "o", num_keypoints=17)


MARKER_NAME = "pickle-ran"


def _leave_marker(path):  # what a malicious pickle would run
    open(path, "w").close()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _leave_marker, (self.marker,)


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload, named", [(RunsCode, "_leave_marker"), (RunsShell, "system")])
def test_pickled_code_is_refused_without_running(tmp_path, payload, named):
    marker = tmp_path / MARKER_NAME
    path = tmp_path / "evil.pth"
    torch.save({"meta": {"hook": payload(str(marker))}, "state_dict": simple_state()}, path)

    message = one_line_error(path, tmp_path / "out")

    assert message.startswith(f"refusing to load {path}: it pickles ") and named in message
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


class HistoryBuffer:  # a plain object, as mmengine's message_hub pickles
    def __init__(self):
        self.values = [0.5]


def test_a_custom_class_in_meta_is_refused(tmp_path):
    path = tmp_path / "custom.pth"
    torch.save({"message_hub": {"loss": HistoryBuffer()}, "state_dict": simple_state()}, path)
    message = one_line_error(path, tmp_path / "out")
    assert "test_convert_vitpose.HistoryBuffer" in message and "weights.pth" in message


def test_not_a_checkpoint_or_a_used_folder_is_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert one_line_error(junk, tmp_path / "o").startswith(f"cannot read {junk} as a torch checkpoint")
    assert "not found" in one_line_error(tmp_path / "missing.pth", tmp_path / "o")
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    path = save_mmpose(tmp_path / "m.pth", simple_state())
    assert "not empty" in one_line_error(path, used)


def test_a_single_head_file_takes_no_head_choice(tmp_path):
    path = save_mmpose(tmp_path / "m.pth", simple_state())
    assert "single keypoint head (keypoint_head): leave head unset" in one_line_error(path, tmp_path / "o", head="ap10k")


@pytest.mark.slow
def test_vitpose_plus_base_shaped_file_gives_its_ap10k_expert_and_head(tmp_path):
    """ViTPose++-B's real shapes (6 experts, part_features 192, heads for COCO, AIC, MPII, AP-10K,
    APT-36K, WholeBody) at 256x192; the attention-head count comes from the known ViTPose sizes."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    backbone = VitPoseBackboneConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_experts=6,
                                     part_features=192, layer_norm_eps=1e-6, out_indices=[12])
    torch.manual_seed(0)
    ap10k = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17, use_simple_decoder=False)).eval()
    out = backbone_as_mmpose(ap10k, "vitpose", ap10k.backbone.embeddings.position_embeddings)
    out.update(head_as_mmpose(ap10k, "associate_keypoint_heads.2."))  # AP-10K: the reference model's head
    others = [("keypoint_head.", 17), ("associate_keypoint_heads.0.", 14), ("associate_keypoint_heads.1.", 16),
              ("associate_keypoint_heads.3.", 17), ("associate_keypoint_heads.4.", 133)]
    for prefix, keypoints in others:  # COCO, AIC, MPII, APT-36K, WholeBody: random heads of the real shapes
        out.update({f"{prefix}deconv_layers.0.weight": torch.randn(768, 256, 4, 4),
                    f"{prefix}deconv_layers.3.weight": torch.randn(256, 256, 4, 4),
                    f"{prefix}final_layer.weight": torch.randn(keypoints, 256, 1, 1),
                    f"{prefix}final_layer.bias": torch.randn(keypoints)})
        for bn in ("1", "4"):
            out.update({f"{prefix}deconv_layers.{bn}.{s}": torch.rand(256) for s in ("weight", "bias", "running_mean", "running_var")})
            out[f"{prefix}deconv_layers.{bn}.num_batches_tracked"] = torch.tensor(7)
    path = save_mmpose(tmp_path / "vitpose+_base.pth", out, {"hook_msgs": {"best_score": np.float64(0.77)}})

    summary = convert_mmpose_vitpose(path, tmp_path / "ap10k", head="ap10k")

    converted = load(tmp_path / "ap10k")
    pixels = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = converted(pixels, dataset_index=torch.tensor([3])).heatmaps
        want = ap10k(pixels, dataset_index=torch.tensor([3])).heatmaps
    assert torch.equal(got, want)
    assert summary["num_attention_heads"] == 12 and summary["dataset_index"] == 3 and len(summary["dropped_heads"]) == 5
    assert converted.config.id2label[16] == "right_back_paw" and converted.config.head_dataset_index == 3


def test_cli_converts_and_the_pose_model_picks_the_head_expert(tmp_path):
    from typer.testing import CliRunner

    from spbench.cli import app
    from spbench.errors import SpbenchError
    from spbench.metrics.pose_models import load_pose_model

    path, _, _ = vitpose_plus_file(tmp_path)
    out = tmp_path / "converted"
    result = CliRunner().invoke(app, ["convert", "vitpose", path, str(out), "--head", "1",
                                      "--image-size", f"{H}x{W}", "--num-heads", "2"])
    assert result.exit_code == 0, result.output
    assert "dataset_index 1" in result.output
    assert load_pose_model(str(out)).dataset_index == 1  # from the converted head, not the user
    with pytest.raises(SpbenchError, match="head of dataset_index 1"):
        load_pose_model(str(out), dataset_index=0)
    with pytest.raises(SpbenchError, match="spbench convert vitpose"):
        load_pose_model(str(tmp_path / "not-converted-yet"))
