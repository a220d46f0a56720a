"""`spbench run`, `spbench generate`, `spbench evaluate`: make a run folder's images, score them."""

from __future__ import annotations

from spbench.cli.console import console, err_console
from spbench.cli.options import GENERATION, SCORING, RunDir, RunName, ScoringSets, takes
from spbench.cli.prepare import ImportName, import_if_prepared
from spbench.registry import is_tiny_spec


def _flags(method, dataset, data_root, ann, split, limit, images_per_prompt, batch_size, seed, steps, variant, checkpoint,
           **_) -> dict:
    """The command-line flags as settings of the run configuration (None: the profile's)."""
    from spbench.training.checkpoints import model_folder

    return {
        "method.name": method, "method.variant": variant, "method.checkpoint": model_folder(checkpoint),
        "dataset.name": dataset, "dataset.split": split, "dataset.data_root": data_root,
        "dataset.ann": ann, "dataset.limit": limit,
        "generation.images_per_prompt": images_per_prompt, "generation.batch_size": batch_size,
        "generation.seed": seed, "generation.steps": steps,
    }


def _generate(options: dict, check=None, name=None, keep_lock=False):
    from spbench import harness

    prep = harness.prepare(_flags(**options), options["profile"], options["sets"] or [], options["out"], name=name)
    if check is not None:  # what scoring will need, checked before any image is made
        check(prep)
    main_process = harness.is_main_process()
    tiny_models = [v for v in prep.config["models"].values() if is_tiny_spec(v)]
    if (prep.config["profile"]["tiny"] or tiny_models) and main_process:
        what = "tiny profile" if prep.config["profile"]["tiny"] else "tiny model(s) " + ", ".join(tiny_models)
        err_console.print(f"[yellow]{what}: random models — the images and numbers check the machinery, they are not results[/]")
    counts = harness.generate(prep, keep_lock=keep_lock)
    if main_process:
        console.print(f"run folder: {prep.run.path}  ({counts['requests']} images, {counts['skipped']} already there)")
    return prep


def _print_record(record: dict, path) -> None:
    from spbench.harness import is_main_process
    from spbench.results.summary import print_record

    if is_main_process():
        print_record(console, record, path)


@takes(GENERATION, SCORING)
def run(name: RunName = None, **options):
    """Generate and score one method on one dataset; writes images, manifest.jsonl and result.json.

    Examples:

        spbench run --method controlnet --dataset sample --profile tiny

        spbench run -m controlnet -d ap10k --data-root /data/ap10k --profile paper --limit 100

        accelerate launch -m spbench run -m controlnet -d humanart --data-root /data --profile paper

    An interrupted run resumes where it stopped when the same command is run again.
    """
    from spbench import harness

    metric_names = harness.parse_metrics(options["metrics"], options["protocol"])
    pose_model, protocol = options["pose_model"], options["protocol"]

    def check(prep):
        harness.check_scoring(prep.config, metric_names, pose_model, protocol, prep.method_cls.name)

    prep = _generate(options, check=check, name=name, keep_lock=True)  # the run folder stays locked through scoring
    record, path = harness.evaluate(prep.run.path, metric_names, pose_model, protocol)
    _print_record(record, path)


@takes(GENERATION)
def generate(name: RunName = None, **options):
    """Generate images only (score them later with `spbench evaluate RUN_DIR`).

    Example:

        spbench generate --method controlnet --dataset sample --profile tiny --steps 10 --out runs
    """
    _generate(options, name=name)


@takes(SCORING)
def evaluate(run_dir: RunDir, name: ImportName = None, scoring_sets: ScoringSets = None, **options):
    """Score a run folder and write its result.json.

    Examples:

        spbench evaluate spbench-runs/sample-ap10k-controlnet-tiny

        spbench evaluate RUN_DIR --metrics pose --pose-model oracle      # sanity check: AP 100.0

        spbench evaluate RUN_DIR --pose-model /weights/vitpose-plus-huge

        spbench evaluate PREPARED_DIR --name mytool      # images made elsewhere (`spbench prepare --help`)

        spbench evaluate RUN_DIR --protocol stable-pose --set evaluation.stable_pose.kid_subset_size=100
    """
    from spbench import harness

    harness.scoring_config({}, scoring_sets)  # a wrong --set fails here, before anything is read or written
    metric_names = harness.parse_metrics(options["metrics"], options["protocol"])
    # A `spbench prepare` folder becomes a run of method NAME first (scoring's models checked before).
    import_if_prepared(run_dir, name, metric_names, options["pose_model"], options["protocol"])
    record, path = harness.evaluate(run_dir, metric_names, options["pose_model"], options["protocol"], sets=scoring_sets)
    _print_record(record, path)
