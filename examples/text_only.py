"""A method of your own: Stable Diffusion 1.5 with no pose condition at all (a lower bound).

Run it without installing anything:

    spbench run --method examples.text_only:TextOnlySD --dataset sample --profile tiny

or register it from your package's pyproject.toml and use `--method text-only`:

    [project.entry-points."spbench.methods"]
    text-only = "examples.text_only:TextOnlySD"
"""

from spbench.methods import Method
from spbench.models.pipelines import run_pipeline
from spbench.models.stable_diffusion import load_sd_components, make_scheduler, place


class TextOnlySD(Method):
    name = "text-only"
    condition = "openpose"  # drawn and stored for reference; this method ignores it
    description = "SD1.5 from the prompt alone (no pose condition)"

    def load(self):
        from diffusers import StableDiffusionPipeline

        sd = load_sd_components(self.context.models["base"])  # the profile's SD1.5 (tiny or real)
        for module in (sd.unet, sd.vae, sd.text_encoder):
            place(module, self.context.device, self.context.dtype)
        self.pipe = StableDiffusionPipeline(
            vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
            scheduler=make_scheduler(self.context.config["generation"]["scheduler"], sd.scheduler_config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        self.pipe.set_progress_bar_config(disable=True)

    def generate(self, prompts, conditions, latents, settings):
        # Same seeds, sampler, steps and guidance as every other method; no condition passed.
        return run_pipeline(self.pipe, prompts, latents, settings)

    def identity(self):
        return {"base": self.context.models["base"]}
