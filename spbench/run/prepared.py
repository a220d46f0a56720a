"""A prepared folder: what ``spbench prepare`` writes so that another tool can make a run's
images, and how ``spbench evaluate DIR --name NAME`` turns it, once the images are there, into an
ordinary run folder (:mod:`spbench.run.folder`) that is scored like any run.

    DIR/
      prepare.json        resolved config, dataset and split hash, protocol settings, condition
                          kinds, spbench version (its presence marks a prepared folder)
      requests.jsonl      one row per image to make (sample, k): prompt, negative prompt, seed,
                          canvas and original sizes, the image file to write, the condition files
      samples.jsonl       the split's samples (poses, boxes, prompts), as in a run folder
      conditions/<kind>/<sample_id>.png   each sample's condition, drawn as spbench's methods draw it
      images/<sample_id>_k<k>.png         the images, made by the other tool
    written by ``spbench evaluate DIR --name NAME`` (the run folder contract):
      run.json, manifest.jsonl, result.json, per_image.jsonl
      resized/<sample_id>_k<k>.png        images not of the canvas size, brought to the canvas

Images of another size than the canvas are brought to the canvas as spbench brings the dataset's
real images there (:func:`spbench.canvas.image_to_canvas`, PIL bicubic), since every metric reads
images in the canvas frame (the official pose protocol then resizes them to the original size,
as for any run). The originals stay untouched in ``images/``; the record lists each resized image.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
from pathlib import Path

from PIL import Image

from spbench.canvas import CanvasTransform, image_to_canvas
from spbench.errors import SpbenchError
from spbench.files import atomic_save_image, atomic_write_json, atomic_write_jsonl
from spbench.run.folder import RunFolder
from spbench.run.requests import Request
from spbench.schema_files import register_recorded

FORMAT = "spbench-prepared/1"
IMAGES = "images"
RESIZED = "resized"
CONDITIONS = "conditions"
IMAGE_PATTERN = "images/<sample_id>_k<k>.png"
CONDITION_PATTERN = "conditions/<kind>/<sample_id>.png"
RESIZE_RULE = ("brought to the canvas as spbench brings the dataset's real images there: "
               "spbench.canvas.image_to_canvas, PIL bicubic (stretch: each axis on its own)")
# Generation settings the other tool chooses: the imported record holds null for them (unknown).
TOOL_SETTINGS = ("steps", "guidance_scale", "conditioning_scale", "scheduler", "dtype")
# Model roles that make images (the other tool's models, not known to spbench): these names, and
# the newer bases' roles (``sdxl_base``, ``sdxl_vae``, ``controlnet_flux_union``, ...).
GENERATION_MODELS = ("base", "controlnet", "t2i_adapter", "depth_estimator", "segmenter")
GENERATION_MODEL_PREFIXES, GENERATION_MODEL_SUFFIXES = ("controlnet", "t2i_adapter"), ("_base", "_vae")
# Problems listed in the error message (the rest are counted; all are in import-problems.txt).
SHOWN_PROBLEMS = 30


def is_prepared(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``spbench prepare`` (it holds prepare.json)."""
    return (Path(path) / "prepare.json").is_file()


class PreparedFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run = RunFolder(self.path)  # the same folder, as the run it becomes

    prepare_json = property(lambda self: self.path / "prepare.json")
    requests_jsonl = property(lambda self: self.path / "requests.jsonl")
    problems_txt = property(lambda self: self.path / "import-problems.txt")
    images = property(lambda self: self.path / IMAGES)
    resized = property(lambda self: self.path / RESIZED)

    @staticmethod
    def image_name(request: Request) -> str:
        return f"{request.key}.png"

    def condition_file(self, kind: str, sample_id: str) -> Path:
        return self.path / CONDITIONS / kind / f"{sample_id}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.path).as_posix()

    # -- prepare side ------------------------------------------------------------------------
    def request_row(self, request: Request, negative_prompt: str, kinds: list[str]) -> dict:
        """One line of requests.jsonl: everything another tool needs to make this image."""
        s, t = request.sample, request.transform
        return {
            "sample_id": s.sample_id,
            "k": request.k,
            "seed": request.seed,
            "prompt": s.prompt,
            "negative_prompt": negative_prompt,
            "width": t.width,
            "height": t.height,
            "original_width": s.width,
            "original_height": s.height,
            "file": f"{IMAGES}/{self.image_name(request)}",
            "conditions": {kind: self.relative(self.condition_file(kind, s.sample_id)) for kind in kinds},
        }

    def check_reusable(self, info: dict) -> None:
        """A folder may be prepared again only with the same requests and conditions."""
        if self.run.run_json.is_file() and not self.prepare_json.is_file():
            raise SpbenchError(f"{self.path} holds a run folder (run.json), not a prepared folder: pass another --out")
        if not self.prepare_json.is_file():
            return
        old = self.read_prepare()
        before, now = _identity(old), _identity(info)
        for key in before.keys() | now.keys():
            if before.get(key) != now.get(key):
                raise SpbenchError(
                    f"{self.path} was prepared with other settings ({key}: {before.get(key)!r} there, {now.get(key)!r} now); "
                    "pass another --out, or delete that folder to start over")

    def write(self, info: dict, rows: list[dict], samples) -> None:
        """requests.jsonl, samples.jsonl and the images/ folder, then prepare.json (last: a
        folder without it is not a prepared folder, so an interrupted prepare is just redone)."""
        self.images.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(self.requests_jsonl, rows)
        atomic_write_jsonl(self.run.samples_jsonl, (s.to_dict() for s in samples))
        atomic_write_json(self.prepare_json, info)

    # -- import side -------------------------------------------------------------------------
    def read_prepare(self) -> dict:
        fix = "rerun the `spbench prepare` command that made it (the images are kept)"
        try:
            info = json.loads(self.prepare_json.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpbenchError(f"{self.prepare_json}: not readable JSON ({e}); {fix}") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise SpbenchError(f"{self.prepare_json}: not a prepare.json of format {FORMAT}; {fix}")
        for key in ("config", "dataset", "conditions"):
            if not isinstance(info.get(key), dict):
                raise SpbenchError(f"{self.prepare_json}: no {key!r} section; {fix}")
        kinds = info["conditions"].get("kinds")
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise SpbenchError(f"{self.prepare_json}: conditions.kinds must be a list of condition kinds; {fix}")
        register_recorded(info["dataset"])  # a schema file's definition, as prepare recorded it
        return info

    def import_images(self, info: dict, requests: list[Request], name: str, progress=None) -> dict:
        """Check that ``images/`` holds exactly the requested images (else one error listing every
        missing, extra, unreadable or unusable file, before anything is written), bring images of
        another size to the canvas (``resized/``), and write run.json and manifest.jsonl: the
        folder is then a run folder of method ``name``. Returns run.json. ``progress``: a callable
        giving a rich Progress, shown once the images have passed the check."""
        found = self.check_images(requests)
        with progress() if progress else contextlib.nullcontext() as bar:
            rows, resized, digest = self._bring_to_canvas(info, requests, found, bar)
        canvas = requests[0].transform
        kinds = info["conditions"]["kinds"]
        run_info = {
            "run": self.path.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": info["dataset"],
            "method": {
                "name": name, "variant": None, "condition": ",".join(kinds), "checkpoint": None,
                "imported": {
                    "from": "a prepared folder (`spbench prepare`): images made by another tool",
                    "prepared_with": f"spbench {info.get('spbench_version')}",
                    "images": len(requests),
                    "images_sha256": digest,
                    "unknown": "the other tool's models and sampler settings (null in config.generation "
                               + ", ".join(TOOL_SETTINGS) + " and config.models)",
                    "resized": {"count": len(resized), "to": f"{canvas.width}x{canvas.height}",
                                "how": RESIZE_RULE, "images": resized},
                },
            },
            "models": {},
            "weights": {},
            "config": imported_config(info["config"], name),
        }
        atomic_write_json(self.run.run_json, run_info)
        self.run.write_manifest(rows)
        return run_info

    def _bring_to_canvas(self, info: dict, requests: list[Request], found: dict, bar) -> tuple[list[dict], dict, str]:
        """Manifest rows, the resized images (file name -> original size) and the images' digest;
        images not of the canvas size are written, brought to it, to ``resized/``."""
        rows, resized, keep, digest = [], {}, set(), hashlib.sha256()
        task = bar.add_task("importing images", total=len(requests)) if bar else None
        for request in requests:
            file_name = self.image_name(request)
            source = self.images / file_name
            size = found[file_name]
            digest.update(f"{file_name}\0".encode() + _file_digest(source))
            transform = request.transform
            row_file, extra = f"{IMAGES}/{file_name}", {}
            if size != (transform.width, transform.height):
                with Image.open(source) as image:
                    atomic_save_image(self.resized / file_name, to_canvas(image, transform, request.sample))
                keep.add(file_name)
                resized[file_name] = f"{size[0]}x{size[1]}"
                row_file = f"{RESIZED}/{file_name}"
                extra = {"resized_from": {"file": f"{IMAGES}/{file_name}", "width": size[0], "height": size[1]}}
            rows.append(self._manifest_row(info, request, row_file, extra))
            if bar:
                bar.advance(task)
        if self.resized.is_dir():  # resized copies of images that now have the canvas size
            for stale in self.resized.glob("*.png"):
                if stale.name not in keep:
                    stale.unlink(missing_ok=True)
        self.problems_txt.unlink(missing_ok=True)
        return rows, resized, digest.hexdigest()

    def _manifest_row(self, info: dict, request: Request, file: str, extra: dict) -> dict:
        kinds = info["conditions"]["kinds"]
        sid = request.sample.sample_id
        files = {kind: self.relative(self.condition_file(kind, sid)) for kind in kinds}
        condition = {"kind": ",".join(kinds), "file": files[kinds[0]], "render": info["conditions"].get("render")}
        if len(kinds) > 1:
            condition["files"] = files
        return {"sample_id": sid, "k": request.k, "seed": request.seed, "prompt": request.sample.prompt,
                "condition": condition, "canvas": request.transform.to_dict(), "file": file, **extra}

    def check_images(self, requests: list[Request], write_list: bool = True) -> dict[str, tuple[int, int]]:
        """File name -> size of every requested image; one SpbenchError listing every problem (past
        SHOWN_PROBLEMS, all of them in import-problems.txt unless ``write_list`` is false)."""
        if not self.images.is_dir():
            raise SpbenchError(f"{self.images} does not exist: write the {len(requests)} images listed in "
                               f"{self.requests_jsonl} there (column file), then run this again")
        wanted = {self.image_name(r): r for r in requests}
        present = sorted(p.name for p in self.images.iterdir() if not p.name.startswith("."))
        on_disk = set(present)
        problems = [f"missing {IMAGES}/{n}" for n in wanted if n not in on_disk]
        stems = {Path(n).stem for n in wanted}
        for n in present:
            if n not in wanted:
                hint = " (spbench reads PNG files: save it as .png)" if Path(n).stem in stems else ""
                problems.append(f"extra {IMAGES}/{n}{hint}")
        found = {}
        for n in present:
            if n not in wanted:
                continue
            path = self.images / n
            try:
                with Image.open(path) as im:
                    size = im.size
                    im.verify()
            except Exception as e:  # noqa: BLE001 - any decoding failure is the file's problem
                problems.append(f"unreadable {IMAGES}/{n} ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
                continue
            problem = size_problem(size, wanted[n].transform, wanted[n].sample)
            if problem:
                problems.append(f"wrong size {IMAGES}/{n}: {problem}")
            found[n] = size
        if problems:
            counts = {}
            for p in problems:
                kind = p.split(" ")[0] if not p.startswith("wrong size") else "wrong size"
                counts[kind] = counts.get(kind, 0) + 1
            summary = ", ".join(f"{v} {k}" for k, v in counts.items())
            shown = problems[:SHOWN_PROBLEMS]
            more = ""
            if len(problems) > len(shown):
                if write_list:
                    self.problems_txt.write_text("\n".join(problems) + "\n", encoding="utf-8")
                more = f"\n  ... and {len(problems) - len(shown)} more (all listed in {self.problems_txt})"
            raise SpbenchError(
                f"{self.images} does not match {self.requests_jsonl} ({summary}); nothing was scored:\n  "
                + "\n  ".join(shown) + more)
        return found


def size_problem(size: tuple[int, int], transform: CanvasTransform, sample) -> str:
    """Why an image of ``size`` cannot be brought to the canvas ("" if it can): with a stretched
    canvas every size can; a letterboxed one needs the canvas's shape or the original image's size."""
    if transform.mode == "stretch" or size == (transform.width, transform.height):
        return ""
    if size == (sample.width, sample.height) or _same_shape(size, (transform.width, transform.height)):
        return ""
    return (f"{size[0]}x{size[1]}; with canvas_mode {transform.mode} an image must have the canvas's shape "
            f"({transform.width}x{transform.height} or a multiple) or the original image's size ({sample.width}x{sample.height})")


def to_canvas(image: Image.Image, transform: CanvasTransform, sample) -> Image.Image:
    """An image of another size in the canvas frame (see the module doc): a stretched canvas, or an
    image of the original size, goes through :func:`image_to_canvas`; an image of the canvas's
    shape at another scale is resized to it."""
    if transform.mode == "stretch" or image.size == (sample.width, sample.height):
        return image_to_canvas(image, transform)
    return image.convert("RGB").resize((transform.width, transform.height), Image.Resampling.BICUBIC)


def imported_config(config: dict, name: str) -> dict:
    """The prepared config as the imported run's: method ``name``, and null for what the other
    tool chose (its generation models and sampler settings)."""
    config = copy.deepcopy(config)
    config["method"] = {"name": name, "variant": None, "checkpoint": None, "options": {}}
    models = config.get("models", {})
    for role in models:
        if role in GENERATION_MODELS or role.startswith(GENERATION_MODEL_PREFIXES) or role.endswith(GENERATION_MODEL_SUFFIXES):
            models[role] = None
    for key in TOOL_SETTINGS:
        if key in config.get("generation", {}):
            config["generation"][key] = None
    return config


def _same_shape(size: tuple[int, int], canvas: tuple[int, int]) -> bool:
    (w, h), (cw, ch) = size, canvas
    return abs(w * ch - h * cw) <= max(cw, ch) / 2


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _identity(info: dict) -> dict:
    """What decides a prepared folder's requests and conditions (compared when it is prepared again)."""
    protocol = info.get("protocol") or {}
    return {
        "dataset": {k: (info.get("dataset") or {}).get(k) for k in ("name", "split", "hash")},
        "canvas": protocol.get("canvas"), "seed": protocol.get("seed"),
        "images_per_prompt": protocol.get("images_per_prompt"), "negative_prompt": protocol.get("negative_prompt"),
        "conditions": {k: (info.get("conditions") or {}).get(k) for k in ("kinds", "render")},
    }
