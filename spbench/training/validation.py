"""Validation images during training: the first few samples of the split, generated through the
method's diffusers pipeline around the model being trained, saved as PNGs.

Written to ``OUT/validation/step-<step>/<sample_id>.png`` (and to TensorBoard when it reports).
Prompts carry every visible keypoint's token when tokens are trained. The initial noise comes
from the per-request seeds of generation and the global RNG is left untouched, so validating
does not change the training run. Under mixed precision the pipeline runs in the frozen models'
dtype, as generation does, on copies of the float32 trained model (and token-trained text encoder).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path


def validation_images(trainer) -> Path:
    import numpy as np
    import torch

    from spbench.files import atomic_save_image
    from spbench.models.keypoint_tokens import keypoint_prompt
    from spbench.models.pipelines import run_pipeline
    from spbench.run.requests import GenerationSettings
    from spbench.run.seeds import initial_noise, request_seed

    acc, opts = trainer.accelerator, trainer.options
    folder = trainer.out / "validation" / f"step-{trainer.global_step:06d}"
    if not acc.is_main_process:
        return folder
    gen = trainer.config["generation"]
    settings = GenerationSettings.from_config({**gen, "steps": opts.validation_inference_steps})
    dtype, device = trainer.weight_dtype, trainer.device
    requests = [trainer.dataset.request(i) for i in range(min(opts.validation_samples, len(trainer.dataset)))]
    prompts = [keypoint_prompt(r.sample) if trainer.train_tokens else r.sample.prompt for r in requests]
    conditions = [trainer.method.condition_image(r) for r in requests]
    seeds = [request_seed(gen["seed"], r.sample.sample_id, 0) for r in requests]
    latents = initial_noise(seeds, trainer.method.latent_shape(settings)).to(device, dtype)

    trained = acc.unwrap_model(trainer.model)
    was_training = trained.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = trained if dtype == torch.float32 else _copy(trained, dtype)
        sd = trainer.sd
        if sd.text_encoder.dtype != dtype:  # float32 while its token rows train
            sd = dataclasses.replace(sd, text_encoder=copy.deepcopy(sd.text_encoder).to(dtype))
        pipe = trainer.method.build_pipeline(sd, model)  # as generation builds it (generation.scheduler)
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*decode_latents.*", category=FutureWarning)
                images = run_pipeline(pipe, prompts, latents, settings,
                                      **trainer.method.pipeline_inputs(conditions, settings.conditioning_scale))
        finally:
            trained.train(was_training)
            del model, pipe, sd
    for r, image in zip(requests, images):
        atomic_save_image(folder / f"{r.sample.sample_id}.png", image)
    tracker = _tensorboard(acc) if opts.report_to == "tensorboard" else None
    if tracker is not None:
        stacked = np.stack([np.asarray(im.convert("RGB")) for im in images])
        tracker.add_images("validation", stacked, trainer.global_step, dataformats="NHWC")
    return folder


def _copy(model, dtype):
    """The model rebuilt from its config with its current weights, in ``dtype``. (Not a deepcopy:
    under mixed precision accelerate wraps the instance's forward in autocast and a cast of the
    outputs to float32, which the frozen UNet must not get.)"""
    from spbench.models.stable_diffusion import place

    clone = type(model).from_config(model.config)
    clone.load_state_dict(model.state_dict())
    return place(clone, next(model.parameters()).device, dtype)


def _tensorboard(acc):
    try:
        return acc.get_tracker("tensorboard", unwrap=True)  # the SummaryWriter
    except (ValueError, KeyError):
        return None
