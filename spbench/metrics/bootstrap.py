"""Bootstrap intervals over prompts for a metric's headline, and paired differences of two runs.

What is resampled: the *prompts* (samples) of the split, with replacement; a drawn prompt brings
every image of it that the metric scored (all k under the canvas protocol, k = 0 under the
official one), and a prompt drawn twice counts twice. The headline is recomputed on each
resampled set exactly as the metric defines it:

- COCO metrics (pose OKS-mAP, detection AP.75) re-run COCOeval's *accumulation* on the resampled
  image set. ``COCOeval.evaluate()`` (the per-image matching, which depends on one image alone)
  runs once; each resample concatenates the per-image results again, a repeated image repeated,
  and accumulates them as pycocotools' ``accumulate()`` does (:class:`CocoResampler`, the same
  arithmetic vectorised). That equals pycocotools run from scratch on a data set in which each
  repeated image is a new image with the same annotations and detections
  (``tests/test_bootstrap.py`` checks it).
- Grouped means (CLIP-Score: mean per category, then over categories) average the resampled
  images per group, a repeated image twice.
- FID (:class:`FidResampler`) recomputes the generated set's moments from each scored image's
  Inception features, a repeated image weighted by its count (``Σ w·f``, ``Fᵀ·diag(w)·F``, the
  covariance with n − 1 as for the headline), and the Fréchet distance to the fixed reference
  moments with the headline's own function (:func:`spbench.metrics.fid_moments.frechet_distance`).
  Its resamples are ``evaluation.bootstrap_fid_resamples`` (100; each costs an eigendecomposition
  of a 2048×2048 matrix), the first rows of the same draws. FID is biased upward for small sets
  and more so for sets with repeats, so the resampled values lie above the estimate: the interval
  shows the spread (:data:`FID_BIAS_NOTE`).
- Any other evaluator (metrics added later) is recomputed by its own ``compute()`` on its entries
  with each repeated prompt relabelled as a new prompt (``<sample_id>#<j>``); an evaluator that
  sums images into its state (``sums_images``) and says nothing more cannot be resampled and is
  skipped with the reason. A metric can also say how it resamples by a ``bootstrap_data()``
  method returning one of the storable forms below.

The resampled multiset is taken in prompt order (sorted sample ids, a prompt drawn m times m
times in a row, its images by k), so the identity draw is the order ``compute()`` uses and the
headline is reproduced exactly.

Draws: ``numpy.random.default_rng(seed).integers(0, n, size=(resamples, n))`` over the n sorted
prompt ids. Interval: the percentile bootstrap, the ``(1 - c) / 2`` and ``(1 + c) / 2`` quantiles
of the resampled values (numpy's default ``linear`` rule) for confidence ``c``. Resamples where the
headline is undefined (e.g. no ground truth drawn) are left out and counted.

Storable forms (``data``, plain JSON, written to the run folder so that ``spbench compare`` can
resample two runs on the same draws): ``{"kind": "coco", ...}`` (per image its ground truth and
detections in COCO form) and ``{"kind": "grouped_mean", ...}`` (per image its group and value);
FID's ``{"kind": "fid_features", ...}`` holds numpy arrays (per image its features, and the
reference moments) and is stored as ``.npz`` (:func:`fid_data_arrays`, :func:`fid_data_from_arrays`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from dataclasses import dataclass

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.coco import AP_DECIMALS, coco_objects
from spbench.metrics.fid_moments import Moments

DATA_FORMAT = 1
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95
QUANTILE_METHOD = "linear"  # numpy.quantile's default (Hyndman & Fan type 7)
DRAWS = "numpy.random.default_rng(seed).integers(0, n, size=(resamples, n)) over the n prompts sorted by sample id"
INTERVAL_METHOD = (f"percentile bootstrap over prompts (each with all its scored images, a repeat counted twice); "
                   f"numpy.quantile method {QUANTILE_METHOD!r}")
DEFAULT_FID_RESAMPLES = 100
FID_BIAS_NOTE = ("FID is biased upward for small sets (Chong & Forsyth, CVPR 2020) and more so for resampled sets, "
                 "which repeat images (about 63 % of them distinct) and so act as smaller sets: the resampled FIDs "
                 "lie mostly above the estimate, so the percentile interval shows FID's spread over prompts, not an unbiased "
                 "range around the estimate; compare intervals of runs of the same size, or use the paired difference")
# How the records of runs scored before FID kept its features begin their ``skipped`` reason.
FID_OLD_REASON = "FID has no per-image value"
# The pycocotools summary value behind each COCO headline key: the IoU/OKS threshold (None: all).
COCO_KEYS = {"AP": None, "AP50": 0.5, "AP75": 0.75}


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    confidence: float = DEFAULT_CONFIDENCE

    @classmethod
    def from_config(cls, config: dict) -> "BootstrapSettings":
        """``evaluation.bootstrap_resamples``, ``bootstrap_seed``, ``bootstrap_confidence`` (the
        defaults for configs written before they existed)."""
        ev = (config or {}).get("evaluation") or {}
        resamples = ev.get("bootstrap_resamples")
        seed = ev.get("bootstrap_seed")
        confidence = ev.get("bootstrap_confidence")
        return cls(DEFAULT_RESAMPLES if resamples is None else resamples, DEFAULT_SEED if seed is None else seed,
                   DEFAULT_CONFIDENCE if confidence is None else confidence).checked()

    def checked(self, where: str = "evaluation.bootstrap_") -> "BootstrapSettings":
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 0:
            raise SpbenchError(f"{where}resamples must be an integer >= 0 (0: no interval), got {self.resamples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpbenchError(f"{where}seed must be an integer >= 0, got {self.seed!r}")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < 1:
            raise SpbenchError(f"{where}confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {c!r}")
        return self


def fid_resamples(config: dict) -> tuple[int, str | None]:
    """FID's resamples: ``evaluation.bootstrap_fid_resamples`` (100), 0 when intervals are off
    (``evaluation.bootstrap_resamples`` 0); with the reason when 0."""
    ev = (config or {}).get("evaluation") or {}
    if BootstrapSettings.from_config(config).resamples == 0:
        return 0, "evaluation.bootstrap_resamples is 0"
    value = ev.get("bootstrap_fid_resamples")
    value = DEFAULT_FID_RESAMPLES if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpbenchError(f"evaluation.bootstrap_fid_resamples must be an integer >= 0 (0: no FID interval), got {value!r}")
    if value == 0:
        return 0, "evaluation.bootstrap_fid_resamples is 0"
    return value, None


def draw_indices(num_prompts: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, num_prompts] prompt indices drawn with replacement (see the module doc)."""
    return np.random.default_rng(seed).integers(0, num_prompts, size=(resamples, num_prompts))


