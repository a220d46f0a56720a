"""FID and KID per scene, averaged over scenes: Stable-Pose's ``eval_quality.py`` (GRPose ships
the same file), the quality half of ``--protocol stable-pose``.

For each scene list of its ``val_jsons/`` (Human-Art's scenes: acrobatics, cartoon, ..., 250
validation images each) the script builds torchmetrics' ``FrechetInceptionDistance(feature=64)``
and ``KernelInceptionDistance(subset_size=200)`` on that scene's real images and adds the
generated images of that scene; a scene whose KID is None (``calculate_kid`` returns None while
there are no more generated images than the subset size) is left out, and the published FID and
KID are the means over scenes. Here a sample's scene is its ``scene`` (Human-Art: the image's
``category``); every scene of the split counts, and the record lists each scene's value and
counts. A scene whose FID has no value (fewer than two real or two generated images: the
covariance needs two) is left out of the mean as well, and said so.

Each scene's FID is :func:`spbench.metrics.fid_moments.frechet_distance` of its images' moments
(torchmetrics' formula, covariances with n - 1), its KID :func:`spbench.metrics.humansd_kid.kid`
(subsets seeded ``kid_seed``, the same seed for every scene).
"""

from __future__ import annotations

import statistics

import numpy as np

from spbench.errors import SpbenchError
from spbench.metrics.base import spread_over_k
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_moments import Moments, frechet_distance
from spbench.metrics.humansd_kid import KidEvaluator, kid, unpack

NOT_RESAMPLED = ("a mean over scenes of per-scene {what}: a bootstrap over prompts would redraw each scene's few "
                 "images (250 in Stable-Pose's lists), and is not computed")


def scene_mean(per_scene: dict[str, dict], key: str) -> float | None:
    """The mean of ``key`` over the scenes that have a value (None when none has)."""
    values = [v[key] for v in per_scene.values() if v.get(key) is not None]
    return statistics.fmean(values) if values else None


class _SceneReference:
    """The real images' features [N, D] with the scene of each row."""

    def __init__(self, features: np.ndarray, scenes: list[str], num_features: int):
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != num_features or len(scenes) != len(features):
            raise SpbenchError(f"per-scene reference: features of shape {features.shape} for {len(scenes)} scene "
                               f"labels, expected ({len(scenes)}, {num_features})")
        self.by_scene: dict[str, np.ndarray] = {}
        for scene in dict.fromkeys(scenes):
            self.by_scene[scene] = features[[i for i, s in enumerate(scenes) if s == scene]]

    def counts(self) -> dict[str, int]:
        return {scene: len(f) for scene, f in self.by_scene.items()}


class SceneFidEvaluator(FidEvaluator):
    """FID per scene (generated images of the scene against its real images), then their mean."""

    name = "stablepose-fid"

    def __init__(self, extractor: str, num_features: int, scenes: dict[str, str], name: str | None = None):
        if name is not None:
            self.name = name
        self.scenes = {str(k): str(v) for k, v in scenes.items()}  # sample_id -> scene
        super().__init__(extractor, num_features)
        self._scene_reference: _SceneReference | None = None

    def set_scene_reference(self, features: np.ndarray, scenes: list[str], settings: dict) -> None:
        """The real images' features [N, D] and each one's scene (on the main process)."""
        self._scene_reference = _SceneReference(features, scenes, self.num_features)
        moments = Moments(self.num_features)
        moments.add(np.asarray(features, dtype=np.float64))
        self.set_reference(moments, settings)

    def _per_scene(self, keys: list[tuple[str, int]], rows: np.ndarray) -> dict[str, dict]:
        ref = self._scene_reference
        generated: dict[str, list[int]] = {}
        for i, (sample_id, _) in enumerate(keys):
            generated.setdefault(self.scenes.get(sample_id, ""), []).append(i)
        out = {}
        for scene in sorted(set(ref.by_scene) | set(generated)):
            real, idx = ref.by_scene.get(scene, np.zeros((0, self.num_features))), generated.get(scene, [])
            g, r = Moments(self.num_features), Moments(self.num_features)
            if idx:
                g.add(rows[idx].astype(np.float64))
            if len(real):
                r.add(real)
            out[scene] = {"fid": frechet_distance(g, r), "num_generated": g.n, "num_reference": r.n}
            if out[scene]["fid"] is None:
                out[scene]["left_out"] = "fewer than two real or two generated images"
        return out

    def compute(self) -> dict:
        """``{"fid": mean over scenes, "per_scene", "num_scenes", "num_scenes_scored", "per_k", ...}``."""
        if self._scene_reference is None:
            raise SpbenchError(f"{self.name} has no per-scene reference features (they are computed on the main process)")
        keys, rows = self.feature_rows()
        per_scene = self._per_scene(keys, rows)
        result = {"fid": scene_mean(per_scene, "fid"), "per_scene": per_scene, "num_scenes": len(per_scene),
                  "num_scenes_scored": sum(v["fid"] is not None for v in per_scene.values())}
        per_k = {}
        for k in sorted({k for _, k in keys}):
            idx = [i for i, (_, kk) in enumerate(keys) if kk == k]
            scenes_k = self._per_scene([keys[i] for i in idx], rows[idx])
            per_k[str(k)] = {"fid": scene_mean(scenes_k, "fid"), "num_generated": len(idx),
                             "num_scenes_scored": sum(v["fid"] is not None for v in scenes_k.values())}
        result["per_k"] = per_k
        result.update(spread_over_k(per_k, "fid"))
        result.update(num_generated=len(keys), num_reference=sum(self._scene_reference.counts().values()),
                      extractor=self.extractor, num_features=self.num_features,
                      reference_settings=self._reference_settings)
        return result

    def bootstrap_data(self) -> str:
        return NOT_RESAMPLED.format(what="FID")


