"""Write the small synthetic sample dataset shipped in ``spbench/data/sample/``.

Two splits, each in its real dataset's layout, so the harness runs out of the box:

- ``ap10k/``: ``annotations/ap10k-sample.json`` + ``data/<id>.jpg`` (AP-10K format and categories)
- ``humanart/``: ``HumanArt/annotations/validation_humanart.json`` +
  ``HumanArt/images/<kind>/<scene>/<file>.jpg`` (Human-Art format)

Poses come from a side-view quadruped template and a standing-human template, varied by seeded
scale, placement, limb angles and jitter; the images are flat drawings of those poses (nothing is
downloaded; these are not dataset images). Each split holds, on purpose, an unlabelled keypoint
(v=0) here and there, one crowd annotation, one zero-visible instance (alone in its image, so the
image is dropped) and one keypoint outside the frame, so every cleaning rule
(spbench.data.cleaning) is exercised. The AP-10K split also holds an instance with no labelled
keypoint beside labelled ones (image 64: a sheep hidden behind the flock, its box round the
flock), which the readers keep as ignored ground truth: under the official pose protocol a
prediction of a sheep that misses its own pose matches it and is ignored, not a false positive.

Deterministic (fixed seeds) and re-runnable: ``python scripts/make_sample_data.py``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from spbench.schemas import AP10K, COCO17

OUT = Path(__file__).resolve().parents[1] / "spbench" / "data" / "sample"
JPEG_QUALITY = 85

# The real AP-10K category list (id order), as in the released annotation files.
AP10K_CATEGORIES = [
    ("antelope", "Bovidae"), ("argali sheep", "Bovidae"), ("bison", "Bovidae"), ("buffalo", "Bovidae"),
    ("cow", "Bovidae"), ("sheep", "Bovidae"), ("arctic fox", "Canidae"), ("dog", "Canidae"),
    ("fox", "Canidae"), ("wolf", "Canidae"), ("beaver", "Castoridae"), ("alouatta", "Cercopithecidae"),
    ("monkey", "Cercopithecidae"), ("noisy night monkey", "Cercopithecidae"),
    ("spider monkey", "Cercopithecidae"), ("uakari", "Cercopithecidae"), ("deer", "Cervidae"),
    ("moose", "Cervidae"), ("hamster", "Cricetidae"), ("elephant", "Elephantidae"), ("horse", "Equidae"),
    ("zebra", "Equidae"), ("bobcat", "Felidae"), ("cat", "Felidae"), ("cheetah", "Felidae"),
    ("jaguar", "Felidae"), ("king cheetah", "Felidae"), ("leopard", "Felidae"), ("lion", "Felidae"),
    ("panther", "Felidae"), ("snow leopard", "Felidae"), ("tiger", "Felidae"), ("giraffe", "Giraffidae"),
    ("hippo", "Hippopotamidae"), ("chimpanzee", "Hominidae"), ("gorilla", "Hominidae"),
    ("orangutan", "Hominidae"), ("rabbit", "Leporidae"), ("skunk", "Mephitidae"), ("mouse", "Muridae"),
    ("rat", "Muridae"), ("otter", "Mustelidae"), ("weasel", "Mustelidae"), ("raccoon", "Procyonidae"),
    ("rhino", "Rhinocerotidae"), ("marmot", "Sciuridae"), ("squirrel", "Sciuridae"), ("pig", "Suidae"),
    ("mole", "Talpidae"), ("black bear", "Ursidae"), ("brown bear", "Ursidae"), ("panda", "Ursidae"),
    ("polar bear", "Ursidae"), ("bat", "Vespertilionidae"),
]
AP10K_CATEGORY_ID = {name: i + 1 for i, (name, _) in enumerate(AP10K_CATEGORIES)}

# Side-view quadruped facing left, in body lengths (neck near the origin, y down).
QUADRUPED = {
    "left_eye": (-0.33, -0.32), "right_eye": (-0.30, -0.33), "nose": (-0.45, -0.22),
    "neck": (-0.12, -0.12), "root_of_tail": (0.85, -0.05),
    "left_shoulder": (0.02, 0.10), "left_elbow": (0.00, 0.35), "left_front_paw": (0.02, 0.62),
    "right_shoulder": (0.07, 0.12), "right_elbow": (0.06, 0.37), "right_front_paw": (0.09, 0.63),
    "left_hip": (0.72, 0.10), "left_knee": (0.78, 0.36), "left_back_paw": (0.74, 0.62),
    "right_hip": (0.77, 0.12), "right_knee": (0.84, 0.37), "right_back_paw": (0.80, 0.63),
}
# Standing person facing the camera (their left on the image right), in body heights.
HUMAN = {
    "nose": (0.0, 0.075), "left_eye": (0.022, 0.06), "right_eye": (-0.022, 0.06),
    "left_ear": (0.045, 0.07), "right_ear": (-0.045, 0.07),
    "left_shoulder": (0.12, 0.19), "right_shoulder": (-0.12, 0.19),
    "left_elbow": (0.15, 0.34), "right_elbow": (-0.15, 0.34),
    "left_wrist": (0.16, 0.47), "right_wrist": (-0.16, 0.47),
    "left_hip": (0.08, 0.52), "right_hip": (-0.08, 0.52),
    "left_knee": (0.085, 0.73), "right_knee": (-0.085, 0.73),
    "left_ankle": (0.09, 0.94), "right_ankle": (-0.09, 0.94),
}
assert tuple(QUADRUPED) == AP10K.keypoints and tuple(HUMAN) == COCO17.keypoints

SIZES = [(320, 240), (256, 320), (300, 300), (360, 240), (240, 320),
         (320, 256), (300, 300), (288, 216), (256, 320), (320, 240)]

AP10K_BACKGROUND_COLOURS = {  # id -> (sky, ground)
    1: ((170, 205, 235), (150, 175, 80)), 2: ((150, 185, 160), (60, 110, 55)),
    4: ((205, 220, 235), (240, 244, 248)), 5: ((200, 200, 205), (160, 150, 135)),
    6: ((165, 195, 210), (95, 130, 110)), 7: ((230, 210, 170), (215, 180, 120)),
    9: ((110, 150, 110), (50, 85, 45)), 88: ((25, 25, 40), (40, 38, 35)),
}
SPECIES_COLOURS = {
    "dog": (150, 100, 60), "zebra": (235, 235, 235), "horse": (120, 70, 40), "cat": (200, 140, 70),
    "elephant": (125, 125, 130), "sheep": (240, 235, 220), "polar bear": (250, 250, 245),
    "deer": (170, 110, 60), "tiger": (230, 130, 30), "leopard": (215, 170, 80), "fox": (210, 100, 30),
}
SCENE_COLOURS = {  # Human-Art scene -> (back, floor)
    "dance": ((60, 40, 90), (120, 80, 60)), "acrobatics": ((190, 60, 60), (200, 180, 140)),
    "cartoon": ((250, 230, 120), (120, 200, 120)), "oil_painting": ((120, 100, 70), (90, 70, 50)),
    "sketch": ((235, 235, 230), (215, 215, 210)), "watercolor": ((180, 210, 230), (200, 225, 200)),
    "sculpture": ((200, 195, 185), (150, 145, 140)), "cosplay": ((80, 110, 150), (70, 70, 80)),
    "kids_drawing": ((250, 250, 250), (140, 220, 120)), "garage_kits": ((210, 210, 220), (120, 120, 130)),
}


@dataclass
class Figure:
    """One annotation to write: its pose in image pixels and what to do with it."""

    category: str
    points: list[tuple[float, float]]
    visibility: list[int]
    kind: str = "normal"  # normal | crowd | hidden (annotated with no visible keypoint) | behind (no
    # keypoint, nothing drawn: hidden behind the others, its box given in crowd_box)
    crowd_box: tuple[float, float, float, float] | None = None
    length: float = 0.0  # body length (animals) or height (people) in pixels, for drawing


@dataclass
class ImageSpec:
    image_id: int
    size: tuple[int, int]
    scene: object  # AP-10K background id or Human-Art scene name
    figures: list[Figure] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Pose geometry


def rotate(p, centre, angle):
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = p[0] - centre[0], p[1] - centre[1]
    return (centre[0] + c * dx - s * dy, centre[1] + s * dx + c * dy)


def bend_chain(pts, names, root, mid, end, swing, bend):
    """Swing a limb around its root joint, then bend its last segment around the middle joint."""
    i, j, k = names.index(root), names.index(mid), names.index(end)
    pts[j] = rotate(pts[j], pts[i], swing)
    pts[k] = rotate(rotate(pts[k], pts[i], swing), pts[j], bend)


def quadruped_pose(rng: random.Random) -> list[tuple[float, float]]:
    names = list(QUADRUPED)
    pts = list(QUADRUPED.values())
    for side in ("left", "right"):
        bend_chain(pts, names, f"{side}_shoulder", f"{side}_elbow", f"{side}_front_paw",
                   rng.uniform(-0.45, 0.45), rng.uniform(-0.4, 0.3))
        bend_chain(pts, names, f"{side}_hip", f"{side}_knee", f"{side}_back_paw",
                   rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.4))
    head_tilt = rng.uniform(-0.35, 0.3)
    neck = pts[names.index("neck")]
    for name in ("left_eye", "right_eye", "nose"):
        pts[names.index(name)] = rotate(pts[names.index(name)], neck, head_tilt)
    return [(x + rng.gauss(0, 0.012), y + rng.gauss(0, 0.012)) for x, y in pts]


def human_pose(rng: random.Random, lively: bool) -> list[tuple[float, float]]:
    names = list(HUMAN)
    pts = list(HUMAN.values())
    arm_max = 2.4 if lively else 1.0
    for side, sign in (("left", -1), ("right", 1)):  # y is down: the left arm raises clockwise
        bend_chain(pts, names, f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist",
                   sign * rng.uniform(-0.2, arm_max), sign * rng.uniform(-0.3, 0.9))
        bend_chain(pts, names, f"{side}_hip", f"{side}_knee", f"{side}_ankle",
                   sign * rng.uniform(-0.1, 0.5 if lively else 0.2), rng.uniform(-0.25, 0.25))
    return [(x + rng.gauss(0, 0.006), y + rng.gauss(0, 0.006)) for x, y in pts]


def mirror(pts, flip_pairs):
    """The mirror image of a pose: x negated and left/right labels swapped."""
    out = [(-x, y) for x, y in pts]
    for a, b in flip_pairs:
        out[a], out[b] = out[b], out[a]
    return out


def place(pts, slot: tuple[float, float, float, float], fill: float, rng: random.Random):
    """Scale a unit pose to `fill` of its slot (x0, y0, x1, y1) and put it at a random spot there."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    sx0, sy0, sx1, sy1 = slot
    scale = fill * min((sx1 - sx0) / w, (sy1 - sy0) / h)
    ox = rng.uniform(sx0, sx1 - w * scale) - min(xs) * scale
    oy = rng.uniform(sy0, sy1 - h * scale) - min(ys) * scale
    return [(x * scale + ox, y * scale + oy) for x, y in pts], scale


