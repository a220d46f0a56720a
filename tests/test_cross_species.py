"""The cross-species protocol (spbench.data.cross_species): a deterministic, cross-family pairing
(checked by hand on a small case and against the families in the AP-10K categories), prompts and
categories rewritten with the pose kept, detection and CLIP reading the prompted species, and a
run on the shipped sample (tiny models: its numbers mean nothing)."""

import json
import random
import re

import numpy as np
import pytest
from helpers import spbench_in_process

from spbench.data.cross_species import cross_species_pairs
from spbench.data.registry import SAMPLE_ROOT, load_split
from spbench.errors import SpbenchError
from spbench.schemas import AP10K

SAMPLE_ANN = SAMPLE_ROOT / "ap10k" / "annotations" / "ap10k-sample.json"


def ap10k_categories() -> list[dict]:
    return json.loads(SAMPLE_ANN.read_text())["categories"]


def renamed(text: str, species, pairs: dict) -> str:
    """``text`` with every name of ``species`` replaced by its pair at once (zebra -> tiger and
    tiger -> otter in one prompt do not chain)."""
    names = sorted(set(species), key=len, reverse=True)
    return re.sub("|".join(map(re.escape, names)), lambda m: pairs[m.group(0)], text)


def test_pairing_by_hand():
    # Sorted by (family, id): a1, a2 (A), b1 (B), c1 (C); the largest family has 2, so each species
    # is prompted as the one 2 places on, cyclically: a1 -> b1, a2 -> c1, b1 -> a1, c1 -> a2.
    cats = [{"id": 4, "name": "c1", "supercategory": "C"}, {"id": 3, "name": "b1", "supercategory": "B"},
            {"id": 2, "name": "a2", "supercategory": "A"}, {"id": 1, "name": "a1", "supercategory": "A"}]
    assert cross_species_pairs(cats) == {"a1": "b1", "a2": "c1", "b1": "a1", "c1": "a2"}


def test_pairing_is_deterministic_cross_family_and_a_permutation():
    cats = ap10k_categories()
    assert len(cats) == 54  # the sample lists AP-10K's full categories, with families
    family = {c["name"]: c["supercategory"] for c in cats}
    pairs = cross_species_pairs(cats)
    shuffled = cats[:]
    random.Random(1).shuffle(shuffled)
    assert cross_species_pairs(shuffled) == pairs  # the file's order does not matter
    assert sorted(pairs) == sorted(family) and sorted(pairs.values()) == sorted(family)  # a permutation
    assert all(family[pose] != family[prompt] for pose, prompt in pairs.items())


def test_pairing_errors():
    with pytest.raises(SpbenchError, match="supercategory"):
        cross_species_pairs([{"id": 1, "name": "dog"}], "x.json")
    crowded = [{"id": i, "name": f"cat{i}", "supercategory": "Felidae"} for i in range(3)]
    with pytest.raises(SpbenchError, match="largest"):
        cross_species_pairs(crowded + [{"id": 9, "name": "dog", "supercategory": "Canidae"}], "x.json")


def test_prompts_and_categories_rewritten_pose_kept():
    plain, cross = load_split("sample", "ap10k"), load_split("sample", "ap10k-cross")
    pairs = cross.stats["cross_species"]["pairs"]
    assert pairs == cross_species_pairs(ap10k_categories())
    assert cross.dataset == "sample" and cross.name == "ap10k-cross"
    assert cross.content_hash != plain.content_hash  # the pairing is part of what the hash covers
    assert load_split("sample-ap10k-cross").content_hash == cross.content_hash
    assert [s.sample_id for s in cross.samples] == [s.sample_id for s in plain.samples]
    for p, c in zip(plain.samples, cross.samples):
        assert [i.category for i in c.instances] == [pairs[i.category] for i in p.instances]
        assert [(i.bbox, i.keypoints, i.area) for i in c.instances] == [(i.bbox, i.keypoints, i.area) for i in p.instances]
        assert c.extra["pose_species"] == [i.category for i in p.instances]
        assert c.prompt_template == renamed(p.prompt_template, p.categories, pairs)
    used = cross.stats["cross_species"]["used"]
    assert used == {s: pairs[s] for s in {i.category for p in plain.samples for i in p.instances}}


