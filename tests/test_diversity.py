"""Diversity (spbench.metrics.diversity*): the Vendi score against hand-computed cases, LPIPS
against torchmetrics' own metric with the same backbone weights, identical images scoring no
diversity, state merging, weight loading without unpickling code, tables and an end-to-end run
on the shipped sample (tiny models: their numbers mean nothing)."""

import json
import math
import types

import numpy as np
import pytest
import torch
from helpers import spbench_in_process
from PIL import Image

from spbench.errors import SpbenchError
from spbench.metrics import diversity_lpips
from spbench.metrics.diversity import DiversityEvaluator
from spbench.metrics.diversity_lpips import load_lpips
from spbench.metrics.diversity_scoring import check_diversity_models, score_diversity
from spbench.metrics.diversity_vendi import vendi_score
from spbench.metrics.evaluate import ScoringContext


# -- Vendi score ---------------------------------------------------------------------------------


def test_vendi_identical_embeddings_is_one():
    v = np.array([0.3, -1.2, 2.0, 0.5])
    assert vendi_score(np.stack([v, v, v])) == pytest.approx(1.0, abs=1e-12)
    assert vendi_score(np.stack([v, 2 * v, 0.1 * v])) == pytest.approx(1.0, abs=1e-12)  # cosine: scale-free


@pytest.mark.parametrize("n", [2, 3, 5])
def test_vendi_orthonormal_vectors_is_n(n):
    assert vendi_score(np.eye(n)) == pytest.approx(n, abs=1e-12)
    q, _ = np.linalg.qr(np.random.default_rng(n).normal(size=(8, n)))  # n orthonormal vectors in R^8
    assert vendi_score(q.T) == pytest.approx(n, abs=1e-9)


def test_vendi_two_vectors_by_hand():
    # cos = 1/2: K = [[1, .5], [.5, 1]]; eigenvalues of K/2 are 3/4 and 1/4;
    # H = -(3/4 ln 3/4 + 1/4 ln 1/4) = 0.5623351446..., exp(H) = 1.7547653...
    e = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert vendi_score(e) == pytest.approx(1.7547653, abs=1e-7)
    # orthogonal pair and a pair at cos = 0 in higher dimension: 2
    assert vendi_score(np.array([[0.0, 3.0, 0.0], [0.0, 0.0, -2.0]])) == pytest.approx(2.0, abs=1e-12)


def test_vendi_rejects_zero_embedding():
    with pytest.raises(SpbenchError):
        vendi_score(np.array([[0.0, 0.0], [1.0, 0.0]]))


# -- LPIPS ----------------------------------------------------------------------------------------


def _random_torchvision(net: str, seed: int):
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1}[net](weights=None)


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_lpips_equals_torchmetrics_with_the_same_backbone(net, tmp_path, monkeypatch):
    """torchmetrics' own LearnedPerceptualImagePatchSimilarity (its linear layers, its forward), fed
    the same random torchvision backbone instead of the ImageNet download; ours loads that backbone
    from a safetensors file in torchvision's layout."""
    from safetensors.torch import save_file
    from torchmetrics.functional.image import lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    model = _random_torchvision(net, seed=3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k.startswith("features.")},
              tmp_path / "backbone.safetensors")  # LPIPS reads only the convolutional features
    tv_name = {"alex": "alexnet", "squeeze": "squeezenet1_1"}[net]
    monkeypatch.setattr(tm_lpips, "_get_tv_model_features",
                        lambda name, pretrained=False: model.features if name == tv_name else pytest.fail(name))
    reference = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True, reduction="none")

    ours = load_lpips(str(tmp_path / "backbone.safetensors"))
    assert ours.net == net
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    expected = reference(a, b)
    got = ours.distances(a, b)
    assert got == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-7)
    assert min(got) > 0
    assert ours.distances(a, a) == [0.0, 0.0]  # identical images: distance 0


