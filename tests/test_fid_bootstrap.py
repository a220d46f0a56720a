"""FID's bootstrap interval over prompts (spbench.metrics.bootstrap.FidResampler): each resample's
FID held against FID computed from scratch (numpy mean, np.cov, the matrix square root) on the
resampled images' feature rows written out with their repeats; a tiny `spbench run` records it
and `spbench compare` gives the paired difference."""

import json
import shutil

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from helpers import spbench_in_process
from spbench.errors import SpbenchError
from spbench.metrics.bootstrap import (BootstrapSettings, FidResampler, draw_indices, fid_resamples, interval,
                                       resampler_for, resampler_from_data)
from spbench.metrics.fid import FidEvaluator
from spbench.metrics.fid_moments import Moments
from spbench.results.intervals import features_path, load_resampler, read_features, write_features


def fid_sqrtm(gen: np.ndarray, ref: np.ndarray) -> float:
    """FID of two sets of feature rows, the textbook way: means, np.cov (n − 1) and
    ``tr(S1) + tr(S2) − 2·tr(sqrtm(S1·S2))`` with scipy's matrix square root."""
    mu1, mu2 = gen.mean(axis=0), ref.mean(axis=0)
    s1, s2 = np.cov(gen, rowvar=False), np.cov(ref, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def repeated_rows(features: np.ndarray, prompt_of_row: list[str], prompts: list[str], draw) -> np.ndarray:
    """The feature rows of the drawn prompts, each drawn prompt's rows written out once per draw."""
    return np.concatenate([features[[i for i, p in enumerate(prompt_of_row) if p == prompts[j]]] for j in draw])


@pytest.fixture()
def hand_made():
    """8 prompts with 1–3 images each, 4 features, 30 reference rows: covariances of full rank."""
    rng = np.random.default_rng(7)
    keys = [(f"p{i}", k) for i in range(8) for k in range(1 + i % 3)]
    features = rng.normal(0.3, 1.0, size=(len(keys), 4)).astype(np.float32)
    reference = rng.normal(0.0, 1.2, size=(30, 4))
    ev = FidEvaluator("hand", 4)
    ev.update(keys[::2], features[::2])  # two batches, in another order than sorted
    ev.update(keys[1::2], features[1::2])
    ref = Moments(4)
    ref.add(reference)
    ev.set_reference(ref, {"hand": True})
    return ev, keys, features, reference


def test_a_resample_is_fid_from_scratch_on_the_repeated_rows(hand_made):
    ev, keys, features, reference = hand_made
    res = resampler_for(ev, "fid")
    assert isinstance(res, FidResampler) and res.prompts == tuple(f"p{i}" for i in range(8))
    prompt_of_row = [s for s, _ in keys]
    draws = [[0, 0, 0, 1, 4, 4, 6, 7], [2, 2, 2, 2, 5, 5, 5, 3], *draw_indices(8, 5, 3)]
    for draw in draws:
        rows = repeated_rows(features.astype(np.float64), prompt_of_row, list(res.prompts), draw)
        assert res.value(draw) == pytest.approx(fid_sqrtm(rows, reference), rel=1e-7)
    # Every prompt once: the headline FID, and the textbook FID of all images.
    headline = ev.compute()["fid"]
    assert res.value(res.identity()) == pytest.approx(headline, rel=1e-12)
    assert headline == pytest.approx(fid_sqrtm(features.astype(np.float64), reference), rel=1e-7)


def test_fid_resamples_are_the_first_of_the_other_metrics_draws_and_survive_the_npz(hand_made, tmp_path):
    ev, *_ = hand_made
    res = resampler_for(ev, "fid")
    assert np.array_equal(draw_indices(8, 7, 0), draw_indices(8, 1000, 0)[:7])
    path = tmp_path / "fid.npz"
    write_features(path, res.data)
    with np.load(path, allow_pickle=False) as arrays:  # no object arrays: loads without pickle
        assert arrays["features"].dtype == np.float32 and arrays["features"].shape == (15, 4)  # 1, 2, 3, 1, 2, 3, 1, 2 images
    again = resampler_from_data(read_features(path))
    draws = draw_indices(8, 7, 0)
    assert again.values(draws) == res.values(draws)
    block = interval(again, BootstrapSettings(7, 0, 0.95))
    _, keys, features, reference = hand_made
    expected = [fid_sqrtm(repeated_rows(features.astype(np.float64), [s for s, _ in keys], list(res.prompts), d),
                          reference) for d in draws]
    assert block["low"] == pytest.approx(np.quantile(expected, 0.025), rel=1e-7)
    assert block["high"] == pytest.approx(np.quantile(expected, 0.975), rel=1e-7)


def test_fid_resamples_setting():
    assert fid_resamples({}) == (100, None)
    assert fid_resamples({"evaluation": {"bootstrap_fid_resamples": 5}}) == (5, None)
    assert fid_resamples({"evaluation": {"bootstrap_fid_resamples": 0}})[1] == "evaluation.bootstrap_fid_resamples is 0"
    assert fid_resamples({"evaluation": {"bootstrap_resamples": 0, "bootstrap_fid_resamples": 5}})[0] == 0
    with pytest.raises(SpbenchError, match="bootstrap_fid_resamples"):
        fid_resamples({"evaluation": {"bootstrap_fid_resamples": -2}})


# -- a tiny run records the interval; compare pairs two runs ---------------------------------------------

RUN = "sample-ap10k-controlnet-tiny"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run A: tiny ControlNet, 4 prompts × 3 images, FID with 6 resamples; run B: A's images with
    k = 0 colour-inverted, scored again."""
    root = tmp_path_factory.mktemp("fidbs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPBENCH_CACHE", str(root / "cache"))
        done = spbench_in_process("run", "--method", "controlnet", "--dataset", "sample", "--profile", "tiny",
                                  "--steps", "1", "--limit", "4", "--out", root / "a", "--metrics", "fid",
                                  "--set", "evaluation.bootstrap_fid_resamples=6")
        assert done.returncode == 0, done.stderr
        shutil.copytree(root / "a" / RUN, root / "b" / RUN)
        for path in (root / "b" / RUN / "images").glob("*_k0.png"):
            Image.fromarray(255 - np.asarray(Image.open(path).convert("RGB"))).save(path)
        done = spbench_in_process("evaluate", root / "b" / RUN, "--metrics", "fid")
        assert done.returncode == 0, done.stderr
    return root / "a" / RUN, root / "b" / RUN


def _stored(folder):
    record = json.loads((folder / "result.json").read_text())
    data = read_features(features_path(folder, "fid"))
    ref = data["reference"]
    mu = ref["sum"] / ref["n"]
    # The reference's mean and covariance from its stored sums: (n − 1)·S = Σ ffᵀ − n·μμᵀ.
    cov = (ref["outer"] - ref["n"] * np.outer(mu, mu)) / (ref["n"] - 1)
    return record, data, mu, cov


def _fid_from(rows, mu2, s2):
    """FID of feature rows against a mean and covariance, for rank-deficient covariances (fewer
    images than the tiny Inception's 16 features, where scipy's sqrtm is unreliable):
    tr(sqrt(S1·S2)) = tr(sqrt(A·S2·A)) with A = S1^½, symmetric PSD (numpy eigh, rounding below 0
    clipped)."""
    mu1, s1 = rows.mean(axis=0), np.cov(rows, rowvar=False)
    vals, vecs = np.linalg.eigh(s1)
    half = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    root = np.sqrt(np.clip(np.linalg.eigvalsh(half @ s2 @ half), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * root)


def _scratch_values(data, mu, cov, draws):
    prompts = sorted(set(data["sample_ids"]))
    features = data["features"].astype(np.float64)
    return [_fid_from(repeated_rows(features, data["sample_ids"], prompts, d), mu, cov) for d in draws]


def test_a_tiny_run_records_the_fid_interval_from_its_stored_features(two_runs):
    from spbench.metrics.fid_inception import load_extractor

    folder, _ = two_runs
    record, data, mu, cov = _stored(folder)
    fid = record["metrics"]["fid"]
    block = fid["bootstrap"]
    assert block["key"] == "fid" and block["resamples"] == 6 and block["num_prompts"] == 4
    assert block["data"]["file"] == "bootstrap/fid.npz" and "biased upward" in block["note"]
    # The stored features are the tiny Inception's features of the images named by (sample_id, k).
    extractor = load_extractor("tiny://inception")
    images = [Image.open(folder / "images" / f"{s}_k{k}.png").convert("RGB") for s, k in zip(data["sample_ids"], data["k"])]
    assert np.array_equal(data["features"], extractor(images).astype(np.float32))
    # They reproduce the headline, and the recorded interval is the percentile of FIDs from scratch.
    res = load_resampler(folder, "fid", record)
    assert res.value(res.identity()) == pytest.approx(fid["fid"], rel=1e-9)
    assert _fid_from(data["features"].astype(np.float64), mu, cov) == pytest.approx(fid["fid"], rel=1e-6)
    values = _scratch_values(data, mu, cov, draw_indices(4, 6, 0))
    assert block["low"] == pytest.approx(np.quantile(values, 0.025), rel=1e-6)
    assert block["high"] == pytest.approx(np.quantile(values, 0.975), rel=1e-6)


def test_compare_gives_the_paired_fid_difference_on_the_same_draws(two_runs, tmp_path):
    a, b = two_runs
    done = spbench_in_process("compare", a, b, "--metrics", "fid", "--json", tmp_path / "cmp.json")
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "cmp.json").read_text())["metrics"]["fid"]
    (rec_a, data_a, mu_a, cov_a), (rec_b, data_b, mu_b, cov_b) = _stored(a), _stored(b)
    assert row["a"] == pytest.approx(rec_a["metrics"]["fid"]["fid"], rel=1e-6)  # the resamples' eigvalsh form vs the headline's eigvals: rounding
    assert row["b"] == pytest.approx(rec_b["metrics"]["fid"]["fid"], rel=1e-6)  # the resamples' eigvalsh form vs the headline's eigvals: rounding
    assert row["b"] != row["a"] and row["resamples"] == 6
    draws = draw_indices(4, 6, 0)
    diffs = np.subtract(_scratch_values(data_b, mu_b, cov_b, draws), _scratch_values(data_a, mu_a, cov_a, draws))
    assert row["low"] == pytest.approx(np.quantile(diffs, 0.025), rel=1e-6)
    assert row["high"] == pytest.approx(np.quantile(diffs, 0.975), rel=1e-6)
    assert "(6 resamples)" in done.stdout and "biased upward" in done.stderr


def test_compare_says_why_a_run_scored_before_fid_kept_features_has_no_interval(two_runs, tmp_path):
    a, b = two_runs
    old = tmp_path / RUN
    shutil.copytree(a, old)
    features_path(old, "fid").unlink()
    record = json.loads((old / "result.json").read_text())
    record["metrics"]["fid"]["bootstrap"] = {"key": "fid", "skipped": "FID has no per-image value: (as recorded then)"}
    (old / "result.json").write_text(json.dumps(record))
    done = spbench_in_process("compare", old, b, "--metrics", "fid")
    assert done.returncode == 0, done.stderr
    assert "scored before spbench kept each image's Inception features" in done.stdout.replace("\n", " ")


def test_bad_fid_resamples_stop_before_any_work(tmp_path):
    done = spbench_in_process("run", "--method", "real", "--dataset", "sample", "--profile", "tiny", "--out", tmp_path,
                              "--set", "evaluation.bootstrap_fid_resamples=-1")
    assert done.returncode == 2 and "bootstrap_fid_resamples" in done.stderr and not any(tmp_path.iterdir())


def test_the_resamples_fast_distance_is_the_headline_formula():
    """Resamples take Σ_ref^½ once and eigvalsh of R·Σ·R; the headline's frechet_distance takes the
    general eigenvalues of Σ·Σ_ref: the same number, at a 64-feature size with weighted rows."""
    from spbench.metrics.fid_moments import frechet_distance

    rng = np.random.default_rng(3)
    keys = [(f"p{i:02d}", k) for i in range(40) for k in range(3)]
    features = rng.normal(0.2, 1.0, size=(len(keys), 64)).astype(np.float32)
    ev = FidEvaluator("hand", 64)
    ev.update(keys, features)
    ref = Moments(64)
    ref.add(rng.normal(0.0, 1.1, size=(200, 64)))
    ev.set_reference(ref, {"hand": True})
    res = resampler_for(ev, "fid")
    for draw in draw_indices(40, 4, 11):
        assert res.value(draw) == pytest.approx(frechet_distance(res.moments(draw), ref), rel=1e-9)