def test_detection_and_clip_read_the_prompted_species():
    from spbench.canvas import CanvasTransform
    from spbench.metrics.clip_score import group_of
    from spbench.metrics.clip_text import clip_text
    from spbench.metrics.detection import DetectionEvaluator
    from spbench.metrics.detection_models import GroundingDinoDetector

    plain, cross = load_split("sample", "ap10k"), load_split("sample", "ap10k-cross")
    pairs = cross.stats["cross_species"]["pairs"]
    texts = []

    def detect(images, prompts):  # what Grounding-DINO would be asked
        texts.extend(prompts)
        return [(np.array([0.9]), np.array([[1.0, 1.0, 10.0, 10.0]])) for _ in prompts]

    detector = object.__new__(GroundingDinoDetector)
    detector.detect = detect
    samples = list(cross.samples[:4])
    transforms = [CanvasTransform.fit(s.width, s.height, 64, "stretch") for s in samples]
    from PIL import Image

    found = detector.predict([Image.new("RGB", (64, 64))] * len(samples), samples, transforms)
    expected = [pairs[c].lower() + "." for p in plain.samples[:4] for c in dict.fromkeys(i.category for i in p.instances if i.labelled)]
    assert texts == expected
    evaluator = DetectionEvaluator()
    for s, t, dets in zip(samples, transforms, found):
        evaluator.update(s, t, 0, dets)
        assert {d["category"] for d in dets} == {pairs[sp] for sp in s.extra["pose_species"]}
    assert {g["category"] for e in evaluator.entries() for g in e["gts"]} <= set(pairs.values())

    for p, c in zip(plain.samples, cross.samples):
        text = clip_text(c.prompt, AP10K, "descriptions")
        assert text == renamed(clip_text(p.prompt, AP10K, "descriptions"), p.categories, pairs)
        assert group_of(c, "category") == pairs[p.categories[0]]


def test_cross_species_run_on_the_sample(tmp_path):
    result = spbench_in_process("run", "--method", "controlnet", "--dataset", "sample", "--split", "ap10k-cross",
                                "--profile", "tiny", "--metrics", "pose,clip,det", "--steps", "1", "--limit", "2",
                                "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "sample-ap10k-cross-controlnet-tiny"
    record = json.loads((run / "result.json").read_text())
    stats = record["dataset"]["stats"]["cross_species"]
    assert record["dataset"]["split"] == "ap10k-cross" and stats["pairs"] == cross_species_pairs(ap10k_categories())
    assert record["metrics"]["pose"]["AP"] is not None and record["metrics"]["det"]["AP75"] is not None
    samples = {json.loads(line)["sample_id"]: json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()}
    rows = [json.loads(line) for line in (run / "per_image.jsonl").read_text().splitlines()]
    manifest = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    for row in manifest:
        prompted = [stats["pairs"][s] for s in samples[row["sample_id"]]["extra"]["pose_species"]]
        assert all(name in row["prompt"] for name in prompted)
    for row in rows:
        prompted = [stats["pairs"][s] for s in samples[row["sample_id"]]["extra"]["pose_species"]]
        if row["metric"] == "clip":
            assert row["category"] == prompted[0] and all(name in row["text"] for name in prompted)
        if row["metric"] == "det":
            assert {i["category"] for i in row["instances"]} == set(prompted)
    from spbench.tables.render import build_table

    df = build_table("1", [record])  # a cross-species run never fills the paper's AP-10K cells
    assert np.isnan(df.loc[("AP-10K", "ControlNet"), ("Pose mAP↑", "ours")])