def test_lpips_reads_weights_without_unpickling_code(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def watching_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    model = _random_torchvision("alex", seed=1)
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("features.")},
               tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setattr(torch, "load", watching_load)
    loaded = load_lpips(str(tmp_path))  # a folder holding torchvision's file
    assert loaded.net == "alex" and loaded.backbone.endswith("alexnet-owt-7be5be79.pth")
    assert calls and all(flag is True for flag in calls)  # backbone and the shipped linear layers

    class Planted:  # a pickle that is not plain tensors is refused, not run
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"features.0.weight": Planted()}, tmp_path / "bad.pth")
    with pytest.raises(SpbenchError, match="other than tensors"):
        load_lpips(str(tmp_path / "bad.pth"))


def test_lpips_spec_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(SpbenchError, match="alexnet-owt-7be5be79.pth.*does not download"):
        load_lpips("alex")
    with pytest.raises(SpbenchError, match="exactly one"):
        load_lpips(str(tmp_path))  # an empty folder
    with pytest.raises(SpbenchError, match="neither"):
        load_lpips("no-such-file.pth")
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(SpbenchError, match="features.0.weight"):
        load_lpips(str(tmp_path / "other.safetensors"))
    with pytest.raises(SpbenchError, match="unknown tiny"):
        load_lpips("tiny://nope")
    with pytest.raises(SpbenchError, match="models.dino"):
        check_diversity_models({"models": {"lpips": "tiny://lpips", "dino": None}})


# -- the evaluator and its scoring ----------------------------------------------------------------


def _scoring_context(tmp_path, prompts: dict[str, list]) -> tuple[ScoringContext, list[dict]]:
    """A run folder stand-in holding the given images (PIL) per sample id."""
    rows = []
    for sid, images in prompts.items():
        for k, im in enumerate(images):
            im.save(tmp_path / f"{sid}_k{k}.png")
            rows.append({"sample_id": sid, "k": k, "file": f"{sid}_k{k}.png"})
    config = {"models": {"lpips": "tiny://lpips", "dino": "tiny://dinov2"}, "evaluation": {}}
    ctx = ScoringContext(types.SimpleNamespace(path=tmp_path), {"config": config}, {})
    return ctx, rows