class SceneKidEvaluator(KidEvaluator):
    """KID per scene, then the mean over the scenes that have one."""

    name = "stablepose-kid"

    def __init__(self, extractor: str, num_features: int, scenes: dict[str, str], *, subsets: int = 100,
                 subset_size: int = 200, seed: int = 0, scale: int = 100, name: str | None = None):
        if name is not None:
            self.name = name
        self.scenes = {str(k): str(v) for k, v in scenes.items()}
        super().__init__(extractor, num_features, subsets=subsets, subset_size=subset_size, seed=seed, scale=scale)
        self._scene_reference: _SceneReference | None = None

    def set_scene_reference(self, features: np.ndarray, scenes: list[str], settings: dict) -> None:
        self._scene_reference = _SceneReference(features, scenes, self.num_features)
        self.set_reference(features, settings)

    def _scene_kid(self, real: np.ndarray, fake: np.ndarray) -> dict:
        """One scene's KID, or why it has none: Stable-Pose's ``calculate_kid`` returns None while
        there are no more generated images than the subset size, and torchmetrics refuses fewer
        real images than that."""
        out = {"num_generated": len(fake), "num_reference": len(real)}
        if len(fake) <= self.subset_size:
            return {**out, "kid": None, "left_out": f"{len(fake)} generated images, not more than the subset size "
                                                    f"{self.subset_size} (Stable-Pose's calculate_kid returns None)"}
        if len(real) < self.subset_size:
            return {**out, "kid": None, "left_out": f"{len(real)} real images, fewer than the subset size "
                                                    f"{self.subset_size} (torchmetrics refuses)"}
        mean, std, _ = kid(real, fake, self.subsets, self.subset_size, self.seed)
        return {**out, "kid": mean, "kid_std": std}

    def _kid(self, entries: list[dict]) -> dict:
        generated: dict[str, list[np.ndarray]] = {}
        for e in entries:
            generated.setdefault(self.scenes.get(e["sample_id"], ""), []).append(unpack(e["features"], self.num_features))
        ref = self._scene_reference.by_scene
        per_scene = {}
        for scene in sorted(set(ref) | set(generated)):
            fake = np.concatenate(generated[scene]) if scene in generated else np.zeros((0, self.num_features))
            per_scene[scene] = self._scene_kid(ref.get(scene, np.zeros((0, self.num_features))), fake)
        mean = scene_mean(per_scene, "kid")
        return {"kid": mean, self.scaled_key: None if mean is None else self.scale * mean, "per_scene": per_scene,
                "num_scenes_scored": sum(v["kid"] is not None for v in per_scene.values()),
                "subset_size": self.subset_size, "num_generated": len(entries)}

    def compute(self) -> dict:
        if self._scene_reference is None:
            raise SpbenchError(f"{self.name} has no per-scene reference features (they are computed on the main process)")
        result = super().compute()
        result["num_scenes"] = len(result["per_scene"])
        return result

    def bootstrap_data(self) -> str:
        return NOT_RESAMPLED.format(what="KID")