def stand_on_ground(points, height: int, lowest: float, rng: random.Random):
    """Move a placed pose up or down so its feet rest on the ground: between `lowest` of the
    image height and the bottom edge, never pushing its top out of the frame."""
    top, bottom = min(p[1] for p in points), max(p[1] for p in points)
    floor = max(lowest * height, bottom - top + 2)
    shift = rng.uniform(min(floor, height - 3), height - 3) - bottom
    return [(x, y + shift) for x, y in points]


# ---------------------------------------------------------------------------------------------
# Drawing


def shade(colour, factor):
    return tuple(max(0, min(255, int(c * factor))) for c in colour)


def draw_backdrop(draw: ImageDraw.ImageDraw, size, top, bottom, horizon=0.45):
    w, h = size
    line = int(h * horizon)
    for y in range(h):  # a soft vertical gradient keeps JPEGs small but not flat
        base, t = (top, y / max(1, line)) if y < line else (bottom, (y - line) / max(1, h - line))
        draw.line([(0, y), (w, y)], fill=shade(base, 0.9 + 0.2 * t))


def draw_limb(draw, a, b, width, colour):
    draw.line([a, b], fill=colour, width=max(1, int(width)))
    r = width / 2
    for x, y in (a, b):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def draw_quadruped(draw, pts, length, colour):
    k = {name: pts[i] for i, name in enumerate(AP10K.keypoints)}
    far = shade(colour, 0.75)
    for side, col in (("right", far), ("left", colour)):  # far legs first
        draw_limb(draw, k[f"{side}_shoulder"], k[f"{side}_elbow"], 0.08 * length, col)
        draw_limb(draw, k[f"{side}_elbow"], k[f"{side}_front_paw"], 0.06 * length, col)
        draw_limb(draw, k[f"{side}_hip"], k[f"{side}_knee"], 0.09 * length, col)
        draw_limb(draw, k[f"{side}_knee"], k[f"{side}_back_paw"], 0.06 * length, col)
    neck, tail = k["neck"], k["root_of_tail"]
    body_shift = 0.08 * length  # the spine runs a little below the neck/tail line
    draw_limb(draw, (neck[0], neck[1] + body_shift), (tail[0], tail[1] + body_shift), 0.32 * length, colour)
    direction = 1 if tail[0] > neck[0] else -1
    draw_limb(draw, tail, (tail[0] + direction * 0.25 * length, tail[1] + 0.2 * length), 0.04 * length, colour)
    head = ((k["left_eye"][0] + k["nose"][0]) / 2, (k["left_eye"][1] + k["nose"][1]) / 2)
    draw_limb(draw, neck, head, 0.16 * length, colour)
    rx, ry = 0.14 * length, 0.1 * length
    draw.ellipse([head[0] - rx, head[1] - ry, head[0] + rx, head[1] + ry], fill=colour)
    r = max(1.0, 0.018 * length)
    ex, ey = k["left_eye"]
    draw.ellipse([ex - r, ey - r, ex + r, ey + r], fill=(20, 20, 20))


