"""The CLIP model of CLIP-Score: a transformers ``CLIPModel`` with its ``CLIPProcessor`` (images
through CLIP's own processor; texts truncated to CLIP's 77-token context, keeping the end token,
and counted), and the tiny random CLIP for tests (``tiny://clip``)."""

from __future__ import annotations

from spbench.errors import SpbenchError
from spbench.metrics.model_specs import is_tiny, tiny_builder

TINY_CLIP = "tiny://clip"
CONTEXT_LENGTH = 77  # CLIP's text context


class ClipScorer:
    """A transformers ``CLIPModel`` and its ``CLIPProcessor``: cosines of image and text features."""

    def __init__(self, model, processor, name: str, device: str = "cpu", batch_size: int = 32):
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_length = min(CONTEXT_LENGTH, int(model.config.text_config.max_position_embeddings))

    @classmethod
    def load(cls, spec: str, device: str = "cpu", batch_size: int = 32) -> "ClipScorer":
        if spec is None:
            raise SpbenchError("no CLIP model configured: set models.clip (e.g. openai/clip-vit-large-patch14)")
        if is_tiny(str(spec), TINY_CLIP, "CLIP"):
            model, processor = tiny_builder(str(spec))()
        else:
            from transformers import CLIPModel, CLIPProcessor

            from spbench.models.hub import load_pretrained

            model = load_pretrained(CLIPModel, spec, role="CLIP model", setting="models.clip")
            processor = load_pretrained(CLIPProcessor, spec, role="CLIP model", setting="models.clip")
        return cls(model, processor, str(spec), device, batch_size)

    def cosines(self, images: list, texts: list[str]) -> tuple[list[float], list[bool]]:
        """Cosine similarity of each image with its text, and whether the text was truncated."""
        import torch

        if len(images) != len(texts):
            raise SpbenchError(f"CLIP-Score got {len(images)} images and {len(texts)} texts")
        cos, truncated = [], []
        for i in range(0, len(images), self.batch_size):
            imgs, txts = images[i:i + self.batch_size], texts[i:i + self.batch_size]
            lengths = [len(ids) for ids in self.processor.tokenizer(txts, verbose=False)["input_ids"]]
            truncated += [n > self.max_length for n in lengths]
            pixels = self.processor(images=imgs, return_tensors="pt")["pixel_values"]
            tokens = self.processor(text=txts, return_tensors="pt", padding=True, truncation=True,
                                    max_length=self.max_length)
            with torch.inference_mode():
                img = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
                txt = _features(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                             attention_mask=tokens["attention_mask"].to(self.device)))
            img = img.float() / img.float().norm(dim=-1, keepdim=True)
            txt = txt.float() / txt.float().norm(dim=-1, keepdim=True)
            cos += (img * txt).sum(-1).cpu().tolist()
        return cos, truncated


def _features(out):
    # transformers 5 returns a model output whose pooler_output is the projected feature; 4.x a tensor.
    import torch

    return out if torch.is_tensor(out) else out.pooler_output


def build_tiny_clip(seed: int = 0):
    """A tiny random CLIP (ViT 32 px / patch 8, 2-layer text and vision towers, 16-d projection)
    with the offline tiny tokenizer and OpenAI's image normalisation, built offline."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from spbench.models.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    return model, processor
