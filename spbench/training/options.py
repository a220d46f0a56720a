"""Everything that decides a training run, in one dataclass (recorded in ``train.json``).

Defaults are the SP-Ctrl training recipe (official script): lr 1e-5 (AdamW, weight decay 1e-2,
gradient clipping at 1.0), 50% of captions dropped, keypoint tokens added with probability 0.8 and
trained at lr 0.5 halved every 100 epochs, heatmap loss weight 0.1 on timesteps 250–500 from the
ControlNet's ``down_blocks.2`` cross-attention, batch 20.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from spbench.errors import SpbenchError

KCL_DEFINITIONS = ("official", "paper")
KCL_SOURCES = ("controlnet", "unet")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
REPORT_TO = ("none", "tensorboard")


@dataclass
class TrainingOptions:
    method: str = "controlnet"
    variant: str | None = None
    # Data: a split read with spbench.data.registry.load_split.
    dataset: str = "sample"
    split: str | None = None
    data_root: str | None = None
    ann: str | None = None
    limit: int | None = None
    # Models (models.base, generation.canvas = training resolution, ...) from a profile + --set.
    profile: str = "tiny"
    sets: list[str] = field(default_factory=list)
    out: str = "./spbench-train"

    # Length: max_steps wins over epochs when given.
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 20
    learning_rate: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    caption_dropout: float = 0.5

    # Keypoint Concept Learning. None: the method's default (on for SP-Ctrl variants that use it).
    keypoint_tokens: bool | None = None
    heatmap_loss: bool | None = None
    kpt_token_probability: float = 0.8
    kpt_learning_rate: float = 0.5
    kpt_lr_decay: float = 0.5
    kpt_lr_decay_epochs: int = 100
    kcl_weight: float = 0.1
    kcl_definition: str = "official"
    kcl_timesteps: tuple[int, int] = (250, 500)
    kcl_source: str = "controlnet"
    kcl_blocks: tuple[str, ...] = ("down_blocks.2",)
    kcl_layer: str = "attn2"
    # The official target is a 0–255 image compared without /255: after the clamp it is ~binary.
    kcl_uint8_target_quirk: bool = False
    heatmap_size: int = 64
    heatmap_sigma: float = 2.0

    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = None
    validation_steps: int | None = None
    validation_samples: int = 2
    validation_inference_steps: int = 20
    resume: str | None = None
    report_to: str = "none"
    seed: int = 0
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self):
        # The CLI may pass "250,500" and "down_blocks.2,down_blocks.1".
        if isinstance(self.kcl_timesteps, str):
            self.kcl_timesteps = tuple(t for t in self.kcl_timesteps.split(",") if t.strip())
        if isinstance(self.kcl_blocks, str):
            self.kcl_blocks = tuple(b.strip() for b in self.kcl_blocks.split(",") if b.strip())
        try:
            self.kcl_timesteps = tuple(int(t) for t in self.kcl_timesteps)
        except (TypeError, ValueError):
            raise SpbenchError(f"--kcl-timesteps {self.kcl_timesteps!r}: expected two integers LOW,HIGH, e.g. 250,500") from None
        self.kcl_blocks = tuple(self.kcl_blocks)
        self.sets = list(self.sets or [])
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str):
            if not ok:
                raise SpbenchError(message)

        need(self.kcl_definition in KCL_DEFINITIONS, f"--kcl-definition {self.kcl_definition!r}: use {' or '.join(KCL_DEFINITIONS)}")
        need(self.kcl_source in KCL_SOURCES, f"--kcl-source {self.kcl_source!r}: use {' or '.join(KCL_SOURCES)}")
        need(self.mixed_precision in MIXED_PRECISION, f"--mixed-precision {self.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
        need(self.report_to in REPORT_TO, f"--report-to {self.report_to!r}: use one of {', '.join(REPORT_TO)}")
        need(len(self.kcl_timesteps) == 2 and 0 <= self.kcl_timesteps[0] <= self.kcl_timesteps[1],
             f"--kcl-timesteps {self.kcl_timesteps}: expected two timesteps LOW HIGH with 0 <= LOW <= HIGH")
        need(bool(self.kcl_blocks), "--kcl-blocks is empty: name at least one block, e.g. down_blocks.2")
        for name, value in (("--batch-size", self.batch_size), ("--epochs", self.epochs),
                            ("--checkpointing-steps", self.checkpointing_steps), ("--heatmap-size", self.heatmap_size),
                            ("--kpt-lr-decay-epochs", self.kpt_lr_decay_epochs)):
            need(value >= 1, f"{name} must be at least 1 (got {value})")
        for name, value in (("--max-steps", self.max_steps), ("--validation-steps", self.validation_steps),
                            ("--checkpoints-total-limit", self.checkpoints_total_limit)):
            need(value is None or value >= 1, f"{name} must be at least 1 (got {value})")
        for name, value in (("--caption-dropout", self.caption_dropout), ("--kpt-token-probability", self.kpt_token_probability)):
            need(0.0 <= value <= 1.0, f"{name} must be between 0 and 1 (got {value})")
        need(self.learning_rate > 0 and self.kpt_learning_rate >= 0, "--learning-rate must be > 0 and --kpt-learning-rate >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kcl_timesteps"] = list(self.kcl_timesteps)
        d["kcl_blocks"] = list(self.kcl_blocks)
        return d
