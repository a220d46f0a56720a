"""One accelerate training loop for every trainable method (see :mod:`spbench.training.adapters`).

Per step: the real images are encoded by the frozen VAE, noised at a uniform random timestep of
the base model's DDPM schedule, and the frozen UNet — fed the trainable model's residuals —
predicts the noise (ε-MSE). Half the captions are dropped (classifier-free guidance); with
keypoint tokens, the visible keypoints' tokens are appended with probability 0.8 and KCL's
heatmap loss (η = 0.1) is added on the cross-attention maps of the keypoint tokens.

Every random choice of step s is drawn from a seed derived from (seed, process, s), and the data
order of an epoch from (seed, epoch): a run resumed from a checkpoint takes exactly the steps
the uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
from pathlib import Path

from spbench.errors import SpbenchError
from spbench.training import checkpoints as ckpt
from spbench.training.options import TrainingOptions

# One row per step: step, epoch, losses, learning rates and the samples of the main process's batch.
STEP_LOG = "steps.jsonl"
MAX_NONFINITE_STEPS = 5


def step_seed(seed: int, process: int, step: int) -> int:
    digest = hashlib.sha256(f"spbench-train:{seed}:{process}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _allow_precision(mixed: str) -> None:
    """accelerate keeps one mixed-precision setting per process and refuses another; a second run in
    the same process (a notebook, the tests) may ask for another, so forget the old one. (The
    distributed state, PartialState, is kept.)"""
    from accelerate.state import AcceleratorState

    shared = getattr(AcceleratorState, "_shared_state", {})
    if shared and str(shared.get("_mixed_precision")) != mixed:
        AcceleratorState._reset_state()


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def run_flags(options: TrainingOptions) -> dict:
    """The settings a training run is resolved from, as ``spbench run`` passes its flags to
    :func:`spbench.run.resolve.resolve_run`."""
    return {"method.name": options.method, "method.variant": options.variant, "dataset.name": options.dataset,
            "dataset.split": options.split, "dataset.data_root": options.data_root, "dataset.ann": options.ann,
            "dataset.limit": options.limit, "generation.seed": options.seed}


def kcl_switches(options: TrainingOptions, method) -> tuple[bool, bool]:
    """(train keypoint tokens, add the heatmap loss): the options, else the method's default —
    on where the method puts keypoint tokens in its prompts (``method.uses_keypoint_tokens``)."""
    tokens = method.uses_keypoint_tokens if options.keypoint_tokens is None else options.keypoint_tokens
    heatmap = tokens if options.heatmap_loss is None else options.heatmap_loss
    if heatmap and not tokens:
        raise SpbenchError("--heatmap-loss needs keypoint tokens (the loss reads their attention maps): add --keypoint-tokens")
    return tokens, heatmap


class Trainer:
    """Builds everything once; :meth:`train` runs (or resumes) to the last step."""

    def __init__(self, options: TrainingOptions):
        import torch
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration
        from diffusers import DDPMScheduler

        from spbench.methods.registry import get_method_class
        from spbench.models.hub import load_options
        from spbench.models.stable_diffusion import load_sd_components, place
        from spbench.run.requests import MethodContext
        from spbench.run.resolve import resolve_run
        from spbench.run.threads import limit_cpu_threads
        from spbench.schemas import get_schema
        from spbench.training.adapters import build_trainable
        from spbench.training.dataset import EpochBatches, TrainingDataset

        self.options = opts = options
        self.out = Path(opts.out)
        resolved = resolve_run(run_flags(opts), opts.profile, opts.sets, get_method_class)
        limit_cpu_threads(resolved.config)
        self.config, self.split, method_cls = resolved.config, resolved.split, resolved.method_cls
        mixed = opts.mixed_precision
        if mixed == "auto":
            mixed = "fp16" if torch.cuda.is_available() else "no"
        if mixed == "fp16" and not torch.cuda.is_available():
            raise SpbenchError("--mixed-precision fp16 needs a CUDA GPU; use no or bf16 on a CPU")
        if opts.report_to == "tensorboard" and not (_installed("tensorboard") or _installed("tensorboardX")):
            raise SpbenchError("--report-to tensorboard needs the tensorboard package: pip install 'tensorboard>=2.14,<3'")
        _allow_precision(mixed)
        self.accelerator = acc = Accelerator(
            mixed_precision=mixed, log_with="tensorboard" if opts.report_to == "tensorboard" else None,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "logs")),
            cpu=not torch.cuda.is_available(),
        )
        self.mixed_precision = mixed
        self.device = acc.device
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)

        self.method = method_cls(MethodContext(self.config, self.device, torch.float32))
        self.train_tokens, self.heatmap_loss = kcl_switches(opts, self.method)
        self.schema = get_schema(resolved.schema)
        with load_options(self.config["models"]):  # models.variants / models.dtypes
            self.sd = load_sd_components(self.config["models"]["base"])
        self.noise_scheduler = DDPMScheduler.from_config(self.sd.scheduler_config)
        self.token_ids: list[int] = []
        if self.train_tokens:
            from spbench.models.keypoint_tokens import add_keypoint_tokens

            self.token_ids = add_keypoint_tokens(self.sd.tokenizer, self.sd.text_encoder, self.schema)
        self.trainable = build_trainable(self.method, self.sd, seed=opts.seed)
        model = self.trainable.model
        if opts.gradient_checkpointing:
            for m in (model, self.sd.unet):
                if getattr(m, "_supports_gradient_checkpointing", False):
                    m.enable_gradient_checkpointing()
        place(self.sd.vae, self.device, self.weight_dtype)
        place(self.sd.unet, self.device, self.weight_dtype)
        # The token rows train in float32; without tokens the text encoder is frozen like the rest.
        place(self.sd.text_encoder, self.device, torch.float32 if self.train_tokens else self.weight_dtype)
        place(model, self.device, torch.float32)

        self.dataset = TrainingDataset(
            self.split, self.method, self.config["generation"]["canvas"], self.config["generation"]["canvas_mode"],
            heatmaps=self.heatmap_loss, heatmap_size=opts.heatmap_size, heatmap_sigma=opts.heatmap_sigma,
        )
        self.steps_per_epoch = EpochBatches.steps_per_epoch(len(self.dataset), opts.batch_size, acc.num_processes)
        self.max_steps = opts.max_steps or opts.epochs * self.steps_per_epoch

        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": opts.learning_rate}]
        self.frozen_rows = None
        if self.train_tokens:
            from spbench.training.tokens import FrozenRows

            embedding = self.sd.text_encoder.get_input_embeddings()
            embedding.weight.requires_grad_(True)
            self.frozen_rows = FrozenRows(embedding, self.token_ids)
            groups.append({"params": [embedding.weight], "lr": opts.kpt_learning_rate})
        optimizer = torch.optim.AdamW(groups, lr=opts.learning_rate, betas=(opts.adam_beta1, opts.adam_beta2),
                                      weight_decay=opts.adam_weight_decay, eps=opts.adam_epsilon)
        spe, decay, every = self.steps_per_epoch, opts.kpt_lr_decay, opts.kpt_lr_decay_epochs
        # Stepped once per optimiser step; the token lr halves every `every` epochs of `spe` steps.
        lambdas = [lambda step: 1.0] + ([lambda step: decay ** ((step // spe) // every)] if self.train_tokens else [])
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        # The LR scheduler is saved as JSON by save_checkpoint, not registered with accelerate,
        # whose custom_checkpoint_<i>.pkl is unpickled with weights_only=False (it could run code).
        acc.register_save_state_pre_hook(self._save_model_hook)
        acc.register_load_state_pre_hook(self._load_model_hook)

        self.kcl_layers: list[str] = []
        if self.heatmap_loss:  # checked now, not at the first step
            from spbench.models.attention_capture import chosen_layers

            self.kcl_layers = chosen_layers(self.kcl_source_model(), opts.kcl_blocks, opts.kcl_layer)
        self.store = None
        self.nonfinite = 0
        self.global_step = 0
        self.sums = {"loss": 0.0, "ldm": 0.0, "ht": 0.0, "ht_steps": 0, "steps": 0}
        self.last: dict = {}
        self.resumed_from: str | None = None

    # -- models in checkpoints -------------------------------------------------------------------
    def _save_model_hook(self, models, weights, output_dir):
        if self.accelerator.is_main_process:
            folder = Path(output_dir) / self.trainable.subfolder
            self.accelerator.unwrap_model(models[0]).save_pretrained(folder, safe_serialization=True)
            if self.train_tokens:
                from spbench.models.keypoint_tokens import LEARNED_EMBEDS
                from spbench.training.tokens import save_rows

                save_rows(folder / LEARNED_EMBEDS, self.sd.tokenizer, self.sd.text_encoder, self.schema)
        weights.clear()  # the model folder holds the weights; accelerate must not write them again

    def _load_model_hook(self, models, input_dir):
        from safetensors.torch import load_file

        folder = Path(input_dir) / self.trainable.subfolder
        model = self.accelerator.unwrap_model(models.pop())
        state = {}
        for shard in sorted(folder.glob("*.safetensors")):
            state.update(load_file(shard))
        model.load_state_dict(state)  # strict: every weight must be there
        if self.train_tokens:
            from spbench.models.keypoint_tokens import LEARNED_EMBEDS
            from spbench.training.tokens import load_rows

            load_rows(folder / LEARNED_EMBEDS, self.sd.tokenizer, self.sd.text_encoder, self.schema)

    # -- the loop ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self):
        """Attention capture installed for the heatmap loss (restored on exit)."""
        if not self.heatmap_loss:
            yield self
            return
        from spbench.models.attention_capture import capture_cross_attention

        with capture_cross_attention(self.kcl_source_model(), self.options.kcl_blocks, self.options.kcl_layer) as store:
            self.store = store
            try:
                yield self
            finally:
                self.store = None

    def kcl_source_model(self):
        """The model whose cross-attention the heatmap loss reads (the trainable one, or the UNet)."""
        return self.accelerator.unwrap_model(self.model) if self.options.kcl_source == "controlnet" else self.sd.unet

    def batches(self, epoch: int, start: int = 0):
        import torch

        from spbench.training.dataset import EpochBatches, collate

        sampler = EpochBatches(len(self.dataset), self.options.batch_size, self.options.seed, epoch, start,
                               self.accelerator.num_processes, self.accelerator.process_index)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate,
                                           num_workers=self.options.num_workers)

    def prompts(self, batch: dict, rng: random.Random) -> list[str]:
        """Captions of the batch: the official keypoint prompt (tokens of the visible keypoints)
        with probability ``kpt_token_probability``, else the plain prompt; then dropped to "" with
        probability ``caption_dropout``. Both draws are made for every sample, so the stream of
        random numbers never depends on the data."""
        from spbench.models.keypoint_tokens import keypoint_prompt

        out = []
        for index in batch["index"].tolist():
            sample = self.split.samples[index]
            add = rng.random() < self.options.kpt_token_probability
            drop = rng.random() < self.options.caption_dropout
            out.append("" if drop else keypoint_prompt(sample) if self.train_tokens and add else sample.prompt)
        return out

    def training_step(self, batch: dict) -> dict:
        import torch
        import torch.nn.functional as F

        from spbench.training.kcl_loss import kcl_loss, keypoint_token_positions

        opts, acc = self.options, self.accelerator
        seed = step_seed(opts.seed, acc.process_index, self.global_step)
        torch.manual_seed(seed)  # dropout inside the trainable model
        rng = random.Random(seed)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        prompts = self.prompts(batch, rng)
        ids = self.sd.tokenizer(prompts, max_length=self.sd.tokenizer.model_max_length, padding="max_length",
                                truncation=True, return_tensors="pt").input_ids.to(self.device)
        pixels = batch["pixel_values"].to(self.device, self.weight_dtype)
        condition = batch["condition"].to(self.device)
        if condition.is_floating_point():
            condition = condition.to(self.weight_dtype)
        with torch.no_grad():
            latents = self.sd.vae.encode(pixels).latent_dist.sample(generator=gen) * self.sd.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=gen, device=self.device, dtype=latents.dtype)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                  generator=gen, device=self.device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)

        with acc.autocast():
            with torch.set_grad_enabled(self.train_tokens):
                hidden = self.sd.text_encoder(ids)[0]
            # Records the chosen layers of whichever model carries them (--kcl-source).
            recording = self.store.record() if self.store is not None else contextlib.nullcontext()
            with recording:
                extra = self.trainable.unet_inputs(self.model, noisy, timesteps, hidden, condition)
                extra = {k: ([t.to(self.weight_dtype) for t in v] if isinstance(v, list) else v.to(self.weight_dtype))
                         for k, v in extra.items()}
                pred = self.sd.unet(noisy, timesteps, encoder_hidden_states=hidden, **extra).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        ldm = F.mse_loss(pred.float(), target.float())
        ht = None
        if self.store is not None:
            ht = kcl_loss(
                self.store.take(), keypoint_token_positions(ids, self.token_ids), batch["heatmaps"].to(self.device),
                timesteps, tuple(latents.shape[-2:]), opts.kcl_definition, opts.kcl_timesteps,
                opts.kcl_uint8_target_quirk, opts.heatmap_size,
            )
        loss = ldm if ht is None else ldm + opts.kcl_weight * ht
        acc.backward(loss)
        if self.train_tokens:
            weight = self.sd.text_encoder.get_input_embeddings().weight
            if acc.num_processes > 1 and weight.grad is not None:  # the text encoder is not wrapped by DDP
                weight.grad = acc.reduce(weight.grad, reduction="mean")
        if opts.max_grad_norm:
            # Unscale (fp16) once, then clip the model and the token table each on its own, as the
            # official script; accelerate's clip_grad_norm_ would unscale a second time and fail.
            acc.unscale_gradients()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opts.max_grad_norm)
            if self.train_tokens:
                torch.nn.utils.clip_grad_norm_([self.sd.text_encoder.get_input_embeddings().weight], opts.max_grad_norm)
        lrs = [group["lr"] for group in self.optimizer.param_groups]  # the rates this step used
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.frozen_rows is not None:
            self.frozen_rows.restore()
        if self.store is not None:
            self.store.clear()
        self.global_step += 1
        values = {"loss": loss.item(), "ldm": ldm.item(), "ht": None if ht is None else ht.item()}
        # fp16's grad scaler skips a step whose gradients overflowed; only a run of them is fatal.
        self.nonfinite = 0 if math.isfinite(values["loss"]) else self.nonfinite + 1
        if self.nonfinite >= MAX_NONFINITE_STEPS:
            raise SpbenchError(f"training diverged: the loss was not finite for {self.nonfinite} steps up to step {self.global_step} "
                               f"({values}); lower --learning-rate or use --mixed-precision bf16 or no")
        self._account(values)
        return {**values, "lr": lrs[0], "lr_tokens": lrs[1] if self.train_tokens else None}

    def _account(self, values: dict) -> None:
        self.last = values
        if not math.isfinite(values["loss"]):
            return
        self.sums["steps"] += 1
        self.sums["loss"] += values["loss"]
        self.sums["ldm"] += values["ldm"]
        if values["ht"] is not None:
            self.sums["ht"] += values["ht"]
            self.sums["ht_steps"] += 1

    def train(self) -> Path:
        opts, acc = self.options, self.accelerator
        start = ckpt.resolve_resume(self.out, opts.resume)
        if start is not None:
            self._resume(start)
        elif ckpt.complete_checkpoints(self.out):
            raise SpbenchError(f"{self.out} already holds checkpoints of a training run: continue it with --resume latest, or pass a new --out")
        elif acc.is_main_process:
            (self.out / STEP_LOG).unlink(missing_ok=True)
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self.write_record("running")
        if opts.report_to == "tensorboard":
            from spbench.training.record import hparams

            acc.init_trackers("spbench-train", config=hparams(opts))
        progress, task = self._progress()
        try:
            with self.session():
                epoch, batch_in_epoch = divmod(self.global_step, self.steps_per_epoch)
                while self.global_step < self.max_steps:
                    for batch in self.batches(epoch, batch_in_epoch):
                        values = self.training_step(batch)
                        self._after_step(values, batch, epoch, progress, task)
                        if self.global_step >= self.max_steps:
                            break
                    epoch, batch_in_epoch = epoch + 1, 0
                if not (ckpt.checkpoint_dir(self.out, self.global_step) / ckpt.STATE_FILE).is_file():
                    self.save_checkpoint()  # the final model is always in a checkpoint
        finally:
            if progress is not None:
                progress.stop()
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.write_record("finished")
        acc.end_training()
        return self.out

    def _after_step(self, values: dict, batch: dict, epoch: int, progress, task) -> None:
        opts, acc = self.options, self.accelerator
        if opts.report_to == "tensorboard":
            names = {"loss": "loss", "ldm": "loss_ldm", "ht": "loss_ht", "lr": "lr", "lr_tokens": "lr_tokens"}
            acc.log({names[k]: v for k, v in values.items() if v is not None}, step=self.global_step)
        if acc.is_main_process:
            samples = [self.split.samples[i].sample_id for i in batch["index"].tolist()]
            from spbench.files import dumps

            with open(self.out / STEP_LOG, "a", encoding="utf-8") as f:  # a non-finite loss is written as null
                f.write(dumps({"step": self.global_step, "epoch": epoch, **values, "samples": samples}) + "\n")
        if progress is not None:
            progress.update(task, advance=1, loss=values["loss"])
        if self.global_step % opts.checkpointing_steps == 0:
            self.save_checkpoint()
        if opts.validation_steps and self.global_step % opts.validation_steps == 0:
            self.validate()

    def _progress(self):
        if not (self.options.progress and self.accelerator.is_main_process):
            return None, None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(TextColumn("training {task.fields[method]}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn())
        task = progress.add_task("train", total=self.max_steps, completed=self.global_step,
                                 method=self.options.method, loss=float("nan"))
        progress.start()
        return progress, task

    # -- checkpoints, resume, validation, record -----------------------------------------------------
    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        folder = ckpt.checkpoint_dir(self.out, self.global_step)
        if acc.is_main_process:
            ckpt.prune(self.out, self.options.checkpoints_total_limit)
        acc.wait_for_everyone()
        acc.save_state(str(folder))
        if acc.is_main_process:
            ckpt.write_scheduler_state(folder, self.lr_scheduler)
            epoch, batch_in_epoch = divmod(self.global_step, self.steps_per_epoch)
            ckpt.write_state(folder, {
                "global_step": self.global_step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "steps_per_epoch": self.steps_per_epoch, "batch_size": self.options.batch_size,
                "num_processes": acc.num_processes, "seed": self.options.seed,
                "dataset_hash": self.split.content_hash, "method": self.options.method,
                "variant": self.options.variant, "model_folder": self.trainable.subfolder,
                "sums": self.sums, "last": self.last,
            })
        acc.wait_for_everyone()
        return folder

    def _resume(self, folder: Path) -> None:
        state = ckpt.read_state(folder)
        mine = {"steps_per_epoch": self.steps_per_epoch, "batch_size": self.options.batch_size,
                "num_processes": self.accelerator.num_processes, "seed": self.options.seed,
                "dataset_hash": self.split.content_hash, "method": self.options.method, "variant": self.options.variant}
        changed = [f"{k} {state.get(k)} -> {v}" for k, v in mine.items() if state.get(k) != v]
        if changed:
            raise SpbenchError(f"cannot resume from {folder}: {'; '.join(changed)} (the data order would differ); "
                               "resume with the settings of the original run")
        self._load_state(folder)
        self.global_step = int(state["global_step"])
        ckpt.read_scheduler_state(folder, self.lr_scheduler, self.global_step)
        log = self.out / STEP_LOG
        if self.accelerator.is_main_process and log.is_file():  # steps after the checkpoint are redone
            from spbench.files import atomic_write_jsonl

            atomic_write_jsonl(log, [r for r in _step_rows(log) if r["step"] <= self.global_step])
        self.sums, self.last = dict(state["sums"]), dict(state.get("last") or {})
        self.resumed_from = str(folder)

    def _load_state(self, folder: Path) -> None:
        """accelerate's ``load_state``: optimizer, scaler and RNG files are read with
        ``weights_only=True`` (no registered custom objects, so no ``weights_only=False`` pickle);
        a file that pickles anything else is refused with one line."""
        import pickle

        try:
            self.accelerator.load_state(str(folder))
        except RuntimeError as e:
            # A checkpoint with custom_checkpoint_<i>.pkl (written before spbench kept the scheduler
            # in JSON, or planted): accelerate refuses it only after it has loaded everything else,
            # and since nothing is registered the pickle itself is never opened.
            if not str(e).startswith("Number of custom checkpoints") or self.accelerator._custom_objects:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SpbenchError(f"cannot resume from {folder}: {first[:200]}; resume from another checkpoint") from None
        except pickle.UnpicklingError as e:
            import re

            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            what = f"it pickles {found.group(1)}" if found else "not a tensor file"
            raise SpbenchError(f"refusing to resume from {folder}: a state file there is unsafe or damaged ({what}), and spbench "
                               "unpickles only tensors; resume from another checkpoint") from None
        except (FileNotFoundError, EOFError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SpbenchError(f"cannot resume from {folder}: {first[:200]}; resume from another checkpoint") from None

    def validate(self) -> Path:
        from spbench.training.validation import validation_images

        return validation_images(self)

    def write_record(self, status: str) -> Path:
        from spbench.training.record import write_record

        return write_record(self, status)


def _step_rows(path: Path) -> list[dict]:
    """The rows of steps.jsonl; a line cut short by a killed process (the last one) is dropped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
    return rows


def run_training(options: TrainingOptions) -> Path:
    """Train (or resume) as ``options`` say; returns the output folder (checkpoints, train.json)."""
    return Trainer(options).train()
