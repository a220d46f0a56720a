"""Write the tiny synthetic Human-Art-21 sample next to this file (nothing downloaded).

Layout and fields as Human-Art releases them (github IDEA-Research/HumanArt README):
``HumanArt/annotations/validation_humanart.json`` whose annotations hold COCO's 17 keypoints in
``keypoints`` and Human-Art's 21 in ``keypoints_21`` (the 17, then left/right finger, left/right
toe), images under ``HumanArt/images/<group>/<scene>/`` with ``file_name`` starting at
``HumanArt/``. Three small images, four people: one keypoint unlabelled (v=0), one occluded
(v=1). The images are flat drawings of the poses; they are for running the machinery only.

    python tests/data/humanart21/make_humanart21.py
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent

# A standing person in a unit box (x right, y down), Human-Art-21 order.
TEMPLATE = [
    (0.50, 0.08), (0.54, 0.06), (0.46, 0.06), (0.58, 0.08), (0.42, 0.08),  # nose, eyes, ears
    (0.66, 0.22), (0.34, 0.22), (0.74, 0.38), (0.26, 0.38), (0.78, 0.52), (0.22, 0.52),  # shoulders..wrists
    (0.60, 0.55), (0.40, 0.55), (0.62, 0.74), (0.38, 0.74), (0.63, 0.92), (0.37, 0.92),  # hips..ankles
    (0.80, 0.58), (0.20, 0.58), (0.68, 0.98), (0.32, 0.98),  # fingers, toes
]
SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (15, 19), (16, 20), (9, 17), (10, 18)]

# (file, group/scene, width, height, caption, people: (box x, y, w, h, {keypoint: v override}))
IMAGES = [
    ("000001.jpg", "2D_virtual_human/cartoon", 160, 120, "A cartoon of two people standing in a park",
     [(12, 10, 60, 100, {}), (90, 14, 56, 96, {18: 0})]),
    ("000002.jpg", "2D_virtual_human/sketch", 128, 160, "A pencil sketch of a dancer",
     [(30, 12, 70, 140, {3: 1})]),
    ("000003.jpg", "real_human/dance", 144, 144, "A photo of a person dancing on a stage",
     [(40, 8, 64, 128, {})]),
]


def main() -> None:
    images, annotations = [], []
    for image_id, (name, scene_dir, width, height, caption, people) in enumerate(IMAGES, 1):
        picture = Image.new("RGB", (width, height), (235, 225, 205))
        draw = ImageDraw.Draw(picture)
        for person, (bx, by, bw, bh, override) in enumerate(people):
            points = [(round(bx + u * bw, 2), round(by + v * bh, 2)) for u, v in TEMPLATE]
            flags = [override.get(k, 2) for k in range(len(points))]
            for a, b in SKELETON:
                if flags[a] and flags[b]:
                    draw.line([points[a], points[b]], fill=(60, 60, 140), width=3)
            for (x, y), f in zip(points, flags):
                if f:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(200, 40, 40))
            triples = [[x if f else 0, y if f else 0, f] for (x, y), f in zip(points, flags)]
            flat21 = [v for t in triples for v in t]
            annotations.append({
                "id": 100 * image_id + person, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "bbox": [bx, by, bw, bh], "area": float(bw * bh) * 0.6,
                "keypoints": flat21[: 17 * 3], "num_keypoints": sum(f > 0 for f in flags[:17]),
                "keypoints_21": flat21, "num_keypoints_21": sum(f > 0 for f in flags),
            })
        path = HERE / "HumanArt" / "images" / scene_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, quality=90)
        images.append({"id": image_id, "file_name": f"HumanArt/images/{scene_dir}/{name}", "width": width,
                       "height": height, "description": caption, "category": scene_dir.split("/")[1]})
    doc = {"info": {"description": "spbench synthetic Human-Art-21 test sample"}, "images": images,
           "annotations": annotations, "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    ann = HERE / "HumanArt" / "annotations" / "validation_humanart.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