def percentile_interval(values, confidence: float) -> tuple[float | None, float | None]:
    """The ``(1 - c) / 2`` and ``(1 + c) / 2`` quantiles of ``values`` (numpy ``linear``); None
    without values."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return None, None
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2], method=QUANTILE_METHOD)
    return float(low), float(high)


# -- resamplers ------------------------------------------------------------------------------------


class Resampler:
    """A metric's headline as a function of a multiset of prompts (indices into ``prompts``)."""

    kind = "resampler"

    def __init__(self, prompts, key: str, data: dict | None = None):
        self.prompts = tuple(prompts)  # sorted sample ids
        self.key = key
        self.data = data  # storable form, or None (in memory only)

    def value(self, indices) -> float | None:
        raise NotImplementedError

    def values(self, draws: np.ndarray, progress=None) -> list[float | None]:
        out = []
        for row in draws:
            out.append(self.value(row))
            if progress is not None:
                progress()
        return out

    def identity(self) -> np.ndarray:
        return np.arange(len(self.prompts))


def _group_images(images: list[dict]) -> tuple[tuple[str, ...], list[list[int]]]:
    """Images sorted by (sample_id, k) -> (sorted prompt ids, positions of each prompt's images)."""
    prompts: list[str] = []
    positions: list[list[int]] = []
    for pos, im in enumerate(images):
        if not prompts or prompts[-1] != im["sample_id"]:
            prompts.append(im["sample_id"])
            positions.append([])
        positions[-1].append(pos)
    return tuple(prompts), positions


