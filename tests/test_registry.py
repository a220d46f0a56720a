"""The one lazy registry (spbench.registry) and the registries built on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spbench.errors import SpbenchError
from spbench.registry import TINY_MODELS, Registry, tiny_builder


def test_entries_import_on_first_load_and_are_checked():
    reg = Registry("thing", base="collections.abc:Mapping", base_name="Mapping")
    reg.register("ordered", "collections:OrderedDict")
    reg.register("decoder", "json:JSONDecoder")
    reg.register("missing", "json:NoSuchThing")
    assert list(reg) == ["ordered", "decoder", "missing"] and "ordered" in reg and "nope" not in reg
    import collections

    assert reg["ordered"] is collections.OrderedDict
    with pytest.raises(SpbenchError, match="thing 'decoder': json:JSONDecoder is not a subclass of Mapping"):
        reg.load("decoder")
    with pytest.raises(SpbenchError, match="thing 'missing': cannot import json:NoSuchThing"):
        reg.load("missing")
    with pytest.raises(SpbenchError, match="unknown thing 'orderd'; did you mean 'ordered'"):
        reg.load("orderd")
    with pytest.raises(KeyError):
        reg["orderd"]


def test_callable_check_aliases_and_objects():
    reg = Registry("builder", callable_=True)
    reg.register("dumps", "json:dumps", aliases=("to-json",))
    reg.register("three", 3)
    import json

    assert reg.load("to-json") is json.dumps and reg.canonical("to-json") == "dumps" and "to-json" in reg
    with pytest.raises(SpbenchError, match="builder 'three': int is not callable"):
        reg.load("three")
    with pytest.raises(SpbenchError, match="registered twice"):
        reg.register("dumps", "json:loads")


def test_listing_imports_nothing():
    code = ("import sys\n"
            "from spbench.methods.registry import method_names\n"
            "from spbench.registry import TINY_MODELS\n"
            "from spbench.metrics.spec import METRIC_SPECS\n"
            "names = method_names() + list(TINY_MODELS) + list(METRIC_SPECS)\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'spbench.metrics.pose_scoring', "
            "'spbench.methods.spctrl') if m in sys.modules]\n"
            "print(len(names), heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_tiny_models_are_one_registry_every_loader_asks():
    assert set(TINY_MODELS) == {"sd15", "zoedepth", "sam-hq", "vitpose", "clip", "grounding-dino", "inception",
                                "lpips", "dinov2", "sdxl", "controlnet-sdxl", "sd3", "controlnet-sd3", "flux",
                                "controlnet-flux-union"}
    from spbench.models.stable_diffusion import build_tiny_sd

    assert tiny_builder("tiny://sd15", "tiny://sd15") is build_tiny_sd
    with pytest.raises(SpbenchError, match="unknown tiny model 'tiny://sd1' \\(models.base\\): use tiny://sd15"):
        tiny_builder("tiny://sd1", "tiny://sd15", "unknown tiny model {spec!r} (models.base): use {known}")
    with pytest.raises(SpbenchError, match="did you mean 'clip'"):
        tiny_builder("tiny://clp")


def test_methods_datasets_conditions_metrics_are_registries():
    from spbench.conditions import CONDITIONS
    from spbench.data.registry import DATASETS, load_split
    from spbench.methods.registry import METHODS, get_method_class
    from spbench.metrics.evaluate import METRICS, scoring_function
    from spbench.metrics.spec import METRIC_SPECS

    for reg in (CONDITIONS, DATASETS, METHODS, METRICS):
        assert isinstance(reg, Registry)
    assert list(METRICS) == list(METRIC_SPECS) == ["pose", "clip", "fid", "det", "diversity", "humansd-pose",
                                                   "humansd-fid", "humansd-kid", "humansd-clip", "stablepose-pose",
                                                   "stablepose-fid", "stablepose-kid", "stablepose-clip"]
    assert callable(scoring_function("fid"))
    assert get_method_class("real").name == "real"
    with pytest.raises(SpbenchError, match="unknown metric 'fdi'"):
        scoring_function("fdi")
    # The sample's splits are ordinary datasets; `sample` names them, and records stay as before.
    a, b = load_split("sample", "humanart"), load_split("sample-humanart")
    assert (a.dataset, a.name) == (b.dataset, b.name) == ("sample", "humanart")
    assert a.content_hash == b.content_hash and a.root == b.root


def test_metric_spec_declares_headline_label_and_direction_once():
    from spbench.metrics.spec import METRIC_SPECS
    from spbench.tables.definitions import CLIP, DET, FID, POSE

    assert [(c.key, c.header) for c in (POSE, FID, CLIP, DET)] == [
        ("pose.AP", "Pose mAP↑"), ("fid.fid", "FID↓"), ("clip.score", "CLIP-Score↑"), ("det.AP75", "Det AP.75↑")]
    assert METRIC_SPECS["fid"].direction == "lower" and METRIC_SPECS["det"].format(12.345) == "12.35"
    assert METRIC_SPECS["pose"].format(None) == "—"


def test_stand_in_says_which_cells_a_sample_run_fills():
    from spbench.data.registry import dataset_of_split, stand_in

    assert stand_in("sample", "ap10k") == ("ap10k", True)
    assert stand_in("sample-humanart", "humanart") == ("humanart", True)
    assert stand_in("humanart", "validation") == ("humanart", False)
    assert stand_in("someone-elses", "x") == ("someone-elses", False)
    assert dataset_of_split("sample", "humanart").schema == "coco17"
    assert dataset_of_split("ap10k", "val-split1").name == "ap10k"
