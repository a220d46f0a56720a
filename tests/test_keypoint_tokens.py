"""Keypoint tokens (KCL at inference): tokenizer and text encoder rows, learned files, prompts."""

import dataclasses
import warnings

import pytest
import torch

from spbench.config import load_profile, resolve
from spbench.data.records import KPT_PLACEHOLDER, Instance, Sample
from spbench.errors import SpbenchError
from spbench.methods import get_method_class
from spbench.models.keypoint_tokens import (
    KeypointPrompts, add_keypoint_tokens, keypoint_prompt, load_learned_embeds, save_learned_embeds,
)
from spbench.models.stable_diffusion import build_tiny_sd
from spbench.models.tiny_tokenizer import build_tiny_tokenizer
from spbench.run.requests import MethodContext
from spbench.run.resolve import run_schema
from spbench.schemas import AP10K, COCO17


def sample(schema: str, template: str, visible: list[list[int]]) -> Sample:
    """One instance per list; keypoint k is labelled (v=2) in an instance if k is in its list."""
    n = 17
    instances = tuple(
        Instance("dog", (0, 0, 10, 10), 100.0, tuple((float(k), float(k), 2 if k in ks else 0) for k in range(n)))
        for ks in visible
    )
    return Sample("s-1", 1, "1.jpg", 64, 64, schema, instances, template)


def test_tokens_are_added_once_with_rows_from_their_words():
    sd = build_tiny_sd()
    before, rows_before = len(sd.tokenizer), sd.text_encoder.get_input_embeddings().weight.shape[0]
    ids = add_keypoint_tokens(sd.tokenizer, sd.text_encoder, AP10K)
    weight = sd.text_encoder.get_input_embeddings().weight
    assert len(sd.tokenizer) == before + 17 and weight.shape[0] == rows_before + 17
    assert ids == list(range(before, before + 17))
    # "paw" is one piece: the rows of the three paws are its row.
    paw = sd.tokenizer.convert_tokens_to_ids("paw</w>")
    for token in ("<left-front-paw>", "<right-front-paw>", "<left-back-paw>"):
        assert torch.equal(weight[sd.tokenizer.convert_tokens_to_ids(token)], weight[paw])
    # A word that splits into pieces: its row is the mean of the pieces' rows.
    flippers = dataclasses.replace(AP10K, name="seal", keypoints=tuple(k.replace("shoulder", "flipper") for k in AP10K.keypoints))
    pieces = sd.tokenizer.tokenize("flipper")
    assert len(pieces) > 1
    add_keypoint_tokens(sd.tokenizer, sd.text_encoder, flippers)
    weight = sd.text_encoder.get_input_embeddings().weight
    mean = weight[sd.tokenizer.convert_tokens_to_ids(pieces)].mean(0)
    torch.testing.assert_close(weight[sd.tokenizer.convert_tokens_to_ids("<left-flipper>")], mean)
    # A second call adds nothing and keeps (possibly trained) rows.
    with torch.no_grad():
        weight[ids[0]] = 7.0
    size = len(sd.tokenizer)
    assert add_keypoint_tokens(sd.tokenizer, sd.text_encoder, AP10K) == ids
    assert len(sd.tokenizer) == size and torch.all(sd.text_encoder.get_input_embeddings().weight[ids[0]] == 7.0)


def test_prompt_tokens_are_single_ids():
    tok = build_tiny_tokenizer()
    ids = add_keypoint_tokens(tok, None, AP10K)
    pieces = tok.tokenize("A good photo of dog <<left-eye>, <right-back-paw>>")
    assert pieces == ["a</w>", "good</w>", "photo</w>", "of</w>", "dog</w>", "<</w>", "<left-eye>", ",</w>", "<right-back-paw>", "></w>"]
    assert tok.convert_tokens_to_ids("<right-back-paw>") == ids[16]