def _sorted_images(images: list[dict]) -> list[dict]:
    return sorted(images, key=lambda im: (str(im["sample_id"]), int(im["k"])))


class GroupedMeanResampler(Resampler):
    """Mean of the values per group, then over the groups present (CLIP-Score; group ``all`` for a
    plain mean), raised to ``floor`` when the data names one (torchmetrics' CLIPScore clamps its
    mean at 0). Vectorised over resamples: a draw is a count per prompt."""

    kind = "grouped_mean"

    def __init__(self, data: dict):
        images = _sorted_images(data["images"])
        prompts, positions = _group_images(images)
        super().__init__(prompts, data["key"], data)
        groups = sorted({str(im["group"]) for im in images})
        col = {g: j for j, g in enumerate(groups)}
        self._sums = np.zeros((len(prompts), len(groups)))
        self._counts = np.zeros((len(prompts), len(groups)))
        for i, pos in enumerate(positions):
            for p in pos:
                self._sums[i, col[str(images[p]["group"])]] += float(images[p]["value"])
                self._counts[i, col[str(images[p]["group"])]] += 1

    def _from_weights(self, weights: np.ndarray) -> list[float | None]:
        sums, counts = weights @ self._sums, weights @ self._counts
        out = []
        floor = self.data.get("floor") if self.data else None
        for s, c in zip(sums, counts):
            present = c > 0
            v = float(np.mean(s[present] / c[present])) if present.any() else None
            out.append(max(v, float(floor)) if v is not None and floor is not None else v)
        return out

    def value(self, indices) -> float | None:
        return self._from_weights(_weights(np.asarray(indices)[None, :], len(self.prompts)))[0]

    def values(self, draws: np.ndarray, progress=None) -> list[float | None]:
        out = self._from_weights(_weights(np.asarray(draws), len(self.prompts)))
        if progress is not None:
            for _ in out:
                progress()
        return out


def _weights(draws: np.ndarray, n: int) -> np.ndarray:
    """[B, n] how often each prompt is drawn in each resample."""
    w = np.zeros((draws.shape[0], n))
    np.add.at(w, (np.repeat(np.arange(draws.shape[0]), draws.shape[1]), draws.reshape(-1)), 1.0)
    return w


