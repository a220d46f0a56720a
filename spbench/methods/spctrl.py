"""SP-Ctrl (ICCV 2025): ControlNet on the Spatial-Pose Representation, plus Keypoint Concept Learning.

The model comes from ``--checkpoint`` (an official SP-Ctrl release folder or one saved by
spbench) or, without one, is initialised from the UNet with SPR settings from
``method.options``. Keypoint tokens (KCL) are on unless the variant turns them off; their rows
come from ``learned_embeds.bin`` in the checkpoint folder, ``method.options.learned_embeds``, or
the keypoint words when there is neither.

Variants are named option sets (:data:`VARIANT_OPTIONS`), applied before the user's
``--set method.options.*``, which may not contradict them. The Fig. 6 ablations are training
settings: from the UNet they change the initial SPR; with a checkpoint they must match its config.
"""

from __future__ import annotations

from pathlib import Path

from spbench.errors import SpbenchError
from spbench.methods.base import Method
from spbench.run.requests import GenerationSettings, Request

# method.options of SP-Ctrl and their defaults (the paper's model).
DEFAULT_OPTIONS: dict = {
    "cond_channels": 3,          # C', channels of the SPR map
    "skeleton_type": "one",      # limb rows: one | zero | rand | interp_kpt
    "learnable_skeleton": False,
    "init_emb": "random",        # E0: random (randn) | text (pooled CLIP embeddings of the keypoint names)
    "learnable_e0": False,
    "detach_kpt_grad_from_sks": False,
    "layer_version": None,       # null | sigmoid_version (official variant of the SPR layer)
    "limb_schema": "ap10k",      # keypoint pairs behind limb rows for interp_kpt (official: AP-10K's);
                                 # with a schema file: that schema (its K keypoints and whole skeleton)
    "seed": 0,                   # seeds E0 and the SPR's initial weights (from the UNet only)
    "keypoint_tokens": True,     # KCL tokens in the prompt
    "learned_embeds": None,      # learned_embeds.bin (default: the checkpoint folder's, or its parent's)
    "allow_untrained_tokens": False,  # run a checkpoint without its learned_embeds.bin (word-initialised rows)
    "schema": None,              # keypoint schema of the tokens (default: the dataset's)
}

VARIANT_OPTIONS: dict[str, dict] = {
    "spr-only": {"keypoint_tokens": False},
    "c1": {"cond_channels": 1},
    "text-init": {"init_emb": "text"},
    "learnable-e0": {"learnable_e0": True},
    "skeleton-interp": {"skeleton_type": "interp_kpt"},
    "skeleton-learnable": {"learnable_skeleton": True},
}

# Options that define the SPR, and the checkpoint config key each must match.
ARCHITECTURE = {
    "cond_channels": "conditioning_channels", "skeleton_type": "spatext_skeleton_type",
    "learnable_skeleton": "spatext_enable_learn_sks", "learnable_e0": "spatext_enable_learn_kpt",
    "detach_kpt_grad_from_sks": "spatext_detach_kpt_grad_from_sks", "layer_version": "spatext_layer_version",
}


def resolve_options(variant: str | None, user: dict) -> dict:
    """Defaults < variant < user options; a user option that contradicts the variant is an error."""
    if variant is not None and variant not in VARIANT_OPTIONS:
        raise SpbenchError(f"SP-Ctrl has no variant {variant!r} (variants: {', '.join(VARIANT_OPTIONS)})")
    unknown = sorted(set(user) - set(DEFAULT_OPTIONS))
    if unknown:
        raise SpbenchError(f"unknown SP-Ctrl option(s) {', '.join('method.options.' + k for k in unknown)} (known: {', '.join(DEFAULT_OPTIONS)})")
    fixed = VARIANT_OPTIONS.get(variant, {})
    for key, value in fixed.items():
        if key in user and user[key] != value:
            raise SpbenchError(f"variant {variant!r} sets method.options.{key}={value!r}, but --set method.options.{key}={user[key]!r}: drop one of them")
    options = {**DEFAULT_OPTIONS, **fixed, **user}
    if options["init_emb"] not in ("random", "text"):
        raise SpbenchError(f"method.options.init_emb={options['init_emb']!r}: use random or text")
    return options


