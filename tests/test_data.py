"""Dataset layer: readers, cleaning rules, the shipped sample, split hashes and error messages."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from spbench.data.cleaning import STAT_KEYS, check_coco_document, clean_annotations
from spbench.data.check import data_check_report, summarize
from spbench.data.registry import DATASETS, list_datasets, load_split
from spbench.errors import SpbenchError

REAL_AP10K = Path("/work/shared/data/ap10k-sample/test_ap10k.json")
needs_real_ap10k = pytest.mark.skipif(not REAL_AP10K.is_file(), reason="shared AP-10K test file not present")

# The official AP-10K templates, copied from the spec (the reader must match them verbatim).
OFFICIAL_TEMPLATES = [
    "A good photo of {c}<KPT>", "A photo of {c}<KPT> in the {b}", "There is {c}<KPT> on the {b}",
    "There are some {c}<KPT> lying in the {b}", "Some {c}<KPT> are in the {b}", "A close photo of {c}<KPT>.",
    "In the {b}, there are severl {c}<KPT>.", "This is a clear photo of {c}<KPT> in the {b}.",
    "Several {c}<KPT> are in the {b}.", "A {c}<KPT> stands in the {b}.",
]


def expected_ap10k_prompt(image_id: int, species: str, background: str) -> str:
    index = int(hashlib.sha256(f"ap10k-prompt:{image_id}".encode()).hexdigest(), 16) % 10
    return OFFICIAL_TEMPLATES[index].format(c=species, b=background)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# AP-10K reader on the real file


@needs_real_ap10k
def test_ap10k_reader_on_real_file():
    split = load_split("ap10k", ann=str(REAL_AP10K))
    assert split.dataset == "ap10k" and split.name == "test_ap10k"
    assert [s.image_id for s in split.samples] == [4, 37516]  # sorted by id, not file order
    antelope, jaguar = split.samples

    # Values read by hand from test_ap10k.json.
    assert antelope.sample_id == "ap10k-000000000004"
    assert (antelope.file, antelope.width, antelope.height) == ("000000000004.jpg", 1024, 683)
    assert antelope.scene == "grass or savanna"  # background 1
    assert jaguar.scene == "zoo or human habitation"  # background 5
    (a,), (j,) = antelope.instances, jaguar.instances
    assert a.category == "antelope" and j.category == "jaguar"  # category ids 1 and 26
    assert a.bbox == (408.0, 197.0, 429.0, 341.0) and a.area == 146289.0
    assert j.bbox == (66.0, 192.0, 1092.0, 512.0) and j.area == 559104.0
    assert a.annotation_id == 6 and j.annotation_id == 9284
    assert len(a.keypoints) == 17 and a.num_visible == 16 and j.num_visible == 16
    assert a.keypoints[0] == (488.0, 443.0, 2) and isinstance(a.keypoints[0][0], float)
    assert a.keypoints[1] == (0.0, 0.0, 0)  # right eye not labelled
    assert j.keypoints[16] == (636.0, 602.0, 2)

    assert antelope.prompt_template == expected_ap10k_prompt(4, "antelope", "grass or savanna")
    assert jaguar.prompt_template == expected_ap10k_prompt(37516, "jaguar", "zoo or human habitation")
    assert antelope.extra["template"] == OFFICIAL_TEMPLATES.index(
        next(t for t in OFFICIAL_TEMPLATES if t.format(c="antelope", b="grass or savanna") == antelope.prompt_template)
    )
    assert "<KPT>" not in antelope.prompt and "antelope" in antelope.prompt

    # The images sit next to the JSON in this layout.
    for s in split.samples:
        assert Path(split.image_path(s)) == REAL_AP10K.parent / s.file
    assert split.stats["missing_images"] == 0


@needs_real_ap10k
def test_ap10k_released_layout(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(REAL_AP10K, tmp_path / "annotations" / "ap10k-val-split1.json")
    for name in ("000000000004.jpg", "000000037516.jpg"):
        (tmp_path / "data" / name).write_bytes(b"jpeg")  # the reader only checks the file exists

    split = load_split("ap10k", data_root=str(tmp_path))  # default split: val-split1
    assert split.name == "val-split1" and len(split) == 2
    assert Path(split.image_path(split.samples[0])) == tmp_path / "data" / "000000000004.jpg"
    # The same content in another layout has the same hash.
    assert split.content_hash == load_split("ap10k", ann=str(REAL_AP10K)).content_hash


def test_ap10k_species_joined_and_unknown_background(tmp_path):
    doc = ap10k_doc()
    doc["images"][0]["background"] = 42
    doc["annotations"].append(ann(2, image_id=1, category_id=2))
    doc["annotations"].append(ann(3, image_id=1, category_id=1))
    path = write_json(tmp_path / "a.json", doc)
    (sample,) = load_split("ap10k", ann=str(path), check_images=False).samples
    assert sample.scene == "wild"
    assert sample.categories == ("dog", "cat")
    assert sample.prompt_template == expected_ap10k_prompt(1, "dog and cat", "wild")


# ---------------------------------------------------------------------------------------------
# Human-Art reader


def write_humanart(parent: Path) -> dict:
    """A small Human-Art folder in the released layout under `parent`."""
    kpts = []
    for k in range(17):
        kpts += [10.5 + 3 * k, 20.25 + 4 * k, 2]
    kpts[3 * 3 + 2] = 0  # left ear not labelled
    kpts[3 * 3: 3 * 3 + 2] = [0, 0]
    images = [
        {"file_name": "HumanArt/images/2D_virtual_human/cartoon/000007.jpg", "height": 200, "width": 150,
         "id": 20007, "description": "  a cartoon girl jumping ", "category": "cartoon"},
        {"file_name": "HumanArt/images/real_human/dance/000002.jpg", "height": 300, "width": 300,
         "id": 10002, "description": "a man dancing", "category": "dance"},
    ]
    annotations = [
        {"keypoints": kpts, "keypoints_21": kpts + [0] * 12, "num_keypoints": 16, "iscrowd": 0,
         "image_id": 20007, "bbox": [5.5, 10.0, 80.0, 120.0], "category_id": 1, "id": 3, "area": 5000.5},
        {"keypoints": kpts, "keypoints_21": kpts + [0] * 12, "num_keypoints": 16, "iscrowd": 0,
         "image_id": 10002, "bbox": [1.0, 2.0, 90.0, 150.0], "category_id": 1, "id": 4, "area": 7000.0},
    ]
    doc = {"images": images, "annotations": annotations,
           "categories": [{"supercategory": "person", "id": 1, "name": "person"}]}
    write_json(parent / "HumanArt" / "annotations" / "validation_humanart.json", doc)
    for img in images:
        (parent / img["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        (parent / img["file_name"]).write_bytes(b"jpeg")
    return doc


@pytest.mark.parametrize("root_is_humanart_folder", [False, True])
def test_humanart_reader_both_root_conventions(tmp_path, root_is_humanart_folder):
    write_humanart(tmp_path)
    data_root = tmp_path / "HumanArt" if root_is_humanart_folder else tmp_path
    split = load_split("humanart", data_root=str(data_root))
    assert split.name == "validation"
    assert [s.image_id for s in split.samples] == [10002, 20007]
    dance, cartoon = split.samples
    assert cartoon.sample_id == "humanart-20007"
    assert cartoon.prompt_template == "a cartoon girl jumping. <KPT>"
    assert cartoon.scene == "cartoon" and dance.scene == "dance"
    assert cartoon.file == "HumanArt/images/2D_virtual_human/cartoon/000007.jpg"
    assert Path(split.image_path(cartoon)) == tmp_path / cartoon.file
    (inst,) = cartoon.instances
    assert inst.category == "person" and inst.bbox == (5.5, 10.0, 80.0, 120.0) and inst.area == 5000.5
    assert inst.keypoints[0] == (10.5, 20.25, 2) and inst.keypoints[3] == (0.0, 0.0, 0)
    assert inst.num_visible == 16


def test_humanart_explicit_annotation_file(tmp_path):
    write_humanart(tmp_path)
    ann_file = tmp_path / "HumanArt" / "annotations" / "validation_humanart.json"
    split = load_split("humanart", ann=str(ann_file))
    assert split.name == "validation_humanart" and len(split) == 2
    assert all(os.path.isfile(split.image_path(s)) for s in split.samples)


# ---------------------------------------------------------------------------------------------
# Cleaning rules, on hand-built annotations


def ap10k_doc(width=100, height=80) -> dict:
    return {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": width, "height": height, "background": 1}],
        "annotations": [ann(1, image_id=1)],
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
    }


def ann(ann_id: int, image_id: int = 1, category_id: int = 1, visible: int = 17, **fields) -> dict:
    kpts = []
    for k in range(17):
        kpts += [10 + k, 20 + k, 2] if k < visible else [0, 0, 0]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [5, 5, 50, 40],
            "area": 1500, "iscrowd": 0, "keypoints": kpts, **fields}


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def clean(doc):
    check_coco_document(doc, 17, "test.json")
    return clean_annotations(doc)


def test_clean_out_of_frame_keypoints_are_zeroed():
    doc = ap10k_doc(width=100, height=80)
    kpts = doc["annotations"][0]["keypoints"]
    kpts[0:3] = [100, 10, 2]  # x == width is outside [0, width)
    kpts[3:6] = [10, -1, 1]  # above the top edge
    kpts[6:9] = [200, 300, 0]  # outside but not labelled: left as written, not counted
    kpts[9:12] = [99.5, 79.5, 2]  # last pixel: inside
    kept, stats = clean(doc)
    (inst,) = kept[0].instances
    assert stats["keypoints_out_of_frame"] == 2
    assert inst.keypoints[0] == (0.0, 0.0, 0) and inst.keypoints[1] == (0.0, 0.0, 0)
    assert inst.keypoints[2] == (200.0, 300.0, 0)
    assert inst.keypoints[3] == (99.5, 79.5, 2)
    assert inst.num_visible == 14 and stats["visible_keypoints"] == 14  # 17 - 2 zeroed - 1 unlabelled


def test_clean_crowd_annotations_are_dropped():
    doc = ap10k_doc()
    doc["annotations"].append({"id": 2, "image_id": 1, "iscrowd": 1, "bbox": [0, 0, 10, 10]})  # no keypoints
    kept, stats = clean(doc)
    assert stats["crowd_instances"] == 1
    assert [i.annotation_id for i in kept[0].instances] == [1]
    assert stats["annotations_in_file"] == 2 and stats["instances"] == 1


def test_clean_zero_visible_instances_are_kept_as_ignored_beside_a_labelled_one():
    doc = ap10k_doc(width=100, height=80)
    doc["images"].append({"id": 2, "file_name": "2.jpg", "width": 100, "height": 80})
    doc["annotations"].append(ann(2, visible=0))
    only_outside = ann(3, visible=1)
    only_outside["keypoints"][0:3] = [150, 10, 2]  # its one labelled point is out of frame
    doc["annotations"].append(only_outside)
    doc["annotations"].append(ann(4, image_id=2, visible=0))  # alone in its image: goes with it
    kept, stats = clean(doc)
    assert stats["zero_visible_instances"] == 3 and stats["keypoints_out_of_frame"] == 1
    # Image 1 keeps them as ignored ground truth (COCOeval's and the official protocol's rule).
    assert [c.image_id for c in kept] == [1]
    assert [i.annotation_id for i in kept[0].instances] == [1, 2, 3]
    assert [i.labelled for i in kept[0].instances] == [True, False, False]
    assert stats["ignored_instances"] == 2 and stats["instances"] == 3 and stats["images_without_pose"] == 1


def test_clean_images_without_pose_are_dropped():
    doc = ap10k_doc()
    doc["images"] += [
        {"id": 2, "file_name": "2.jpg", "width": 100, "height": 80},  # no annotation at all
        {"id": 3, "file_name": "3.jpg", "width": 100, "height": 80},  # only a crowd annotation
        {"id": 0, "file_name": "0.jpg", "width": 100, "height": 80},
    ]
    doc["annotations"] += [{"id": 5, "image_id": 3, "iscrowd": 1}, ann(6, image_id=0)]
    kept, stats = clean(doc)
    assert [c.image_id for c in kept] == [0, 1]  # sorted by image id
    assert stats == {**dict.fromkeys(STAT_KEYS, 0), "images_in_file": 4, "annotations_in_file": 3,
                     "crowd_instances": 1, "images_without_pose": 2, "images": 2, "instances": 2,
                     "visible_keypoints": 34}


def test_missing_area_falls_back_to_bbox(tmp_path):
    doc = ap10k_doc()
    del doc["annotations"][0]["area"]
    kept, _ = clean(doc)
    assert kept[0].instances[0].area == 50 * 40


# ---------------------------------------------------------------------------------------------
# The shipped sample


@pytest.mark.parametrize("split_name, schema", [("ap10k", "ap10k"), ("humanart", "coco17")])
def test_sample_dataset_loads(split_name, schema):
    split = load_split("sample", split_name)
    assert split.dataset == "sample" and split.name == split_name
    assert len(split) >= 8
    assert all(s.schema == schema for s in split.samples)
    assert all(os.path.isfile(split.image_path(s)) for s in split.samples)
    assert any(len(s.instances) > 1 for s in split.samples)
    # Every cleaning rule has something to do in the sample.
    for key in ("crowd_instances", "keypoints_out_of_frame", "zero_visible_instances", "images_without_pose"):
        assert split.stats[key] >= 1, key
    # AP-10K: an unlabelled instance beside labelled ones stays, as ignored ground truth.
    assert (split.stats["ignored_instances"] >= 1) == (split_name == "ap10k")
    assert all(any(i.labelled for i in s.instances) for s in split.samples)
    assert any(v == 0 for s in split.samples for i in s.instances for _, _, v in i.keypoints)
    assert all("<KPT>" in s.prompt_template for s in split.samples)


def test_sample_default_split_and_summary():
    assert load_split("sample").name == DATASETS["sample"].default_split == "ap10k"
    summary, table = data_check_report("sample", "humanart")
    assert summary["images"] >= 8 and summary["categories"] == {"person": summary["instances"]}
    assert summary["content_hash"] == load_split("sample", "humanart").content_hash
    assert summary["max_instances_per_image"] >= 2 and 0 < summary["mean_visible_keypoints_per_instance"] <= 17
    assert set(STAT_KEYS) <= set(summary) and "missing_images" in summary
    assert table.row_count > 5


def test_list_datasets():
    assert [d.name for d in list_datasets()][:4] == ["ap10k", "humanart", "ap10k-cross", "sample"]
    assert DATASETS["ap10k"].default_split == "val-split1" and "train-split1" in DATASETS["ap10k"].splits
    assert DATASETS["humanart"].default_split == "validation"


# ---------------------------------------------------------------------------------------------
# Split hash


def test_split_hash_stable_and_sensitive(tmp_path):
    doc = ap10k_doc()
    path = write_json(tmp_path / "a.json", doc)
    first = load_split("ap10k", ann=str(path), check_images=False)
    again = load_split("ap10k", ann=str(path), check_images=False)
    assert first.content_hash == again.content_hash and len(first.content_hash) == 16

    changed = copy.deepcopy(doc)
    changed["annotations"][0]["keypoints"][0] += 1  # one keypoint moves by one pixel
    moved = load_split("ap10k", ann=str(write_json(tmp_path / "b.json", changed)), check_images=False)
    assert moved.content_hash != first.content_hash
    assert summarize(first)["content_hash"] == first.content_hash


# ---------------------------------------------------------------------------------------------
# Bad inputs: one-line errors naming the file and the field


def test_missing_annotation_file(tmp_path):
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", data_root=str(tmp_path))
    message = one_line_error(e)
    assert str(tmp_path / "annotations" / "ap10k-val-split1.json") in message and "--data-root" in message

    with pytest.raises(SpbenchError) as e:
        load_split("humanart", ann=str(tmp_path / "nope.json"))
    assert "nope.json" in one_line_error(e) and "--ann" in str(e.value)


def test_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", ann=str(path))
    message = one_line_error(e)
    assert str(path) in message and "not valid JSON" in message


@pytest.mark.parametrize(
    "break_it, field, expected",
    [
        (lambda d: d.pop("annotations"), "annotations", "list"),
        (lambda d: d.pop("categories"), "categories", "list"),
        (lambda d: d["annotations"][1].pop("keypoints"), "annotations[1].keypoints", "51 numbers"),
        (lambda d: d["annotations"][1].pop("bbox"), "annotations[1].bbox", "4 numbers"),
        (lambda d: d["annotations"][1]["keypoints"].pop(), "annotations[1].keypoints", "51 numbers"),
        (lambda d: d["annotations"][1]["keypoints"].__setitem__(2, 3), "annotations[1].keypoints", "0, 1 or 2"),
        (lambda d: d["annotations"][1].__setitem__("category_id", 9), "annotations[1].category_id", "categories"),
        (lambda d: d["annotations"][1].__setitem__("image_id", 9), "annotations[1].image_id", "images"),
        (lambda d: d["images"][0].pop("width"), "images[0].width", "positive number"),
        (lambda d: d["images"][0].pop("file_name"), "images[0].file_name", "file name"),
    ],
)
def test_malformed_fields_are_named(tmp_path, break_it, field, expected):
    doc = ap10k_doc()
    doc["annotations"].append(ann(2))
    break_it(doc)
    path = write_json(tmp_path / "bad.json", doc)
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", ann=str(path), check_images=False)
    message = one_line_error(e)
    assert str(path) in message and f"{field}:" in message and expected in message


def test_humanart_caption_required(tmp_path):
    doc = write_humanart(tmp_path)
    del doc["images"][1]["description"]
    path = write_json(tmp_path / "HumanArt" / "annotations" / "validation_humanart.json", doc)
    with pytest.raises(SpbenchError) as e:
        load_split("humanart", data_root=str(tmp_path))
    assert str(path) in one_line_error(e) and "images[1].description" in str(e.value)


def test_unknown_dataset_and_split():
    with pytest.raises(SpbenchError) as e:
        load_split("ap10")
    assert "did you mean 'ap10k'" in one_line_error(e)
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", "val-split9", data_root="/nowhere")
    message = one_line_error(e)
    assert "val-split1" in message and "--ann FILE" in message
    with pytest.raises(SpbenchError) as e:
        load_split("sample", "coco")
    assert "ap10k, humanart" in one_line_error(e)


def test_real_dataset_needs_data_root():
    for name in ("ap10k", "humanart"):
        with pytest.raises(SpbenchError) as e:
            load_split(name)
        assert "--data-root" in one_line_error(e)


def test_missing_images(tmp_path):
    path = write_json(tmp_path / "annotations" / "ap10k-val-split1.json", ap10k_doc())
    with pytest.raises(SpbenchError) as e:
        load_split("ap10k", ann=str(path))
    message = one_line_error(e)
    assert "1 of 1 images" in message and str(tmp_path / "data" / "000000000001.jpg") in message

    split = load_split("ap10k", ann=str(path), check_images=False)
    assert split.stats["missing_images"] == 1 and len(split) == 1
    summary, _ = data_check_report("ap10k", ann=str(path))
    assert summary["missing_images"] == 1