class CocoResampler(Resampler):
    """COCO AP on resampled images. ``COCOeval.evaluate()`` runs once on every image; each
    resample redoes the accumulation over the per-image results (area range ``all``, the largest
    maxDets: what AP, AP50 and AP75 read), a repeated image repeated. The accumulation is
    pycocotools' ``accumulate()`` step for step (concatenate in image order, stable sort by score,
    cumulative TP/FP, precision envelope, precision at the 101 recall thresholds), vectorised with
    numpy: with 100 detections per image, pycocotools' Python loops cost most of a second per
    resample on a full split. Checked against pycocotools from scratch in tests/test_bootstrap.py."""

    kind = "coco"

    def __init__(self, data: dict):
        images = _sorted_images(data["images"])
        prompts, positions = _group_images(images)
        super().__init__(prompts, data["key"], data)
        if self.key not in COCO_KEYS:
            raise SpbenchError(f"bootstrap data for {self.key!r}: COCO headline keys are {', '.join(COCO_KEYS)}")
        self._empty = data.get("empty")  # the value with ground truth but no detection (None: undefined)
        self._prompt_of_image = np.zeros(len(images), dtype=np.int64)
        for i, pos in enumerate(positions):
            self._prompt_of_image[pos] = i
        self._num_gts = np.array([len(im["gts"]) for im in images], dtype=np.int64)
        self._num_dets = np.array([len(im["dets"]) for im in images], dtype=np.int64)
        self._categories: list[dict] = []
        gt, dt = coco_objects([(f"{im['sample_id']}_{im['k']}", im["gts"], im["dets"]) for im in images])
        if dt is None:
            return
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, dt, iouType=data["iou_type"])
            if data.get("sigmas") is not None:
                ev.params.kpt_oks_sigmas = np.array(data["sigmas"])
            ev.params.imgIds = list(range(1, len(images) + 1))
            ev.params.useCats = int(bool(data["use_categories"]))
            ev.evaluate()
        pe = ev._paramsEval
        if pe.areaRngLbl[0] != "all":
            raise SpbenchError(f"pycocotools' first area range is {pe.areaRngLbl[0]!r}, expected 'all'")
        self._iou_thrs, self._rec_thrs, max_det = np.asarray(pe.iouThrs), np.asarray(pe.recThrs), pe.maxDets[-1]
        num_cats = len(pe.catIds) if pe.useCats else 1
        num_areas, num_images = len(pe.areaRng), len(pe.imgIds)
        num_thrs = len(pe.iouThrs)
        # evalImgs are laid out [category][area range][image] (image ids 1..N in position order);
        # per category, the images it has results for, with their results concatenated.
        for c in range(num_cats):
            block = ev.evalImgs[c * num_areas * num_images: c * num_areas * num_images + num_images]
            have = [(pos, e) for pos, e in enumerate(block) if e is not None]
            det_len = np.array([len(e["dtScores"][:max_det]) for _, e in have], dtype=np.int64)
            gt_len = np.array([len(e["gtIgnore"]) for _, e in have], dtype=np.int64)
            cat = {
                "pos": np.array([pos for pos, _ in have], dtype=np.int64),
                "det_start": np.cumsum(det_len) - det_len, "det_len": det_len,
                "gt_start": np.cumsum(gt_len) - gt_len, "gt_len": gt_len,
                "scores": np.concatenate([np.asarray(e["dtScores"][:max_det], dtype=np.float64) for _, e in have])
                if have else np.zeros(0),
                "matches": np.concatenate([np.asarray(e["dtMatches"])[:, :max_det] for _, e in have], axis=1)
                if have else np.zeros((num_thrs, 0)),
                "ignore": np.concatenate([np.asarray(e["dtIgnore"])[:, :max_det] for _, e in have], axis=1)
                if have else np.zeros((num_thrs, 0), dtype=bool),
                "gt_ignore": np.concatenate([np.asarray(e["gtIgnore"]) for _, e in have]) if have else np.zeros(0),
            }
            # pycocotools' tps / fps before the cumulative sums: matched (unmatched) and not ignored.
            cat["tps"] = np.logical_and(cat["matches"], np.logical_not(cat["ignore"]))
            cat["fps"] = np.logical_and(np.logical_not(cat["matches"]), np.logical_not(cat["ignore"]))
            del cat["matches"], cat["ignore"]
            self._categories.append(cat)

    def value(self, indices) -> float | None:
        per_image = np.bincount(np.asarray(indices), minlength=len(self.prompts))[self._prompt_of_image]
        if int(per_image @ self._num_gts) == 0:
            return None
        if not self._categories or int(per_image @ self._num_dets) == 0:
            return self._empty
        num_thrs, num_recall = len(self._iou_thrs), len(self._rec_thrs)
        precision = -np.ones((num_thrs, num_recall, len(self._categories)))
        for c, cat in enumerate(self._categories):
            reps = per_image[cat["pos"]]
            keep = reps > 0
            if not keep.any():
                continue
            gt_ignore = cat["gt_ignore"][_segments(cat["gt_start"][keep], cat["gt_len"][keep], reps[keep])]
            npig = np.count_nonzero(gt_ignore == 0)
            if npig == 0:
                continue
            dets = _segments(cat["det_start"][keep], cat["det_len"][keep], reps[keep])
            dets = dets[np.argsort(-cat["scores"][dets], kind="mergesort")]
            tp = np.cumsum(cat["tps"][:, dets], axis=1).astype(dtype=float)
            fp = np.cumsum(cat["fps"][:, dets], axis=1).astype(dtype=float)
            nd = tp.shape[1]
            recall = tp / npig
            prec = tp / (fp + tp + np.spacing(1))
            prec = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # pycocotools' envelope loop
            for t in range(num_thrs):
                at = np.searchsorted(recall[t], self._rec_thrs, side="left")
                q = np.zeros(num_recall)
                inside = at < nd  # pycocotools stops at the first index past the end, leaving zeros
                q[inside] = prec[t, at[inside]]
                precision[t, :, c] = q
        threshold = COCO_KEYS[self.key]
        if threshold is not None:  # as COCOeval.summarize: the exact threshold
            precision = precision[np.where(threshold == self._iou_thrs)[0]]
        defined = precision[precision > -1]
        return None if defined.size == 0 else round(float(np.mean(defined)) * 100.0, AP_DECIMALS)


