import pytest

from spbench.config import apply_set, load_profile, profile_names, resolve
from spbench.errors import SpbenchError


def test_packaged_profiles_resolve_with_the_pose_model_of_the_schema():
    assert {"tiny", "paper"} <= set(profile_names())
    paper = resolve(load_profile("paper"), "ap10k", {}, [])
    assert paper["models"]["base"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert paper["models"]["pose"] == "./weights/vitpose-plus-huge-ap10k"  # converted with --head ap10k
    assert paper["models"]["pose_dataset_index"] == 3  # ViTPose++'s AP-10K expert
    human = resolve(load_profile("paper"), "coco17", {}, [])
    assert human["models"]["pose"] == "./weights/vitpose-huge-humanart"
    tiny = resolve(load_profile("tiny"), "ap10k", {}, [])
    assert tiny["profile"]["tiny"] is True and tiny["generation"]["canvas"] == 64


def test_precedence_is_defaults_profile_flags_then_set():
    cfg = resolve(load_profile("tiny"), "ap10k", {"generation.steps": 7, "generation.seed": None},
                  ["generation.steps=3", "generation.guidance_scale=5", "models.base=/w/sd15"])
    assert cfg["generation"]["steps"] == 3
    assert cfg["generation"]["guidance_scale"] == 5.0 and isinstance(cfg["generation"]["guidance_scale"], float)
    assert cfg["generation"]["seed"] == 0  # a flag left at None keeps the default
    assert cfg["models"]["base"] == "/w/sd15"


@pytest.mark.parametrize("item, words", [
    ("generation.stepz=3", ["generation.stepz", "did you mean", "generation.steps"]),
    ("generation.steps=many", ["generation.steps", "expected int"]),
    ("steps", ["key=value"]),
    ("nothing.here=1", ["nothing.here"]),
])
def test_bad_set_names_the_key_and_the_fix(item, words):
    cfg = resolve(load_profile("tiny"), "ap10k", {}, [])
    with pytest.raises(SpbenchError) as e:
        apply_set(cfg, item)
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value)


def test_profile_errors(tmp_path):
    with pytest.raises(SpbenchError, match="did you mean 'tiny'"):
        load_profile("tinny")
    bad = tmp_path / "mine.yaml"
    bad.write_text("models: {base: x}\nsurprise: 1\n")
    with pytest.raises(SpbenchError, match="surprise"):
        load_profile(str(bad))
    good = tmp_path / "mine2.yaml"
    good.write_text("tiny: true\nmodels: {base: tiny://sd15}\npose_models: {ap10k: {id: oracle}}\n")
    cfg = resolve(load_profile(str(good)), "ap10k", {}, [])
    assert cfg["profile"]["name"] == "mine2" and cfg["models"]["pose"] == "oracle"


def test_generation_samples_is_the_old_name_of_images_per_prompt(tmp_path):
    """Renamed to say what it holds; the old key still works in --set, flags and profiles, and a
    run.json written under it reads back under the new name."""
    import json

    from spbench.run.folder import RunFolder

    assert resolve(load_profile("tiny"), "ap10k", {}, ["generation.samples=2"])["generation"]["images_per_prompt"] == 2
    assert resolve(load_profile("tiny"), "ap10k", {"generation.samples": 5}, [])["generation"]["images_per_prompt"] == 5
    profile = tmp_path / "old.yaml"
    profile.write_text("generation:\n  samples: 4\n")
    cfg = resolve(load_profile(str(profile)), "ap10k", {}, [])
    assert cfg["generation"]["images_per_prompt"] == 4 and "samples" not in cfg["generation"]
    with pytest.raises(SpbenchError, match="images_per_prompt must be an integer >= 1"):
        resolve(load_profile("tiny"), "ap10k", {}, ["generation.samples=0"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"config": {"generation": {"samples": 3, "steps": 50}}}))
    assert RunFolder(tmp_path / "run").read_run()["config"]["generation"] == {"images_per_prompt": 3, "steps": 50}


def test_a_run_folder_from_before_a_setting_existed_resumes(tmp_path):
    """A run.json written before the newer bases' model roles existed holds none of them: those
    models played no part in its images, so the folder resumes; a setting it does hold still counts,
    and a missing one with a known old value (condition_render: native) is compared as that value."""
    import copy
    import json

    from spbench.data.registry import load_split
    from spbench.run.folder import RunFolder

    cfg = resolve(load_profile("tiny"), "ap10k", {}, [])
    split = load_split("sample").limit(1)
    old = copy.deepcopy(cfg)
    for role in ("sdxl_base", "controlnet_sd3", "flux_base"):
        del old["models"][role]
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    info = {"run": "run", "dataset": {"hash": split.content_hash}}
    folder.run_json.write_text(json.dumps({**info, "config": old}))
    folder.start(cfg, info, list(split.samples))  # resumes
    changed = copy.deepcopy(cfg)
    changed["models"]["base"] = "tiny://sd-other"
    with pytest.raises(SpbenchError, match="other settings"):
        folder.start(changed, info, list(split.samples))
    del old["generation"]["condition_render"]  # written before it existed: conditions were drawn natively
    folder.run_json.write_text(json.dumps({**info, "config": old}))
    official = copy.deepcopy(cfg)
    official["generation"]["condition_render"] = "official"
    with pytest.raises(SpbenchError, match="condition_render"):
        folder.start(official, info, list(split.samples))