def draw_human(draw, pts, height, colour, clothes):
    k = {name: pts[i] for i, name in enumerate(COCO17.keypoints)}
    limb = 0.05 * height
    for side in ("left", "right"):
        draw_limb(draw, k[f"{side}_hip"], k[f"{side}_knee"], limb * 1.2, clothes)
        draw_limb(draw, k[f"{side}_knee"], k[f"{side}_ankle"], limb, clothes)
    draw.polygon([k["left_shoulder"], k["right_shoulder"], k["right_hip"], k["left_hip"]], fill=clothes)
    for side in ("left", "right"):
        draw_limb(draw, k[f"{side}_shoulder"], k[f"{side}_elbow"], limb, clothes)
        draw_limb(draw, k[f"{side}_elbow"], k[f"{side}_wrist"], limb * 0.8, colour)
    shoulders_mid = ((k["left_shoulder"][0] + k["right_shoulder"][0]) / 2,
                     (k["left_shoulder"][1] + k["right_shoulder"][1]) / 2)
    draw_limb(draw, shoulders_mid, k["nose"], limb * 0.8, colour)
    r = 0.065 * height
    cx, cy = k["nose"][0], k["nose"][1] - 0.01 * height
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)


def draw_crowd(draw, box, colour, rng: random.Random, n=5):
    x, y, w, h = box
    for _ in range(n):
        cx, cy = rng.uniform(x + 0.15 * w, x + 0.85 * w), rng.uniform(y + 0.3 * h, y + 0.8 * h)
        rx, ry = 0.12 * w, 0.18 * h
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)


