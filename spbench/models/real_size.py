"""Real-size models with random weights, written in the hub's own layouts, for benchmarks and the
slow layout test (``tests/test_real_layouts.py``); the tiny builders are beside them
(``stable_diffusion.build_tiny_sd``, ``tiny_tokenizer``).

The arithmetic, the memory and the loading are those of the real weights; the images mean
nothing. Configs are the published ones:

- SD1.5 (``stable-diffusion-v1-5/stable-diffusion-v1-5``): UNet 860M, VAE 84M, CLIP-L text
  encoder 123M parameters; ``model_index.json`` naming ``StableDiffusionPipeline`` with a
  ``PNDMScheduler`` and ``safety_checker`` / ``feature_extractor`` entries; the text encoder with
  the hub's 49,408-row vocabulary and legacy ``eos_token_id=2``. The safety checker, which spbench
  never loads, has CLIP-L's vision widths but one layer (its layout and class are the hub's).
- The tokenizer is CLIP's real BPE (49,408 tokens), built from ``bpe_simple_vocab_16e6.txt.gz``
  as open_clip ships it (``pip install open_clip_torch``; the package is not imported, only its
  file is read) and written as the hub holds it: vocab.json, merges.txt, special_tokens_map.json,
  tokenizer_config.json.
- ControlNet OpenPose (``lllyasviel/sd-controlnet-openpose``): ``ControlNetModel.from_unet`` of the
  real-size UNet; T2I-Adapter OpenPose (``TencentARC/t2iadapter_openpose_sd14v1``): the hub config.
- FID Inception: torch-fidelity's ``inception-v3-compat`` state dict, saved as its .pth.

The metric models (ViTPose++-H, CLIP ViT-L/14, Grounding-DINO-T) are in
:mod:`spbench.metrics.real_size`.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import torch

from spbench.errors import SpbenchError

# Real SD1.5 (stable-diffusion-v1-5/stable-diffusion-v1-5), from its published config files.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2, norm_num_groups=32, sample_size=512,
)
SD15_TEXT = dict(  # CLIP ViT-L/14 text tower
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
)
# The hub's files, as they are in stable-diffusion-v1-5/stable-diffusion-v1-5.
SD15_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
# TencentARC/t2iadapter_openpose_sd14v1's config.json.
T2I_OPENPOSE = dict(in_channels=3, channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=8,
                    adapter_type="full_adapter")

# CLIP's BPE: 256 bytes, 256 bytes ending a word, 48,894 merges, start and end of text.
CLIP_VOCAB_SIZE = 49408
CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


# -- CLIP's tokenizer ----------------------------------------------------------------------------

def clip_bpe_path() -> Path:
    """open_clip's copy of CLIP's BPE merges, found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / CLIP_BPE_FILE
        if path.is_file():
            return path
    raise SpbenchError(f"CLIP's BPE vocabulary ({CLIP_BPE_FILE}) comes with open_clip: "
                       "pip install open_clip_torch (real-size models only; tiny ones do not need it)")


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable character map, in its own order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_vocab_and_merges(bpe_path: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary and merge rules, built as open_clip's ``SimpleTokenizer`` builds them
    (the 48,894 merges after the file's header line; bytes, bytes + ``</w>``, merges, specials)."""
    lines = gzip.open(bpe_path or clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges] + [CLIP_BOS, CLIP_EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise SpbenchError(f"{bpe_path or clip_bpe_path()}: {len(vocab)} CLIP tokens, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges


def write_clip_tokenizer(folder: str | Path, bpe_path: Path | None = None) -> Path:
    """CLIP's tokenizer as the SD1.5 and CLIP-L repos hold it: vocab.json, merges.txt,
    special_tokens_map.json and tokenizer_config.json, no tokenizer.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges(bpe_path)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    token = lambda content: {"content": content, "lstrip": False, "normalized": True, "rstrip": False,  # noqa: E731
                             "single_word": False}
    special = {"bos_token": token(CLIP_BOS), "eos_token": token(CLIP_EOS), "pad_token": CLIP_EOS,
               "unk_token": token(CLIP_EOS)}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"add_prefix_space": False, **{k: {**v, "__type": "AddedToken"} if isinstance(v, dict) else v
                                             for k, v in special.items()},
              "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "name_or_path": "openai/clip-vit-large-patch14", "special_tokens_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "tokenizer.json").unlink(missing_ok=True)
    return folder


def clip_tokenizer(folder: str | Path):
    """CLIP's real tokenizer, written to ``folder`` (once) and loaded from it with
    ``CLIPTokenizer.from_pretrained``, as a hub snapshot is."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    if not (folder / "merges.txt").is_file():
        write_clip_tokenizer(folder)
    return CLIPTokenizer.from_pretrained(folder)


# -- SD1.5, ControlNet, T2I-Adapter ------------------------------------------------------------

def sd15_text_encoder(**overrides):
    """CLIP-L's text tower with the hub's text_encoder/config.json ids: 49,408 tokens, bos 0 /
    pad 1 / legacy eos 2 (pooling by argmax)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**SD15_TEXT, vocab_size=CLIP_VOCAB_SIZE, bos_token_id=0, pad_token_id=1,
                                        eos_token_id=2, **overrides))


def build_sd15(tokenizer, device: torch.device | str = "cpu", seed: int = 0):
    """SD1.5-sized ``SDComponents`` with random weights, built directly on ``device`` (``"meta"``
    builds shapes only, for FLOP counting), without a folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from spbench.models.stable_diffusion import SD15_SCHEDULE, SDComponents

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = sd15_text_encoder()
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    return SDComponents(unet, vae, text_encoder, tokenizer, dict(SD15_SCHEDULE), "random://sd15-real")


def write_sd15(folder: str | Path, seed: int = 0):
    """SD1.5 with random weights in the hub's layout, written by the pipeline's own
    ``save_pretrained`` (then model_index.json, the scheduler config and the tokenizer as the hub
    has them). Returns the UNet (for a ControlNet made from it)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPVisionConfig

    folder = Path(folder)
    tokenizer = clip_tokenizer(folder / "tokenizer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = sd15_text_encoder()
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=1, num_attention_heads=16,
                                  image_size=224, patch_size=14)
        safety = StableDiffusionSafetyChecker(CLIPConfig(text_config=CLIPTextConfig(**SD15_TEXT).to_dict(),
                                                         vision_config=vision.to_dict(), projection_dim=768))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),  # from_config drops clip_sample, as loading does
        safety_checker=safety, feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipe.save_pretrained(folder)
    write_clip_tokenizer(folder / "tokenizer")  # save_pretrained (transformers 5) writes only tokenizer.json
    (folder / "model_index.json").write_text(json.dumps(SD15_MODEL_INDEX, indent=2))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER, indent=2))
    return unet


def write_controlnet(folder: str | Path, unet, seed: int = 1) -> Path:
    """The OpenPose ControlNet's layout (config.json + diffusion_pytorch_model.safetensors):
    ``ControlNetModel.from_unet`` of ``unet``."""
    from diffusers import ControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ControlNetModel.from_unet(unet).save_pretrained(folder)
    return Path(folder)


def write_t2i_adapter(folder: str | Path, seed: int = 2) -> Path:
    from diffusers import T2IAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        T2IAdapter(**T2I_OPENPOSE).save_pretrained(folder)
    return Path(folder)


def write_random_inception(path: str | Path, seed: int = 0) -> Path:
    """torch-fidelity's FID Inception with random weights, saved like the real file (building it
    needs its weights, so its loading is switched off for this one construction)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with mock.patch.object(tf, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None), \
            torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(module.state_dict(), path)
    return Path(path)


def write_generation_models(root: str | Path) -> dict[str, Path]:
    """SD1.5, the OpenPose ControlNet and T2I-Adapter under ``root`` in the hub's layouts, named
    as the hub's repos; returns their folders by role (``base``, ``controlnet``, ``t2i-adapter``)."""
    root = Path(root)
    unet = write_sd15(root / "stable-diffusion-v1-5")
    write_controlnet(root / "sd-controlnet-openpose", unet)
    del unet
    write_t2i_adapter(root / "t2iadapter_openpose_sd14v1")
    return {"base": root / "stable-diffusion-v1-5", "controlnet": root / "sd-controlnet-openpose",
            "t2i-adapter": root / "t2iadapter_openpose_sd14v1"}


def generation_models(root: str | Path) -> dict[str, Path]:
    """:func:`write_generation_models` under ``root`` once: a later call finds them there (they
    are written to ``root``.partial and renamed when complete, so an interrupted write is redone)."""
    import shutil

    root = Path(root)
    if not (root / "stable-diffusion-v1-5" / "model_index.json").is_file():
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_generation_models(partial)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return {"base": root / "stable-diffusion-v1-5", "controlnet": root / "sd-controlnet-openpose",
            "t2i-adapter": root / "t2iadapter_openpose_sd14v1"}