class SPCtrlMethod(Method):
    name = "spctrl"
    condition = "spatial-pose"
    description = "SP-Ctrl: ControlNet on the Spatial-Pose Representation + keypoint tokens (KCL)"
    variants = {
        "spr-only": "Table 2 '+ Spatial Pose': SPR ControlNet without keypoint tokens",
        "c1": "Fig. 6: SPR with one channel (C' = 1)",
        "text-init": "Fig. 6: E0 from the keypoint names' CLIP text embeddings instead of randn",
        "learnable-e0": "Fig. 6: E0 learnable instead of fixed",
        "skeleton-interp": "Fig. 6: limb embedding = mean of its two keypoints' embeddings",
        "skeleton-learnable": "Fig. 6: learnable limb embeddings (initialised to ones)",
    }

    def __init__(self, context):
        from spbench.models.keypoint_tokens import KeypointPrompts, default_learned_path, require_learned_path
        from spbench.run.resolve import run_schema

        super().__init__(context)
        self.variant = context.variant
        self.options = resolve_options(self.variant, dict(context.method_options))
        self.schema = run_schema(context.config)
        self._check_limb_schema("limb_schema" in context.method_options)
        self.model = None
        # A hub checkpoint's learned_embeds.bin is found when it is downloaded, in load().
        self.learned_path = self.options["learned_embeds"] or default_learned_path(self.checkpoint)
        self.kcl = KeypointPrompts(self.schema, context.models["base"], self.learned_path, self.options["keypoint_tokens"])
        if self.kcl.enabled and self.checkpoint and Path(self.checkpoint).is_dir():
            # A local checkpoint is checked now, before any work; a hub one once downloaded, in load().
            require_learned_path(self.learned_path, self.checkpoint, self.options["allow_untrained_tokens"], "spctrl")

    def _check_limb_schema(self, chosen: bool) -> None:
        """The SPR's tables follow the keypoint set: a schema file's run sizes them by that
        schema (K keypoints, its whole skeleton) unless method.options.limb_schema names one;
        whichever is used must have the run's keypoint count."""
        from spbench.schemas import get_schema

        run = get_schema(self.schema)
        if run.from_file and not chosen:
            self.options["limb_schema"] = run.name
        limb = get_schema(self.options["limb_schema"])
        if limb.num_keypoints != run.num_keypoints:
            raise SpbenchError(f"method.options.limb_schema={limb.name} has {limb.num_keypoints} keypoints but the run's "
                               f"keypoint schema {run.name} has {run.num_keypoints}: drop the option or set it to {run.name}")

    @property
    def checkpoint(self) -> str | None:
        return self.context.checkpoint

    def prompt(self, sample) -> str:
        return self.kcl.prompt(sample)

    def manifest_fields(self, request: Request) -> dict:
        return self.kcl.manifest_fields(request.sample)

    def load(self) -> None:
        from spbench.models.keypoint_tokens import require_learned_path
        from spbench.models.stable_diffusion import load_sd_components, place

        self.sd = load_sd_components(self.context.models["base"])
        self.model = self._load_checkpoint() if self.checkpoint else self.untrained_model(self.sd)
        if self.kcl.enabled:
            require_learned_path(self.learned_path, self.checkpoint, self.options["allow_untrained_tokens"], "spctrl")
        self.kcl.learned_path = self.learned_path
        self.kcl.attach(self.sd.tokenizer, self.sd.text_encoder)
        self.sd.to(self.context.device, self.context.dtype)
        place(self.model, self.context.device, self.context.dtype)
        self.pipe = self.build_pipeline(self.sd, self.model)

    def _load_checkpoint(self):
        from spbench.models.spctrl_checkpoint import load_spctrl_checkpoint

        model, learned = load_spctrl_checkpoint(self.checkpoint)
        chosen = {**VARIANT_OPTIONS.get(self.variant, {}), **self.context.method_options}
        for option, key in ARCHITECTURE.items():
            if option in chosen and model.config[key] != chosen[option]:
                raise SpbenchError(f"checkpoint {self.checkpoint} has {key}={model.config[key]!r} but the run asks for method.options.{option}={chosen[option]!r} (variant {self.variant}): pick the matching checkpoint or drop the option")
        self.learned_path = self.learned_path or learned
        return model

    def untrained_model(self, sd):
        """SP-Ctrl as training starts it: ControlNet from ``sd``'s UNet, SPR from the options
        (variant applied). Generation without a checkpoint and ``spbench train`` both use this."""
        from spbench.models.keypoint_tokens import keypoint_name_embeddings
        from spbench.models.spctrl import SPCtrlControlNetModel
        from spbench.schemas import get_schema

        o = self.options
        init = None
        if o["init_emb"] == "text":
            init = keypoint_name_embeddings(sd.tokenizer, sd.text_encoder, get_schema(self.schema))
        model = SPCtrlControlNetModel.from_unet(
            sd.unet, cond_channels=o["cond_channels"], init_embedding=init,
            init_emb=f"text:{self.schema} keypoint names" if init is not None else None,
            skeleton_type=o["skeleton_type"], learnable_e0=o["learnable_e0"],
            learnable_skeleton=o["learnable_skeleton"], detach_kpt_grad_from_sks=o["detach_kpt_grad_from_sks"],
            layer_version=o["layer_version"], limb_schema=o["limb_schema"], seed=o["seed"],
        )
        return model.requires_grad_(False).eval()

    @property
    def uses_keypoint_tokens(self) -> bool:
        return self.kcl.enabled

    def trainable_model(self, sd, seed: int):
        """The SP-Ctrl ControlNet as :meth:`untrained_model` builds it, saved as ``spctrl/``."""
        from spbench.models.trainable import Trainable

        if self.checkpoint:
            raise SpbenchError("spbench train starts SP-Ctrl from the UNet: drop --checkpoint (to continue a training run use --resume)")
        return Trainable(self.untrained_model(sd), "controlnet", "spctrl")

    def build_pipeline(self, sd, model):
        from spbench.models.pipelines import build_pipeline
        from spbench.models.spctrl import SPCtrlPipeline

        return build_pipeline(SPCtrlPipeline, sd, self.context.config["generation"]["scheduler"], controlnet=model)

    def generate(self, prompts, conditions, latents, settings: GenerationSettings):
        from spbench.models.pipelines import run_pipeline

        return run_pipeline(self.pipe, prompts, latents, settings, **self.pipeline_inputs(conditions, settings.conditioning_scale))

    def identity(self) -> dict:
        spctrl = self.checkpoint or "initialised from the UNet (untrained SPR and ControlNet)"
        return {
            "base": self.context.models["base"], "spctrl": spctrl, "schema": self.schema, "variant": self.variant,
            "variant_options": VARIANT_OPTIONS.get(self.variant, {}), "options": self.options,
            **self.kcl.identity(),
        }