def test_learned_file_round_trip_and_errors(tmp_path):
    trained = build_tiny_sd()
    add_keypoint_tokens(trained.tokenizer, trained.text_encoder, COCO17)
    weight = trained.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[-17:] = torch.randn(17, weight.shape[1], generator=torch.Generator().manual_seed(0))
    path = tmp_path / "learned_embeds.bin"
    save_learned_embeds(path, trained.tokenizer, trained.text_encoder, COCO17)
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == sorted(COCO17.tokens) and raw["<nose>"].shape == (32,)

    fresh = build_tiny_sd()
    add_keypoint_tokens(fresh.tokenizer, fresh.text_encoder, COCO17, load_learned_embeds(path, COCO17, 32))
    for token in COCO17.tokens:
        a = weight[trained.tokenizer.convert_tokens_to_ids(token)]
        b = fresh.text_encoder.get_input_embeddings().weight[fresh.tokenizer.convert_tokens_to_ids(token)]
        assert torch.equal(a, b)

    for bad, words in (
        ({t: torch.zeros(32) for t in COCO17.tokens[:-1]}, ["<right-ankle>", "missing"]),
        ({**{t: torch.zeros(32) for t in COCO17.tokens}, "<tail>": torch.zeros(32)}, ["<tail>", "unexpected"]),
        ({t: torch.zeros(768) for t in COCO17.tokens}, ["768", "32"]),
        ([torch.zeros(32)], ["dict"]),
    ):
        torch.save(bad, tmp_path / "bad.bin")
        with pytest.raises(SpbenchError) as e:
            load_learned_embeds(tmp_path / "bad.bin", COCO17, 32)
        assert str(tmp_path / "bad.bin") in str(e.value) and all(w in str(e.value) for w in words)
        assert "\n" not in str(e.value)
    # The AP-10K tokens are not the Human-Art ones.
    with pytest.raises(SpbenchError, match="ap10k"):
        load_learned_embeds(path, AP10K, 32)


@pytest.mark.parametrize("schema, template, visible, expected", [
    ("ap10k", "A good photo of dog<KPT>", [[0, 2], [2, 16]], "A good photo of dog <<left-eye>, <nose>, <right-back-paw>>"),
    ("ap10k", "A photo of zebra<KPT> in the grass", [[4]], "A photo of zebra <<root-of-tail>> in the grass"),
    ("ap10k", "A good photo of dog<KPT>", [[]], "A good photo of dog"),
    # Human-Art: the official dataset code (custom_datasets/coco_humanart_keypoints_offline_dataset.py)
    # makes caption + ". <KPT>" and replaces <KPT> with "<" + ", ".join(tokens) + ">": one space.
    ("coco17", "a man dancing on a stage. <KPT>", [[0, 15]], "a man dancing on a stage. <<nose>, <left-ankle>>"),
    ("coco17", "a man dancing on a stage. <KPT>", [[]], "a man dancing on a stage."),
])
def test_prompt_in_the_official_format(schema, template, visible, expected):
    assert KPT_PLACEHOLDER in template
    assert keypoint_prompt(sample(schema, template, visible)) == expected


def test_occluded_keypoints_count_as_visible():
    s = sample("ap10k", "A good photo of dog<KPT>", [[]])
    kpts = list(s.instances[0].keypoints)
    kpts[3] = (1.0, 1.0, 1)  # v = 1: labelled but occluded
    s = Sample(s.sample_id, 1, "1.jpg", 64, 64, "ap10k", (Instance("dog", (0, 0, 1, 1), 1.0, tuple(kpts)),), s.prompt_template)
    assert keypoint_prompt(s) == "A good photo of dog <<neck>>"


def test_long_prompt_is_counted_as_truncated_once_warned():
    # 80 whole-word "dog" + "." + "<" + 17 tokens + 16 commas + ">" + start + end = 118 tokens.
    long = sample("coco17", "dog " * 79 + "dog. " + KPT_PLACEHOLDER, [list(range(17))])
    kcl = KeypointPrompts("coco17", "tiny://sd15")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fields = kcl.manifest_fields(long)
        kcl.prompt(long)
    assert fields == {"prompt_tokens": 118, "prompt_truncated": True}
    assert len([w for w in caught if "118 tokens" in str(w.message)]) == 1
    short = sample("coco17", "a dog dancing. " + KPT_PLACEHOLDER, [[0]])
    # a dog dancing . < <nose> > + start + end
    assert kcl.manifest_fields(short) == {"prompt_tokens": 9, "prompt_truncated": False}


