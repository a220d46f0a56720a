"""Keypoint schemas from files: the format and its checks, every place that follows the schema
(readers, index map, SPR, OpenPose drawing, OKS through pycocotools), and runs end to end on the
21-keypoint Human-Art sample in tests/data/humanart21 (tiny models)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import spbench_in_process
from spbench import schemas
from spbench.canvas import CanvasTransform
from spbench.data.records import KPT_PLACEHOLDER, Instance, Sample
from spbench.data.registry import load_split
from spbench.errors import SpbenchError
from spbench.schema_files import definition, load_schema_file, requested_schema, resolve_schema, schema_from_definition
from spbench.schemas import AP10K, COCO17, get_schema, limb_index_offset

DATA = Path(__file__).resolve().parent / "data" / "humanart21"
SCHEMA_FILE = DATA / "humanart21.yaml"
ANN = DATA / "HumanArt" / "annotations" / "validation_humanart.json"
# Human-Art-21 as mmpose's configs/_base_/datasets/humanart21.py writes it, typed here by hand.
HUMANART21_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                    "right_knee", "left_ankle", "right_ankle", "left_finger", "right_finger", "left_toe", "right_toe"]


def write(tmp_path, data, name="s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def chain_definition(name: str, k: int) -> dict:
    """A synthetic K-keypoint schema: a chain p0-p1-...; sigmas 0.05; (p0, p1) flip."""
    return {"name": name, "keypoints": [f"p{i}" for i in range(k)], "skeleton": [[i, i + 1] for i in range(k - 1)],
            "sigmas": [0.05] * k, "flip_pairs": [[0, 1]]}


# -- the file format ---------------------------------------------------------------------------


def test_sample_schema_file_reads_as_humanart21():
    s = load_schema_file(SCHEMA_FILE)
    assert s.name == "humanart21" and list(s.keypoints) == HUMANART21_NAMES and s.num_keypoints == 21
    # Links by name become index pairs: left_ankle-left_knee is (15, 13), right_wrist-right_finger (10, 18).
    assert len(s.skeleton) == 23 and s.skeleton[0] == (15, 13) and s.skeleton[-1] == (10, 18)
    assert s.sigmas[:17] == COCO17.sigmas and s.sigmas[17:] == (0.089,) * 4
    assert (17, 18) in s.flip_pairs and (19, 20) in s.flip_pairs and len(s.flip_pairs) == 10
    assert s.tokens[17] == "<left-finger>" and s.descriptions[20] == "right toe" and s.init_words[19] == "toe"
    assert s.annotation_key == "keypoints_21" and s.official_protocol == "coco17" and s.clip_group_by == "scene"
    assert s.sha256 == hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() and s.from_file
    # Every limb is embedded by the SPR; the index map keeps the official layout (K <= 50).
    assert s.indexed_limbs == s.skeleton and s.limb_index_offset == 51


def test_json_and_yaml_give_the_same_schema(tmp_path):
    data = yaml.safe_load(SCHEMA_FILE.read_text())
    from_json = load_schema_file(write(tmp_path, data, "h.json"))
    by_index = dict(data, skeleton=[[HUMANART21_NAMES.index(a), HUMANART21_NAMES.index(b)] for a, b in data["skeleton"]])
    from_indices = load_schema_file(write(tmp_path, by_index, "i.yaml"))
    ours = load_schema_file(SCHEMA_FILE)
    for other in (from_json, from_indices):
        assert definition(other) == definition(ours)
    # The recorded definition reads back to the same schema.
    again = schema_from_definition(definition(ours), "record", ours.sha256)
    assert definition(again) == definition(ours) and again.tokens == ours.tokens


def test_optional_words_and_colors(tmp_path):
    data = chain_definition("words3", 3)
    data.update(tokens=["<a>", "<b>", "<c>"], descriptions=["first joint", "second", "third one"],
                init_words=["joint", "second", "one"], limb_colors=[[10, 20, 30], [200, 100, 50]])
    s = load_schema_file(write(tmp_path, data))
    assert s.tokens == ("<a>", "<b>", "<c>") and s.descriptions[0] == "first joint" and s.init_words[2] == "one"
    assert s.limb_colors == ((10, 20, 30), (200, 100, 50)) and s.keypoint_colors is None


BAD_CASES = [
    # (change to the 3-keypoint chain definition, field the message names, words it contains)
    (lambda d: d.update(sigmas=[0.05, 0.05]), "sigmas", "3 OKS sigmas"),
    (lambda d: d.update(sigmas=[0.05, 0.0, 0.05]), "sigmas[1]", "positive finite"),
    (lambda d: d.update(sigmas=[0.05, -0.1, 0.05]), "sigmas[1]", "positive finite"),
    (lambda d: d.update(sigmas=[0.05, float("nan"), 0.05]), "sigmas[1]", "positive finite"),
    (lambda d: d.update(sigmas=[0.05, float("inf"), 0.05]), "sigmas[1]", "positive finite"),
    (lambda d: d.update(sigmas=[0.05, "wide", 0.05]), "sigmas[1]", "positive finite"),
    (lambda d: d.update(skeleton=[[0, 3]]), "skeleton[0]", "indices 0..2"),
    (lambda d: d.update(skeleton=[[0, -1]]), "skeleton[0]", "indices 0..2"),
    (lambda d: d.update(skeleton=[[0, "elbow"]]), "skeleton[0]", "names listed under keypoints"),
    (lambda d: d.update(skeleton=[[1, 1]]), "skeleton[0]", "two different keypoints"),
    (lambda d: d.update(skeleton=[[0, 1], [1, 0]]), "skeleton[1]", "each limb once"),
    (lambda d: d.update(skeleton=[[0, 1, 2]]), "skeleton[0]", "a pair"),
    (lambda d: d.update(skeleton=[]), "skeleton", "at least one limb"),
    (lambda d: d.update(flip_pairs=[[0, 0]]), "flip_pairs[0]", "two different keypoints"),
    (lambda d: d.update(flip_pairs=[[0, 1], [1, 2]]), "flip_pairs[1]", "one flip pair at most"),
    (lambda d: d.update(flip_pairs=[[0, 5]]), "flip_pairs[0]", "indices 0..2"),
    (lambda d: d.update(keypoints=["p0", "p1", "p0"]), "keypoints[2]", "unique"),
    (lambda d: d.update(keypoints=[]), "keypoints", "non-empty list"),
    (lambda d: d.update(name="coco17"), "name", "other than the built-in"),
    (lambda d: d.update(name="two words"), "name", "letters, digits"),
    (lambda d: d.pop("sigmas"), "sigmas", "every schema file needs"),
    (lambda d: d.update(sigma=[0.1]), "unknown field(s) sigma", "allowed"),
    (lambda d: d.update(tokens=["<a>", "<a>", "<c>"]), "tokens[1]", "unique"),
    (lambda d: d.update(tokens=["<a b>", "<b>", "<c>"]), "tokens[0]", "one word"),
    (lambda d: d.update(descriptions=["a", "b"]), "descriptions", "3 strings"),
    (lambda d: d.update(limb_colors=[[0, 0, 300], [0, 0, 0]]), "limb_colors[0]", "0..255"),
    (lambda d: d.update(official_protocol="mpii"), "official_protocol", "ap10k, coco17"),
    (lambda d: d.update(clip_group_by="species"), "clip_group_by", "category or scene or none"),
]


@pytest.mark.parametrize("change, field, words", BAD_CASES)
def test_bad_schema_files_are_one_line_errors_naming_file_and_field(tmp_path, change, field, words):
    data = chain_definition("bad", 3)
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(SpbenchError) as e:
        load_schema_file(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path.resolve())) and field in message and words in message


def test_index_map_capacity_and_file_errors(tmp_path):
    # 200 keypoints: limbs from 201, so at most 55 fit below 256.
    too_many = chain_definition("wide200", 200)
    with pytest.raises(SpbenchError, match=r"skeleton: expected at most 55 limbs with 200 keypoints"):
        load_schema_file(write(tmp_path, too_many))
    fits = dict(too_many, skeleton=[[i, i + 1] for i in range(55)])
    assert load_schema_file(write(tmp_path, fits, "fits.yaml")).limb_index_offset == 201
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpbenchError, match=r"broken.yaml: not valid YAML"):
        load_schema_file(tmp_path / "broken.yaml")
    with pytest.raises(SpbenchError, match=r"keypoint schema file not found"):
        load_schema_file(tmp_path / "missing.yaml")
    with pytest.raises(SpbenchError, match=r"neither a built-in keypoint schema"):
        resolve_schema("no-such-schema")


def test_one_name_one_definition(tmp_path):
    first = resolve_schema(str(write(tmp_path, chain_definition("twice", 3), "a.yaml")))
    assert get_schema("twice") is first and resolve_schema("twice") is first
    other = dict(chain_definition("twice", 3), sigmas=[0.05, 0.06, 0.05])
    with pytest.raises(SpbenchError, match=r"name: keypoint schema 'twice' is already defined by .*a\.yaml"):
        resolve_schema(str(write(tmp_path, other, "b.yaml")))


def test_requested_schema_reads_flags_then_sets():
    assert requested_schema({}, ["generation.steps=2"]) is None
    assert requested_schema({"dataset.schema": "coco17"}, []) == "coco17"
    assert requested_schema({}, ["dataset.schema=a.yaml", "dataset.schema = b.yaml"]) == "b.yaml"


# -- the 17-keypoint defaults ------------------------------------------------------------------


def test_builtin_schemas_keep_the_official_layout():
    assert limb_index_offset(17) == 51 and limb_index_offset(50) == 51 and limb_index_offset(51) == 52
    assert not AP10K.from_file and AP10K.indexed_limbs == AP10K.skeleton[:17]
    assert len(COCO17.skeleton) == 19 and COCO17.indexed_limbs == COCO17.skeleton[:17]
    assert COCO17.tokens[0] == "<nose>" and AP10K.init_words[4] == "tail" and COCO17.annotation_key == "keypoints"
    split = load_split("humanart", data_root=str(DATA))  # the same files, read as Human-Art's COCO-17
    assert split.samples[0].schema == "coco17" and len(split.samples[0].instances[0].keypoints) == 17


# -- readers and split hash --------------------------------------------------------------------


def test_readers_take_the_keypoints_the_schema_names():
    doc = json.loads(ANN.read_text())
    ha = load_split("humanart", data_root=str(DATA), schema=str(SCHEMA_FILE))
    generic = load_split("coco-keypoints", ann=str(ANN), data_root=str(DATA), schema="humanart21")
    coco = load_split("humanart", data_root=str(DATA))
    for split in (ha, generic):
        assert len(split) == 3 and all(s.schema == "humanart21" for s in split.samples)
        first = split.samples[0].instances[0]
        assert [c for kp in first.keypoints for c in kp] == doc["annotations"][0]["keypoints_21"]
    # Unlabelled keypoint 18 (right finger) of the second person stays v = 0.
    assert ha.samples[0].instances[1].keypoints[18] == (0.0, 0.0, 0)
    assert ha.samples[0].prompt_template == "A cartoon of two people standing in a park. " + KPT_PLACEHOLDER
    assert generic.samples[0].prompt_template == ha.samples[0].prompt_template and generic.samples[0].scene == "cartoon"
    # Another schema, or the same schema from another file, never shares a split hash.
    assert len({ha.content_hash, coco.content_hash}) == 2


def test_split_hash_follows_the_schema_file(tmp_path, monkeypatch):
    data = dict(yaml.safe_load(SCHEMA_FILE.read_text()), name="humanart21b")
    monkeypatch.setattr(schemas, "_FILE_SCHEMAS", {})
    hash_a = load_split("humanart", data_root=str(DATA), schema=str(write(tmp_path, data, "a.yaml"))).content_hash
    # Same name and poses, other sigmas, read as another process would (nothing registered).
    monkeypatch.setattr(schemas, "_FILE_SCHEMAS", {})
    other = write(tmp_path, dict(data, sigmas=[0.05] * 21), "b.yaml")
    hash_b = load_split("humanart", data_root=str(DATA), schema=str(other)).content_hash
    assert hash_a != hash_b


def test_wrong_keypoint_count_names_the_field():
    small = {**chain_definition("chain5", 5), "annotation_key": "keypoints_21"}
    path = DATA.parent / "never-written.yaml"
    schema = schema_from_definition(small, str(path), "0" * 64)
    with pytest.raises(SpbenchError, match=r"annotations\[0\]\.keypoints_21: expected 15 numbers \(5 keypoints"):
        load_split("humanart", data_root=str(DATA), schema=schema)


# -- conditions and the SPR --------------------------------------------------------------------


def _chain_sample(schema_name: str, k: int, size: int = 256) -> Sample:
    """Keypoints of a K-chain on a diagonal grid inside a size x size image."""
    pts = tuple((float(8 + (i * 3) % (size - 16)), float(8 + (i * 7) % (size - 16)), 2) for i in range(k))
    inst = Instance("thing", (0.0, 0.0, float(size), float(size)), float(size * size), pts)
    return Sample("chain-1", 1, "x.jpg", size, size, schema_name, (inst,), "A photo of thing" + KPT_PLACEHOLDER)


def test_index_map_above_50_keypoints_puts_limbs_after_them(tmp_path):
    from spbench.conditions.spatial_pose import render_index_map

    resolve_schema(str(write(tmp_path, chain_definition("chain60", 60))))
    sample = _chain_sample("chain60", 60)
    m = render_index_map(sample, CanvasTransform(256, 256, 1.0, 1.0), stick_width=1, radius=1)
    values = set(np.unique(m).tolist())
    # Keypoints 1..60 and limbs 61.. (59 limbs: 61..119); nothing from the <=50 layout's 51-offset.
    assert set(range(1, 61)) <= values and max(values) <= 60 + 59
    x, y, _ = sample.instances[0].keypoints[59]
    assert m[int(y), int(x)] == 60  # the last keypoint is drawn last, with value K
    limbs = values - set(range(0, 61))
    assert limbs and min(limbs) >= 61


def test_spr_tables_follow_the_schema():
    from spbench.models.spr import SpatialPoseRepresentation

    schema = load_schema_file(SCHEMA_FILE)
    spr = SpatialPoseRepresentation(3, skeleton_type="rand", limbs=schema.indexed_limbs, num_keypoints=21, seed=1).eval()
    table = spr.embedding_table()
    kpt, sks = spr.keypoint_embeddings(), spr.skeleton_embeddings(spr.keypoint_embeddings())
    assert table.shape == (256, 3) and spr.keypoint_emb.shape[0] == 21 and sks.shape[0] == 23
    torch.testing.assert_close(table[1:22], kpt)
    torch.testing.assert_close(table[51:74], sks)
    assert not table[22:51].any() and not table[74:].any() and not table[0].any()
    # Above 50 keypoints: limb rows right after the keypoint rows; the table equals the masked reference.
    wide = SpatialPoseRepresentation(3, skeleton_type="rand", limbs=tuple((i, i + 1) for i in range(59)),
                                     num_keypoints=60, seed=2).eval()
    t = wide.embedding_table()
    torch.testing.assert_close(t[61:120], wide.skeleton_embeddings(wide.keypoint_embeddings()))
    index = torch.randint(0, 130, (2, 9, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(wide(index), wide.forward_masked(index))
    # The official 17-keypoint SPR keeps its default shape.
    assert SpatialPoseRepresentation(3).keypoint_emb.shape[0] == 17


def test_openpose_draws_every_limb_of_a_file_skeleton(tmp_path):
    from spbench.conditions.openpose import render_openpose

    data = chain_definition("chain20", 20)
    data["limb_colors"] = [[100, 200, 50]] * 19
    resolve_schema(str(write(tmp_path, data)))
    sample = _chain_sample("chain20", 20)
    image = render_openpose(sample, CanvasTransform(256, 256, 1.0, 1.0), stick_width=2, radius=0)
    # The 19th limb (p18-p19), past OpenPose's 18 colours: drawn, in its colour at 60 % (int()).
    (x1, y1, _), (x2, y2, _) = sample.instances[0].keypoints[18:20]
    mid = (int((y1 + y2) / 2), int((x1 + x2) / 2))
    assert tuple(image[mid]) == (60, 120, 30)


# -- pose scoring ------------------------------------------------------------------------------


def test_oks_uses_the_file_sigmas_as_pycocotools_does():
    from pycocotools.cocoeval import COCOeval

    from spbench.metrics.pose import PoseEvaluator

    sigmas = np.array(yaml.safe_load(SCHEMA_FILE.read_text())["sigmas"], dtype=np.float64)
    schema = resolve_schema(str(SCHEMA_FILE))
    gt = np.array([[20.0 + 3 * i, 30.0 + 5 * i] for i in range(21)])
    area = 4000.0
    pred = gt.copy()
    pred[17:21] += [12.0, -9.0]  # fingers and toes off by (12, -9): sigma 0.089, the file's own
    pred[0] += [3.0, 0.0]
    # Hand: OKS = mean_j exp(-d_j^2 / (2 * area * (2 sigma_j)^2)) over the 21 labelled keypoints.
    d2 = ((pred - gt) ** 2).sum(axis=1)
    hand = float(np.mean(np.exp(-d2 / (2 * area * (2 * sigmas) ** 2))))

    # pycocotools' computeOks with the file's sigmas.
    ev = COCOeval(iouType="keypoints")
    ev.params.kpt_oks_sigmas = sigmas
    gt_ann = {"keypoints": np.c_[gt, np.full(21, 2)].ravel().tolist(), "area": area, "bbox": [0, 0, 100, 150]}
    dt_ann = {"keypoints": np.c_[pred, np.ones(21)].ravel().tolist(), "score": 1.0}
    ev._gts = {(1, 1): [gt_ann]}
    ev._dts = {(1, 1): [dt_ann]}
    ev.params.maxDets = [20]
    assert float(ev.computeOks(1, 1)[0, 0]) == pytest.approx(hand, abs=1e-12)
    assert 0.7 < hand < 0.95 and not any(abs(hand - t) < 0.01 for t in np.linspace(0.5, 0.95, 10))

    # spbench's pose AP of that one prediction: 100 x the share of COCO's OKS thresholds it passes.
    inst = Instance("person", (0.0, 0.0, 100.0, 150.0), area, tuple((float(x), float(y), 2) for x, y in gt))
    sample = Sample("s-1", 1, "x.jpg", 200, 200, schema.name, (inst,), "a person" + KPT_PLACEHOLDER)
    evaluator = PoseEvaluator(schema)
    evaluator.update(sample, CanvasTransform(200, 200, 1.0, 1.0), 0, [np.c_[pred, np.ones(21)]])
    expected = 100.0 * sum(hand >= t for t in np.linspace(0.5, 0.95, 10)) / 10
    assert evaluator.compute()["AP"] == pytest.approx(expected)


def test_tiny_vitpose_has_the_schema_head_and_flips_with_its_pairs():
    from spbench.metrics.pose_models import load_pose_model

    schema = load_schema_file(SCHEMA_FILE)
    model = load_pose_model("tiny://vitpose", num_keypoints=21)
    assert model.model.config.num_labels == 21
    model._check_head(schema)  # no error: 21 heatmaps for 21 keypoints
    # The official protocol's flip test: the mirrored crop's heatmaps go back with the file's flip
    # pairs. Expected by hand from the names: left_x <-> right_x, then the width reversed.
    pv = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    got = model._flip_tested_heatmaps(pv, schema.flip_pairs, shift=False)
    with torch.inference_mode():
        plain, mirrored = model.model(pv).heatmaps.numpy(), model.model(pv.flip(-1)).heatmaps.numpy()
    mirror_name = {n: n.replace("left_", "@").replace("right_", "left_").replace("@", "right_") for n in HUMANART21_NAMES}
    swap = [HUMANART21_NAMES.index(mirror_name[n]) for n in HUMANART21_NAMES]
    assert swap[17] == 18 and swap[19] == 20 and swap[0] == 0
    np.testing.assert_allclose(got, (plain + mirrored[:, swap, :, ::-1]) / 2, rtol=1e-5, atol=1e-6)


# -- end to end --------------------------------------------------------------------------------


RUN = ["--profile", "tiny", "--steps", "1", "--set", "generation.images_per_prompt=2", "--metrics", "pose"]
PERTURBED = ["--pose-model", "perturbed-oracle"]


@pytest.fixture(scope="module")
def spctrl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    schema_copy = out / "humanart21.yaml"
    schema_copy.write_bytes(SCHEMA_FILE.read_bytes())
    # Scored by the profile's pose model (tiny ViTPose, 21 heatmaps, flip test), then by the perturbed oracle.
    r = spbench_in_process("run", "--method", "spctrl", "--dataset", "humanart", "--data-root", DATA, "--limit", "2",
                           "--set", f"dataset.schema={schema_copy}", "--out", out, *RUN)
    assert r.returncode == 0, r.stderr + r.stdout
    run = out / "humanart-validation-humanart21-spctrl-tiny"
    r = spbench_in_process("evaluate", run, "--metrics", "pose", *PERTURBED)
    assert r.returncode == 0, r.stderr + r.stdout
    return out, run, schema_copy


def test_spctrl_runs_end_to_end_on_21_keypoints(spctrl_run):
    from PIL import Image

    _, run, schema_copy = spctrl_run
    assert sorted(p.name for p in (run / "images").glob("*.png")) == [
        f"humanart-{i}_k{k}.png" for i in (1, 2) for k in (0, 1)]
    # Index maps: keypoints 1..21 and the 23 limbs at 51..73 (official layout, K <= 50).
    values = set(np.unique(np.asarray(Image.open(run / "conditions" / "humanart-2.png"))).tolist())
    assert set(range(1, 22)) <= values and values <= {0, *range(1, 22), *range(51, 74)} and values & set(range(68, 74))
    record = json.loads((run / "result.json").read_text())
    pose = record["metrics"]["pose@perturbed-oracle"]
    assert 0.0 < pose["AP"] < 100.0 and record["evaluation"]["pose@perturbed-oracle"]["diagnostic"]
    assert record["evaluation"]["pose"]["model"] == "tiny://vitpose" and 0.0 <= record["metrics"]["pose"]["AP"] <= 100.0
    sha = hashlib.sha256(schema_copy.read_bytes()).hexdigest()
    assert record["config"]["dataset"]["schema"] == "humanart21"
    assert record["config"]["dataset"]["schema_sha256"] == sha
    kept = record["dataset"]["keypoint_schema"]
    assert kept["sha256"] == sha and kept["definition"]["keypoints"] == HUMANART21_NAMES
    assert any(d.startswith("dataset.schema=humanart21") for d in record["departures"])
    manifest = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    assert "<left-finger>" in manifest[0]["prompt"]  # keypoint tokens of the file's keypoints
    info = json.loads((run / "run.json").read_text())
    assert info["models"]["options"]["limb_schema"] == "humanart21"
    # Never in a Human-Art cell of the paper's tables: other keypoints, another dataset there.
    table = spbench_in_process("table", "--results", run.parent)
    assert "dataset humanart (keypoint schema humanart21) is in none of the paper's tables" in table.stderr


def test_a_run_is_scored_without_its_schema_file_and_never_resumed_under_another(spctrl_run, monkeypatch):
    out, run, schema_copy = spctrl_run
    data = yaml.safe_load(schema_copy.read_text())
    schema_copy.unlink()
    monkeypatch.setattr(schemas, "_FILE_SCHEMAS", {})  # a fresh process: only run.json knows the schema
    r = spbench_in_process("evaluate", run, "--metrics", "pose", "--pose-model", "oracle")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads((run / "result.json").read_text())["metrics"]["pose@oracle"]["AP"] == pytest.approx(100.0)
    # The same folder, a schema file of the same name with other sigmas: refused before any image.
    data["sigmas"] = [0.05] * 21
    schema_copy.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(schemas, "_FILE_SCHEMAS", {})
    r = spbench_in_process("generate", "--method", "spctrl", "--dataset", "humanart", "--data-root", DATA, "--limit", "2",
                           "--set", f"dataset.schema={schema_copy}", "--out", out, "--profile", "tiny", "--steps", "1",
                           "--set", "generation.images_per_prompt=2")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "schema_sha256" in errors[0] and "Traceback" not in r.stderr
    assert len(list((run / "images").glob("*.png"))) == 4  # nothing was made or removed


def test_bad_schema_file_stops_the_cli_in_one_line(tmp_path):
    path = write(tmp_path, dict(chain_definition("bad-cli", 3), sigmas=[0.1, 0.1]))
    r = spbench_in_process("run", "--method", "controlnet", "--dataset", "humanart", "--data-root", DATA,
                           "--set", f"dataset.schema={path}", "--out", tmp_path / "runs", *RUN, *PERTURBED)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "sigmas: expected a list of 3 OKS sigmas" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_controlnet_runs_on_the_generic_coco_reader_under_the_official_protocol(tmp_path):
    r = spbench_in_process("run", "--method", "controlnet", "--dataset", "coco-keypoints", "--ann", ANN,
                           "--data-root", DATA, "--set", f"dataset.schema={SCHEMA_FILE}", "--out", tmp_path,
                           "--protocol", "official", *RUN)
    assert r.returncode == 0, r.stderr + r.stdout
    run = tmp_path / "coco-keypoints-validation_humanart-humanart21-controlnet-tiny"
    r = spbench_in_process("evaluate", run, "--metrics", "pose", "--protocol", "official", *PERTURBED)
    assert r.returncode == 0, r.stderr + r.stdout
    record = json.loads((run / "result.json").read_text())
    assert len(list((run / "images").glob("*.png"))) == 3 * 2 and len(list((run / "conditions").glob("*.png"))) == 3
    for key in ("pose", "pose@perturbed-oracle"):  # tiny ViTPose (21 heatmaps, flip test) and the perturbed oracle
        assert record["evaluation"][key]["protocol"] == "official" and "humanart21" in record["evaluation"][key]["source"]
    assert 0.0 < record["metrics"]["pose@perturbed-oracle"]["AP"] < 100.0


def test_official_protocol_needs_the_schema_to_name_one(tmp_path):
    data = dict(yaml.safe_load(SCHEMA_FILE.read_text()), name="humanart21-canvas-only")
    data.pop("official_protocol")
    path = write(tmp_path, data)
    r = spbench_in_process("run", "--method", "controlnet", "--dataset", "humanart", "--data-root", DATA,
                           "--set", f"dataset.schema={path}", "--out", tmp_path / "runs", "--protocol", "official", *RUN)
    assert r.returncode == 2 and "not keypoint schema 'humanart21-canvas-only': use --protocol canvas" in r.stderr
    assert not (tmp_path / "runs").exists()  # refused before any image