def draw_bush(draw, box, colour):
    x, y, w, h = box
    draw.ellipse([x, y, x + w, y + h], fill=colour)


# ---------------------------------------------------------------------------------------------
# Annotation records


def bbox_of(points, visibility, size, pad=0.06):
    w, h = size
    labelled = [p for p, v in zip(points, visibility) if v > 0] or points
    xs, ys = [p[0] for p in labelled], [p[1] for p in labelled]
    px, py = pad * (max(xs) - min(xs)) + 2, pad * (max(ys) - min(ys)) + 2
    x0, y0 = max(0.0, min(xs) - px), max(0.0, min(ys) - py)
    x1, y1 = min(w - 1.0, max(xs) + px), min(h - 1.0, max(ys) + py)
    return (x0, y0, x1 - x0, y1 - y0)


def flat_keypoints(points, visibility, as_int: bool):
    out = []
    for (x, y), v in zip(points, visibility):
        if v == 0:
            out += [0, 0, 0]
        elif as_int:
            out += [int(round(x)), int(round(y)), v]
        else:
            out += [round(x, 1), round(y, 1), v]
    return out


def write_coco_json(path: Path, doc: dict) -> None:
    """One list entry per line: small and readable in a diff."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["{"]
    keys = list(doc)
    for n, key in enumerate(keys):
        comma = "," if n < len(keys) - 1 else ""
        value = doc[key]
        if isinstance(value, list):
            entries = [json.dumps(e, separators=(", ", ": ")) for e in value]
            lines.append(f' "{key}": [')
            lines += [f"  {e}," for e in entries[:-1]] + [f"  {e}" for e in entries[-1:]]
            lines.append(f" ]{comma}")
        else:
            lines.append(f' "{key}": {json.dumps(value)}{comma}')
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)


# ---------------------------------------------------------------------------------------------
# AP-10K split

# (image id, background id, species per instance, extras)
AP10K_PLAN = [
    (11, 1, ["dog"], ""),
    (23, 1, ["zebra", "zebra"], "crowd"),
    (37, 5, ["horse"], "out_of_frame"),
    (42, 88, ["cat"], ""),
    (58, 7, ["elephant"], ""),
    (64, 1, ["sheep", "sheep", "sheep"], "ignored"),
    (79, 4, ["polar bear"], ""),
    (85, 2, ["deer"], ""),
    (91, 6, ["tiger", "leopard"], ""),
    (104, 9, ["fox"], "hidden"),
]


def make_ap10k_split(root: Path) -> None:
    images, annotations = [], []
    ann_id = 1
    for n, (image_id, background, species, extra) in enumerate(AP10K_PLAN):
        rng = random.Random(10_000 + image_id)
        size = SIZES[n]
        w, h = size
        sky, ground = AP10K_BACKGROUND_COLOURS[background]
        image = Image.new("RGB", size)
        draw = ImageDraw.Draw(image)
        draw_backdrop(draw, size, sky, ground)

        figures: list[Figure] = []
        slots = len(species)
        for j, name in enumerate(species):
            pose = quadruped_pose(rng)
            if rng.random() < 0.5:
                pose = mirror(pose, AP10K.flip_pairs)
            slot = (w * j / slots + 2, 0.12 * h, w * (j + 1) / slots - 2, h - 3)
            fill = rng.uniform(0.6, 0.85) if slots == 1 else rng.uniform(0.75, 0.9)
            points, scale = place(pose, slot, fill, rng)
            points = stand_on_ground(points, h, 0.55, rng)
            visibility = [2] * AP10K.num_keypoints
            if rng.random() < 0.6:  # the far eye is often not labelled in a side view
                visibility[AP10K.keypoints.index("right_eye")] = 0
            figures.append(Figure(name, points, visibility, length=scale))

        if extra == "out_of_frame":  # one paw below the bottom edge, the leg running off-frame
            fig = figures[0]
            paw = AP10K.keypoints.index("left_back_paw")
            others = max(y for i, (_, y) in enumerate(fig.points) if i != paw)
            shift = (h - 12) - others
            fig.points = [(x, y + shift) for x, y in fig.points]
            fig.points[paw] = (fig.points[paw][0], h + 4.0)
        if extra == "hidden":  # an animal behind a bush: annotated, but no keypoint labelled
            figures[0].kind = "hidden"
            figures[0].visibility = [0] * AP10K.num_keypoints
        if extra == "crowd":  # a distant herd annotated as one crowd region
            figures.append(Figure("zebra", [], [0] * AP10K.num_keypoints, "crowd",
                                  (0.05 * w, 0.38 * h, 0.5 * w, 0.12 * h)))
        if extra == "ignored":  # one more animal hidden behind the others: a box round them all, no keypoint
            boxes = [bbox_of(f.points, f.visibility, size) for f in figures]
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
            figures.append(Figure(species[0], [], [0] * AP10K.num_keypoints, "behind", (x0, y0, x1 - x0, y1 - y0)))

        for fig in sorted(figures, key=lambda f: max((p[1] for p in f.points), default=0)):
            colour = SPECIES_COLOURS[fig.category]
            if fig.kind == "crowd":
                draw_crowd(draw, fig.crowd_box, shade(colour, 0.8), rng)
            elif fig.kind == "behind":
                continue  # nothing of it shows
            elif fig.kind == "hidden":
                draw_quadruped(draw, fig.points, fig.length, colour)
                draw_bush(draw, bbox_of(fig.points, [2] * 17, size, 0.2), (45, 95, 40))
            else:
                draw_quadruped(draw, fig.points, fig.length, colour)

        file_name = f"{image_id:012d}.jpg"
        save_jpeg(image, root / "data" / file_name)
        images.append({"license": 1, "id": image_id, "file_name": file_name, "width": w, "height": h,
                       "background": background})
        for fig in figures:
            if fig.kind in ("crowd", "behind"):
                box = tuple(round(v) for v in fig.crowd_box)
                kpts = [0] * (3 * AP10K.num_keypoints)
            else:
                box = tuple(round(v) for v in bbox_of(fig.points, fig.visibility if fig.kind == "normal"
                                                      else [2] * 17, size))
                kpts = flat_keypoints(fig.points, fig.visibility, as_int=True)
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": AP10K_CATEGORY_ID[fig.category],
                "bbox": list(box), "area": box[2] * box[3], "iscrowd": int(fig.kind == "crowd"),
                "num_keypoints": sum(1 for v in kpts[2::3] if v > 0), "keypoints": kpts,
            })
            ann_id += 1

    skeleton = [[a + 1, b + 1] for a, b in AP10K.skeleton]
    doc = {
        "info": {"description": "spbench synthetic sample in AP-10K format (not AP-10K images)",
                 "version": "1.0", "year": 2025, "contributor": "scripts/make_sample_data.py"},
        "licenses": [{"id": 1, "name": "Apache-2.0 (synthetic drawings)"}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": family, "keypoints": list(AP10K.keypoints),
             "skeleton": skeleton}
            for i, (name, family) in enumerate(AP10K_CATEGORIES)
        ],
    }
    write_coco_json(root / "annotations" / "ap10k-sample.json", doc)


# ---------------------------------------------------------------------------------------------
# Human-Art split

# (image id, kind, scene, number of people, caption, extras)
HUMANART_PLAN = [
    (1000101, "real_human", "dance", 1, "a woman in a red dress dancing on a dark stage", "occluded"),
    (1000102, "real_human", "acrobatics", 2, "two acrobats performing in front of an audience", "crowd"),
    (1000103, "2D_virtual_human", "cartoon", 1, "a cartoon boy waving his arm in a sunny park",
     "out_of_frame"),
    (1000104, "2D_virtual_human", "oil_painting", 1, "an oil painting of a man standing in a brown room", ""),
    (1000105, "2D_virtual_human", "sketch", 3, "a pencil sketch of three people talking", ""),
    (1000106, "2D_virtual_human", "watercolor", 1, "a watercolor painting of a girl by a lake", "no_ears"),
    (1000107, "3D_virtual_human", "sculpture", 1, "a stone sculpture of a standing athlete", ""),
    (1000108, "real_human", "cosplay", 1, "a cosplayer in a blue costume posing at a convention", ""),
    (1000109, "2D_virtual_human", "kids_drawing", 2, "a child's drawing of two friends holding hands", ""),
    (1000110, "3D_virtual_human", "garage_kits", 1, "a figurine hidden behind a cardboard box", "hidden"),
]
SKIN = [(240, 200, 170), (200, 150, 110), (150, 100, 70), (225, 180, 140)]
CLOTHES = [(200, 40, 50), (40, 80, 170), (60, 140, 70), (230, 190, 40), (90, 60, 130)]


def make_humanart_split(root: Path) -> None:
    images, annotations = [], []
    ann_id = 1
    scene_counter: dict[str, int] = {}
    for n, (image_id, kind, scene, people, caption, extra) in enumerate(HUMANART_PLAN):
        rng = random.Random(20_000 + image_id)
        size = SIZES[n]
        w, h = size
        back, floor = SCENE_COLOURS[scene]
        image = Image.new("RGB", size)
        draw = ImageDraw.Draw(image)
        draw_backdrop(draw, size, back, floor, horizon=0.6)

        figures: list[Figure] = []
        for j in range(people):
            pose = human_pose(rng, lively=scene in ("dance", "acrobatics", "cartoon"))
            slot = (w * j / people + 2, 0.04 * h, w * (j + 1) / people - 2, h - 3)
            points, scale = place(pose, slot, rng.uniform(0.7, 0.92), rng)
            points = stand_on_ground(points, h, 0.7, rng)
            visibility = [2] * COCO17.num_keypoints
            figures.append(Figure("person", points, visibility, length=scale))

        if extra == "occluded":  # a hand behind the dress: labelled, but occluded
            figures[0].visibility[COCO17.keypoints.index("right_wrist")] = 1
        if extra == "no_ears":  # long hair: the ears are not labelled
            for name in ("left_ear", "right_ear"):
                figures[0].visibility[COCO17.keypoints.index(name)] = 0
        if extra == "out_of_frame":  # the waving hand is cut off by the left edge
            fig = figures[0]
            wrist = COCO17.keypoints.index("right_wrist")
            others = min(x for i, (x, _) in enumerate(fig.points) if i != wrist)
            fig.points = [(x + (12 - others), y) for x, y in fig.points]
            fig.points[wrist] = (-6.0, fig.points[wrist][1])
        if extra == "hidden":
            figures[0].kind = "hidden"
            figures[0].visibility = [0] * COCO17.num_keypoints
        if extra == "crowd":  # the audience, annotated as one crowd region
            figures.append(Figure("person", [], [0] * COCO17.num_keypoints, "crowd",
                                  (0.0, 0.62 * h, float(w), 0.3 * h)))

        for k, fig in sorted(enumerate(figures), key=lambda kf: kf[1].kind != "crowd"):  # crowd behind
            if fig.kind == "crowd":
                draw_crowd(draw, fig.crowd_box, (40, 30, 30), rng, n=8)
            else:
                draw_human(draw, fig.points, fig.length, SKIN[(n + k) % len(SKIN)],
                           CLOTHES[(n + 2 * k) % len(CLOTHES)])
                if fig.kind == "hidden":
                    x, y, bw, bh = bbox_of(fig.points, [2] * 17, size, 0.1)
                    draw.rectangle([x, y, x + bw, y + bh], fill=(170, 130, 80))

        scene_counter[scene] = scene_counter.get(scene, 0) + 1
        file_name = f"HumanArt/images/{kind}/{scene}/{scene_counter[scene]:06d}.jpg"
        save_jpeg(image, root / file_name)
        images.append({"file_name": file_name, "height": h, "width": w, "id": image_id,
                       "description": caption, "category": scene})
        for fig in figures:
            if fig.kind == "crowd":
                box = tuple(round(v, 1) for v in fig.crowd_box)
                kpts = [0] * (3 * COCO17.num_keypoints)
            else:
                box = tuple(round(v, 1) for v in bbox_of(fig.points, fig.visibility if fig.kind == "normal"
                                                         else [2] * 17, size))
                kpts = flat_keypoints(fig.points, fig.visibility, as_int=False)
            annotations.append({
                "keypoints": kpts, "keypoints_21": kpts + keypoints_extra4(kpts),
                "num_keypoints": sum(1 for v in kpts[2::3] if v > 0), "iscrowd": int(fig.kind == "crowd"),
                "image_id": image_id, "bbox": list(box), "category_id": 1, "id": ann_id,
                "area": round(0.55 * box[2] * box[3], 1),
            })
            ann_id += 1

    doc = {
        "info": {"description": "spbench synthetic sample in Human-Art format (not Human-Art images)",
                 "version": "1.0", "year": 2025, "contributor": "scripts/make_sample_data.py"},
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": "person", "id": 1, "name": "person",
                        "keypoints": list(COCO17.keypoints),
                        "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]}],
    }
    write_coco_json(root / "HumanArt" / "annotations" / "validation_humanart.json", doc)


def keypoints_extra4(kpts17):
    """Human-Art's keypoints_21 adds left/right finger and toe: put them at the wrists/ankles."""
    out = []
    for name in ("left_wrist", "right_wrist", "left_ankle", "right_ankle"):
        i = COCO17.keypoints.index(name)
        out += kpts17[3 * i: 3 * i + 3]
    return out


README = """\
# spbench sample dataset (synthetic)

Written by `scripts/make_sample_data.py`; do not edit by hand, re-run the script.

These are procedurally drawn figures with procedurally generated poses, stored in the real
layouts and JSON formats of AP-10K (`ap10k/`) and Human-Art (`humanart/HumanArt/`). They are
NOT images from either dataset: the sample exists so the harness runs end to end out of the box,
and to exercise the readers' cleaning rules (each split has an unlabelled keypoint here and
there, one crowd annotation, one instance with no visible keypoint alone in its image, and one
keypoint outside the frame; the AP-10K split also has an instance with no labelled keypoint
beside labelled ones, kept as ignored ground truth). Numbers measured on it mean nothing about
any method.
"""


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "README.md").write_text(README, encoding="utf-8")
    make_ap10k_split(OUT / "ap10k")
    make_humanart_split(OUT / "humanart")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