def _config(method: str, split: str, variant=None, options=()):
    flags = {"method.name": method, "method.variant": variant, "dataset.split": split, "generation.steps": 2}
    return resolve(load_profile("tiny"), "ap10k", flags, [f"method.options.{o}" for o in options])


def test_run_schema_follows_the_dataset_or_the_option():
    assert run_schema(_config("spctrl", "ap10k")) == "ap10k"
    assert run_schema(_config("spctrl", "humanart")) == "coco17"
    assert run_schema(_config("spctrl", "ap10k", options=["schema=coco17"])) == "coco17"


def test_manifest_fields_need_no_model():
    cls = get_method_class("spctrl")
    method = cls(MethodContext(_config("spctrl", "humanart")))
    s = sample("coco17", "a dog dancing. " + KPT_PLACEHOLDER, [[0]])
    assert method.manifest_fields(type("R", (), {"sample": s})()) == {"prompt_tokens": 9, "prompt_truncated": False}
    assert not hasattr(method, "sd")
    with pytest.raises(SpbenchError, match="method.options.schema=ap10k"):
        method.prompt(sample("ap10k", "A dog<KPT>", [[0]]))


def test_kcl_is_a_variant_of_the_openpose_controlnet_only():
    assert "kcl" in get_method_class("controlnet").variants
    for name in ("controlnet-depth", "controlnet-mask"):
        assert "kcl" not in get_method_class(name).variants
    plain = get_method_class("controlnet")(MethodContext(_config("controlnet", "ap10k")))
    s = sample("ap10k", "A dog<KPT>", [[0]])
    assert plain.prompt(s) == "A dog" and plain.manifest_fields(type("R", (), {"sample": s})()) == {}
    kcl = get_method_class("controlnet")(MethodContext(_config("controlnet", "ap10k", "kcl")))
    assert kcl.prompt(s) == "A dog <<left-eye>>"


def test_kcl_variant_generates_with_the_learned_rows(tmp_path):
    from accelerate import PartialState
    from diffusers import ControlNetModel

    from spbench.data.registry import load_split
    from spbench.files import read_jsonl
    from spbench.generation import engine
    from spbench.run.folder import RunFolder
    from spbench.run.requests import GenerationSettings

    folder = tmp_path / "openpose-kcl"
    ControlNetModel.from_unet(build_tiny_sd().unet).save_pretrained(folder)
    learned = {t: torch.full((32,), float(i)) for i, t in enumerate(AP10K.tokens)}
    torch.save(learned, folder / "learned_embeds.bin")
    cfg = _config("controlnet", "ap10k", "kcl")
    cfg["method"]["checkpoint"], cfg["generation"]["images_per_prompt"] = str(folder), 1
    method = get_method_class("controlnet")(MethodContext(cfg))
    split = load_split("sample").limit(2)
    run = RunFolder(tmp_path / "run")
    run.start(cfg, {"run": "run"}, list(split.samples))
    engine.generate(run, method, engine.plan_requests(split, cfg["generation"]),
                    GenerationSettings.from_config(cfg["generation"]), 4, PartialState())
    rows = read_jsonl(run.manifest_jsonl)
    assert len(rows) == 2 and all(r["prompt"] == keypoint_prompt(s) for r, s in zip(rows, split.samples))
    assert all(r["prompt_tokens"] > 17 and r["prompt_truncated"] is False for r in rows)
    weight = method.sd.text_encoder.get_input_embeddings().weight
    assert torch.equal(weight[method.sd.tokenizer.convert_tokens_to_ids("<right-knee>")], learned["<right-knee>"])
    assert method.identity()["keypoint_tokens"] == {"schema": "ap10k", "embeddings": str(folder / "learned_embeds.bin")}
