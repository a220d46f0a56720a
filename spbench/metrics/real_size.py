"""The metric models at real size with random weights, written as model folders so the metrics
load them with ``from_pretrained`` as they would the real ones (the tiny ones are beside them:
``pose_models.build_tiny_vitpose`` and the other metric model files); for benchmarks and the slow
layout test. Their scores mean nothing.

- ViTPose++-H (``usyd-community/vitpose-plus-huge``): ViT-H/16 at 256x192, 6 experts, classic
  decoder.
- CLIP ViT-L/14 (``openai/clip-vit-large-patch14``): the hub's config and CLIP's real BPE
  tokenizer (49,408 tokens, :func:`spbench.models.real_size.clip_tokenizer`).
- Grounding-DINO-T (``IDEA-Research/grounding-dino-tiny``): transformers' defaults (Swin-T,
  BERT-base text, 6+6 layers, 900 queries). Its tokenizer is NOT bert-base-uncased's: that
  30,522-word vocab.txt ships with no installed package (transformers does not carry it) and
  cannot be downloaded here, so the tokenizer has a small vocabulary (specials, letters, word
  pieces of letters and the benchmark's prompt words); the embedding table keeps BERT-base's
  30,522 rows, so the model's size and arithmetic are the real ones, only tokenisation differs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

# ViTPose++-H (usyd-community/vitpose-plus-huge): ViT-H/16 at 256x192, 6 experts, classic decoder.
VITPOSE_PLUS_H = dict(
    image_size=[256, 192], patch_size=[16, 16], hidden_size=1280, num_hidden_layers=32,
    num_attention_heads=16, mlp_ratio=4, qkv_bias=True, num_experts=6, part_features=320,
    out_indices=[32],
)
VITPOSE_AP10K_EXPERT = 3


def build_vitpose_plus_h(device="cpu", seed: int = 0):
    """(model, processor): ViTPose++-H with random weights, built on ``device``."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessor

    config = VitPoseConfig(backbone_config=VitPoseBackboneConfig(**VITPOSE_PLUS_H), num_labels=17,
                           use_simple_decoder=False)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = VitPoseForPoseEstimation(config).eval()
    return model, VitPoseImageProcessor(size={"height": 256, "width": 192})


def write_clip_l14(folder: str | Path) -> Path:
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig,
                              CLIPVisionConfig)

    from spbench.models.real_size import CLIP_VOCAB_SIZE, clip_tokenizer

    folder = Path(folder)
    tokenizer = clip_tokenizer(folder)  # vocab.json and merges.txt, as the hub repo has them
    # openai/clip-vit-large-patch14's config.json: bos 0 / pad 1 / legacy eos 2 (pooling by argmax).
    text = CLIPTextConfig(vocab_size=CLIP_VOCAB_SIZE, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, max_position_embeddings=77, bos_token_id=0, pad_token_id=1,
                          eos_token_id=2)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=224, patch_size=14)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=768))
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_grounding_dino_t(folder: str | Path) -> Path:
    """Grounding-DINO-T with a small BERT vocabulary (see the module doc: no bert-base-uncased
    vocab.txt is available offline)."""
    from transformers import (BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor)

    from spbench.models.tiny_tokenizer import small_bert_vocab

    folder = Path(folder)
    with tempfile.TemporaryDirectory() as vocab_folder:  # from_pretrained: how transformers 5 reads a vocab.txt
        (Path(vocab_folder) / "vocab.txt").write_text("\n".join(small_bert_vocab()) + "\n")
        bert = BertTokenizer.from_pretrained(vocab_folder)
    model = GroundingDinoForObjectDetection(GroundingDinoConfig())
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=bert).save_pretrained(folder)
    return folder


def write_metric_models(folder: str | Path, inception: str | None = None) -> dict:
    """ViTPose++-H, CLIP ViT-L/14 and Grounding-DINO-T under ``folder``; returns the run's
    ``models.*`` settings. FID's Inception stays tiny unless ``inception`` names torch-fidelity's
    weights file (:func:`spbench.models.real_size.write_random_inception` writes a random one)."""
    folder = Path(folder)
    sets = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, processor = build_vitpose_plus_h()
        model.save_pretrained(folder / "vitpose-plus-h")
        processor.save_pretrained(folder / "vitpose-plus-h")
        sets.update({"models.pose": str(folder / "vitpose-plus-h"), "models.pose_dataset_index": VITPOSE_AP10K_EXPERT})
        sets["models.clip"] = str(write_clip_l14(folder / "clip-vit-l-14"))
        sets["models.detector"] = str(write_grounding_dino_t(folder / "grounding-dino-t"))
    if inception:
        sets["models.inception"] = inception
    return sets