def _noise(seed: int, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_identical_images_score_no_diversity(tmp_path):
    same = _noise(0)
    ctx, rows = _scoring_context(tmp_path, {"a-same": [same, same.copy(), same.copy()],
                                            "b-diff": [_noise(1), _noise(2), _noise(3)]})
    result = score_diversity(ctx, rows).compute()
    assert result["per_prompt"]["a-same"]["lpips"] == 0.0
    assert result["per_prompt"]["a-same"]["vendi"] == pytest.approx(1.0, abs=1e-9)
    diff = result["per_prompt"]["b-diff"]
    assert diff["lpips"] > 0 and 1.0 < diff["vendi"] <= 3.0
    assert result["lpips"] == pytest.approx(diff["lpips"] / 2)  # mean over the two prompts
    assert result["num_prompts"] == 2 and result["images_per_prompt"] == [3]


def _filled(parts) -> DiversityEvaluator:
    ev = DiversityEvaluator("l", "e")
    for sid, k, emb, to in parts:
        ev.update(sid, k, emb, to)
    return ev


def test_states_merge_across_ranks_as_one_process():
    g = np.random.default_rng(0)
    parts = [("p1", 0, g.normal(size=4), {}), ("p1", 1, g.normal(size=4), {0: 0.3}),
             ("p1", 2, g.normal(size=4), {0: 0.5, 1: 0.1}),
             ("p2", 0, g.normal(size=4), {}), ("p2", 1, g.normal(size=4), {0: 0.2})]
    whole = _filled(parts).compute()
    rank0, rank1 = _filled(parts[::2]), _filled(parts[1::2])
    merged = DiversityEvaluator("l", "e").merge([json.loads(json.dumps(rank0.state())), rank1.state()]).compute()
    assert merged == whole
    assert whole["per_prompt"]["p1"]["lpips"] == pytest.approx((0.3 + 0.5 + 0.1) / 3)
    assert whole["lpips"] == pytest.approx(((0.3 + 0.5 + 0.1) / 3 + 0.2) / 2)
    assert whole["lpips_std"] == pytest.approx(float(np.std([0.3, 0.2], ddof=1)))
    with pytest.raises(SpbenchError):  # states of another LPIPS network do not mix
        DiversityEvaluator("other", "e").merge([rank0.state()])


def test_missing_pair_and_single_images():
    with pytest.raises(SpbenchError, match="no LPIPS distance"):
        _filled([("p", 0, [1.0, 0.0], {}), ("p", 1, [0.0, 1.0], {})]).compute()
    single = _filled([("p", 0, [1.0, 0.0], {}), ("q", 0, [0.0, 1.0], {})]).compute()
    assert single["lpips"] is None and single["vendi"] is None and "single image" in single["note"]
    assert single["num_prompts_single_image"] == 2


# -- tables and a run on the shipped sample -------------------------------------------------------


def test_tables_keep_the_paper_columns_and_add_diversity_only_when_recorded():
    from spbench.tables.definitions import TABLES
    from spbench.tables.render import build_table

    def record(metrics):
        return {"dataset": {"name": "ap10k", "split": "val-split1"}, "method": {"name": "controlnet"},
                "metrics": metrics, "evaluation": {}, "tiny": False, "departures": [],
                "provenance": {"date": "2025-01-01T00:00:00+00:00"}}

    plain = build_table("1", [record({"pose": {"AP": 40.0}})])
    paper_headers = [c.header for c in TABLES["1"].columns]
    assert list(dict.fromkeys(plain.columns.get_level_values(0))) == paper_headers
    with_div = build_table("1", [record({"pose": {"AP": 40.0}, "diversity": {"lpips": 0.4, "vendi": 2.1}})])
    headers = list(dict.fromkeys(with_div.columns.get_level_values(0)))
    assert headers[:len(paper_headers)] == paper_headers and len(headers) == len(paper_headers) + 2
    row = ("AP-10K", "ControlNet")
    assert with_div.loc[row, (headers[-2], "ours")] == 0.4 and with_div.loc[row, (headers[-1], "ours")] == 2.1
    assert math.isnan(with_div.loc[row, (headers[-2], "paper")])  # the paper has no diversity numbers
    assert with_div.loc[row, (paper_headers[0], "paper")] == plain.loc[row, (paper_headers[0], "paper")]


def test_diversity_run_on_the_sample(tmp_path):
    result = spbench_in_process("run", "--method", "controlnet", "--dataset", "sample-ap10k", "--profile", "tiny",
                                "--metrics", "pose,diversity", "--steps", "1", "--limit", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LPIPS diversity" in result.stdout and "Vendi" in result.stdout
    run = tmp_path / "sample-ap10k-controlnet-tiny"
    record = json.loads((run / "result.json").read_text())
    div = record["metrics"]["diversity"]
    assert div["num_prompts"] == 2 and div["images_per_prompt"] == [3] and div["num_images"] == 6
    assert div["lpips"] > 0 and 1.0 <= div["vendi"] <= 3.0
    assert sorted(div["per_prompt"]) == sorted({json.loads(line)["sample_id"]
                                                for line in (run / "manifest.jsonl").read_text().splitlines()})
    assert record["tiny"] and {"scoring.diversity", "scoring.diversity.lpips"} <= set(record["tiny_models"])
    assert record["evaluation"]["diversity"]["lpips"]["net"] == "alex"
    rows = [json.loads(line) for line in (run / "per_image.jsonl").read_text().splitlines()]
    div_rows = [r for r in rows if r["metric"] == "diversity"]
    assert len(div_rows) == 6 and all(len(r["lpips_to"]) == 2 for r in div_rows)
    assert "pose" in record["metrics"]  # scored beside pose, not instead of it

    report = spbench_in_process("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    assert "LPIPS diversity" in (tmp_path / "report" / "index.html").read_text()


def test_bad_lpips_setting_stops_before_generation(tmp_path):
    result = spbench_in_process("run", "--method", "controlnet", "--dataset", "sample-ap10k", "--profile", "tiny",
                                "--metrics", "diversity", "--out", tmp_path, "--set", "models.lpips=/no/such/alexnet.pth")
    assert result.returncode == 2 and "models.lpips" in result.stderr and "Traceback" not in result.stderr
    result = spbench_in_process("run", "--method", "controlnet", "--dataset", "sample-ap10k", "--profile", "tiny",
                                "--metrics", "diversity", "--out", tmp_path, "--set", "models.dino=nobody/no-such-dinov2")
    assert result.returncode == 2 and "models.dino" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.png"))