def _segments(starts: np.ndarray, lengths: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """Indices of the segments ``[start, start + length)``, each repeated ``repeats`` times in a
    row, in order: ``[s0..e0, s0..e0, s1..e1, ...]`` (a repeated image's results repeated)."""
    copy_starts = np.repeat(starts, repeats)
    copy_lengths = np.repeat(lengths, repeats)
    total = int(copy_lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(copy_lengths) - copy_lengths
    return np.repeat(copy_starts - offsets, copy_lengths) + np.arange(total)


class EvaluatorResampler(Resampler):
    """Any entry-based evaluator: its own ``compute()`` on the resampled entries, each repeated
    prompt relabelled ``<sample_id>#<j>`` (j zero-padded, so the order stays the prompt order)."""

    kind = "evaluator"

    def __init__(self, evaluator, key: str):
        entries = evaluator.entries()
        prompts, positions = _group_images(entries)
        super().__init__(prompts, key, None)
        self._evaluator = evaluator
        self._by_prompt = [[entries[p] for p in pos] for pos in positions]
        self._width = len(str(len(prompts)))

    def value(self, indices) -> float | None:
        clone = copy.copy(self._evaluator)
        clone._entries = {}
        for j, i in enumerate(np.sort(np.asarray(indices))):
            for e in self._by_prompt[i]:
                sample_id = f"{e['sample_id']}#{j:0{self._width}d}"
                clone._entries[(sample_id, int(e["k"]))] = {**e, "sample_id": sample_id}
        value = clone.compute().get(self.key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None


class FidResampler(Resampler):
    """FID of the resampled prompts' images against the fixed reference moments: each resample's
    generated moments from the images' features weighted by how often their prompt was drawn
    (:meth:`Moments.of_weighted_rows`: the moments of the rows repeated), then the headline's
    :func:`frechet_distance` (mean, covariance with n − 1, torchmetrics' formula). All k of a
    prompt count, as in the pooled headline ``fid``."""

    kind = "fid_features"

    def __init__(self, data: dict):
        sample_ids = [str(s) for s in data["sample_ids"]]
        ks = [int(k) for k in data["k"]]
        features = np.asarray(data["features"])
        if features.ndim != 2 or len(features) != len(sample_ids) or len(ks) != len(sample_ids):
            raise SpbenchError(f"FID bootstrap data: {len(sample_ids)} sample ids, {len(ks)} k and features of shape "
                               f"{features.shape} do not match")
        order = sorted(range(len(sample_ids)), key=lambda i: (sample_ids[i], ks[i]))
        images = [{"sample_id": sample_ids[i], "k": ks[i]} for i in order]
        prompts, positions = _group_images(images)
        super().__init__(prompts, data["key"], data)
        self._features = features[order].astype(np.float64)  # once, not per resample
        self._prompt_of_image = np.zeros(len(images), dtype=np.int64)
        for i, pos in enumerate(positions):
            self._prompt_of_image[pos] = i
        ref = data["reference"]
        self.reference = Moments(features.shape[1])
        self.reference.n = int(ref["n"])
        self.reference.sum = np.asarray(ref["sum"], dtype=np.float64)
        self.reference.outer = np.asarray(ref["outer"], dtype=np.float64)
        if self.reference.sum.shape != (features.shape[1],) or self.reference.outer.shape != (features.shape[1],) * 2:
            raise SpbenchError(f"FID bootstrap data: reference moments of {self.reference.sum.shape} features, "
                               f"the images have {features.shape[1]}")

    def image_weights(self, indices) -> np.ndarray:
        """How often each image (sorted by sample id, k) is in the resample ``indices``."""
        return np.bincount(np.asarray(indices), minlength=len(self.prompts))[self._prompt_of_image]

    def moments(self, indices) -> Moments:
        """The generated set's moments of the resample ``indices``."""
        return Moments.of_weighted_rows(self._features, self.image_weights(indices))

    def value(self, indices) -> float | None:
        moments = self.moments(indices)
        if moments.n < 2 or self.reference.n < 2:
            return None
        value = self._fast_distance(moments)
        return None if not math.isfinite(value) else float(value)

    def _fast_distance(self, moments: Moments) -> float:
        """:func:`frechet_distance` with the reference's square root taken once: the eigenvalues of
        Σ_gen·Σ_ref are those of R·Σ_gen·R with R = Σ_ref^½ (similar matrices), and that product is
        symmetric, so ``eigvalsh`` finds them in a fraction of the time of the general ``eigvals``
        of the headline (about 14 s per resample at 2048 features on two CPU cores). Equal to the
        headline's formula to rounding (tests/test_fid_bootstrap.py)."""
        if not hasattr(self, "_root"):
            mu, cov = _mean_cov(self.reference)
            eig, vec = np.linalg.eigh(cov)
            self._root = (vec * np.sqrt(np.clip(eig, 0, None))) @ vec.T
            self._ref_mu, self._ref_trace = mu, float(np.trace(cov))
        mu, cov = _mean_cov(moments)
        root_trace = np.sqrt(np.clip(np.linalg.eigvalsh(self._root @ cov @ self._root), 0, None)).sum()
        return float(np.square(mu - self._ref_mu).sum() + np.trace(cov) + self._ref_trace - 2 * root_trace)


def _mean_cov(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n − 1) of a set's moments, as :func:`frechet_distance` takes them."""
    mu = m.sum / m.n
    return mu, (m.outer - m.n * np.outer(mu, mu)) / (m.n - 1)


def fid_data_arrays(data: dict) -> dict[str, np.ndarray]:
    """FID's bootstrap data as the arrays of an ``.npz`` (no object arrays: loads with allow_pickle=False)."""
    meta = {key: data[key] for key in ("format", "metric", "key", "kind", "extractor") if key in data}
    return {"meta": np.array(json.dumps(meta, sort_keys=True)),
            "sample_ids": np.array([str(s) for s in data["sample_ids"]], dtype=str),
            "k": np.asarray(data["k"], dtype=np.int64),
            "features": np.asarray(data["features"], dtype=np.float32),
            "reference_n": np.array(int(data["reference"]["n"]), dtype=np.int64),
            "reference_sum": np.asarray(data["reference"]["sum"], dtype=np.float64),
            "reference_outer": np.asarray(data["reference"]["outer"], dtype=np.float64)}


def fid_data_from_arrays(arrays) -> dict:
    """The data of :func:`fid_data_arrays`' arrays (a dict or an open ``np.load``)."""
    missing = sorted({"meta", "sample_ids", "k", "features", "reference_n", "reference_sum", "reference_outer"}
                     - set(arrays.keys()))
    if missing:
        raise SpbenchError(f"not FID bootstrap data (no {', '.join(missing)})")
    meta = json.loads(str(arrays["meta"][()]))
    return {**meta, "sample_ids": [str(s) for s in arrays["sample_ids"]], "k": [int(k) for k in arrays["k"]],
            "features": np.asarray(arrays["features"]),
            "reference": {"n": int(arrays["reference_n"][()]), "sum": np.asarray(arrays["reference_sum"]),
                          "outer": np.asarray(arrays["reference_outer"])}}


def fid_bootstrap_data(evaluator, key: str) -> dict | str:
    """FID's storable form (each scored image's features, the reference moments), or why there is none."""
    if key != "fid":
        return f"FID intervals are recorded for the pooled headline fid, not {key}"
    if evaluator.reference is None:
        return "FID has no reference statistics to resample against"
    keys, rows = evaluator.feature_rows()
    if len(keys) != len(evaluator.entries()):
        return (f"FID kept features of {len(keys)} of its {len(evaluator.entries())} images (a state merged from "
                "an older spbench): nothing consistent to resample")
    ref = evaluator.reference
    return {"format": DATA_FORMAT, "metric": evaluator.name, "key": key, "kind": FidResampler.kind,
            "extractor": evaluator.extractor, "sample_ids": [s for s, _ in keys], "k": [k for _, k in keys],
            "features": rows, "reference": {"n": ref.n, "sum": ref.sum, "outer": ref.outer}}


RESAMPLERS = {CocoResampler.kind: CocoResampler, GroupedMeanResampler.kind: GroupedMeanResampler,
              FidResampler.kind: FidResampler}


def resampler_from_data(data: dict) -> Resampler:
    """The resampler of a storable form (as :func:`bootstrap_data` makes and the run folder keeps)."""
    if isinstance(data, dict) and data.get("kind") == FidResampler.kind:
        if data.get("format", DATA_FORMAT) > DATA_FORMAT:
            raise SpbenchError(f"bootstrap data format {data['format']} is newer than this spbench reads ({DATA_FORMAT})")
        return FidResampler(data)
    if not isinstance(data, dict) or data.get("kind") not in RESAMPLERS or not isinstance(data.get("images"), list):
        raise SpbenchError(f"not bootstrap data (kind {data.get('kind') if isinstance(data, dict) else None!r}; "
                           f"known: {', '.join(RESAMPLERS)})")
    if data.get("format", DATA_FORMAT) > DATA_FORMAT:
        raise SpbenchError(f"bootstrap data format {data['format']} is newer than this spbench reads ({DATA_FORMAT})")
    return RESAMPLERS[data["kind"]](data)


# -- what each metric resamples ----------------------------------------------------------------------


def bootstrap_data(evaluator, key: str) -> dict | str | None:
    """The storable form of ``evaluator``'s headline ``key`` (a dict), the reason it cannot be
    resampled (a str), or None (no storable form: the generic evaluator resampler applies)."""
    from spbench.metrics.clip_score import ClipScoreEvaluator, clip_score_value
    from spbench.metrics.detection import DetectionEvaluator
    from spbench.metrics.fid import FidEvaluator
    from spbench.metrics.pose import PoseEvaluator

    own = getattr(evaluator, "bootstrap_data", None)
    if callable(own):
        return own()
    base = {"format": DATA_FORMAT, "metric": evaluator.name, "key": key}
    if isinstance(evaluator, PoseEvaluator) and key in COCO_KEYS:
        gt_fields = ("category", "bbox", "area", "keypoints", "num_keypoints")
        images = [{"sample_id": e["sample_id"], "k": e["k"],
                   "gts": [{f: i[f] for f in gt_fields} for i in e["instances"]],
                   "dets": [{"category": i["category"], "keypoints": i["pred"], "score": i["score"]}
                            for i in e["instances"] if i["pred"] is not None and not i.get("suppressed", False)]}
                  for e in evaluator.entries()]
        # PoseEvaluator: no detection at all leaves AP undefined.
        return {**base, "kind": "coco", "iou_type": "keypoints", "use_categories": evaluator.use_categories,
                "sigmas": [float(s) for s in evaluator.schema.sigmas], "empty": None, "images": images}
    if isinstance(evaluator, DetectionEvaluator) and key in COCO_KEYS:
        images = [{"sample_id": e["sample_id"], "k": e["k"], "gts": e["gts"], "dets": e["dets"]}
                  for e in evaluator.entries()]
        # DetectionEvaluator: ground truth but not one detection scores 0.
        return {**base, "kind": "coco", "iou_type": "bbox", "use_categories": evaluator.use_categories,
                "sigmas": None, "empty": 0.0, "images": images}
    if isinstance(evaluator, ClipScoreEvaluator) and key == "score":
        return {**base, "kind": "grouped_mean", "group_by": evaluator.group_by,
                "images": [{"sample_id": e["sample_id"], "k": e["k"], "group": e["group"],
                            "value": clip_score_value(e["cosine"])} for e in evaluator.entries()]}
    if isinstance(evaluator, FidEvaluator):
        return fid_bootstrap_data(evaluator, key)
    if getattr(evaluator, "sums_images", False):
        return (f"{evaluator.name} sums its images into its state, so a resampled set of prompts cannot be "
                "recomputed from it")
    return None


def resampler_for(evaluator, key: str) -> Resampler | str:
    """The resampler of ``evaluator``'s headline ``key``, or the reason there is none."""
    data = bootstrap_data(evaluator, key)
    if isinstance(data, str):
        return data
    if data is not None:
        return resampler_from_data(data)
    if not hasattr(evaluator, "_entries"):
        return f"{evaluator.name} keeps no per-image entries to resample"
    return EvaluatorResampler(evaluator, key)


# -- intervals -----------------------------------------------------------------------------------------


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, AP_DECIMALS)


def interval(resampler: Resampler, settings: BootstrapSettings, draws: np.ndarray | None = None,
             progress=None) -> dict:
    """The bootstrap interval of the resampler's headline (``draws``: explicit [B, n] prompt
    indices instead of the seeded ones)."""
    n = len(resampler.prompts)
    block = {"key": resampler.key, "confidence": float(settings.confidence), "resamples": int(settings.resamples),
             "seed": int(settings.seed), "num_prompts": n}
    if draws is None:
        if settings.resamples == 0:
            return {**block, "skipped": "evaluation.bootstrap_resamples is 0"}
        if n < 2:
            return {**block, "skipped": f"{n} prompt(s): nothing to resample"}
        draws = draw_indices(n, settings.resamples, settings.seed)
    else:
        draws = np.asarray(draws)
        block["resamples"], block["seed"] = int(draws.shape[0]), None
    values = resampler.values(draws, progress)
    low, high = percentile_interval(values, settings.confidence)
    return {**block, "low": _round(low), "high": _round(high),
            "num_undefined": sum(v is None for v in values), "method": INTERVAL_METHOD, "draws": DRAWS,
            "resampled": resampler.kind}


def paired_interval(a: Resampler, b: Resampler, settings: BootstrapSettings, draws: np.ndarray | None = None,
                    progress=None) -> dict:
    """B − A on the same prompts: the difference of the full-set headlines and its interval from
    the same resampled prompt sets for both."""
    if a.prompts != b.prompts:
        only_a = sorted(set(a.prompts) - set(b.prompts))
        only_b = sorted(set(b.prompts) - set(a.prompts))
        example = f"{only_a[0]!r} only in A" if only_a else (f"{only_b[0]!r} only in B" if only_b else "the same ids")
        raise SpbenchError(f"the two runs scored different prompts for {a.key} ({len(a.prompts)} vs {len(b.prompts)}; "
                           f"{example}): a paired comparison needs the same ones")
    value_a, value_b = a.value(a.identity()), b.value(b.identity())
    n = len(a.prompts)
    block = {"key": a.key, "a": value_a, "b": value_b,
             "difference": _round(value_b - value_a) if value_a is not None and value_b is not None else None,
             "confidence": float(settings.confidence), "resamples": int(settings.resamples),
             "seed": int(settings.seed), "num_prompts": n}
    if draws is None:
        if settings.resamples == 0 or n < 2:
            return {**block, "low": None, "high": None, "num_undefined": 0}
        draws = draw_indices(n, settings.resamples, settings.seed)
    else:
        draws = np.asarray(draws)
        block["resamples"], block["seed"] = int(draws.shape[0]), None
    va, vb = a.values(draws, progress), b.values(draws, progress)
    diffs = [y - x for x, y in zip(va, vb) if x is not None and y is not None]
    low, high = percentile_interval(diffs, settings.confidence)
    return {**block, "low": _round(low), "high": _round(high), "num_undefined": len(va) - len(diffs),
            "method": "paired " + INTERVAL_METHOD, "draws": DRAWS}
