"""Scoring reads images on background threads (ScoringContext.image_batches): the batches and
pixels must be exactly what reading them one by one gives, and a bad file must fail at its batch."""

import numpy as np
import pytest
from PIL import Image

from spbench.metrics.evaluate import ScoringContext
from spbench.run.folder import RunFolder


def _context(tmp_path, n: int) -> tuple[ScoringContext, list[dict]]:
    run = RunFolder(tmp_path / "run")
    (run.path / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        file = f"images/s{i:02d}_k0.png"
        pixels = np.random.default_rng(i).integers(0, 256, (24, 16 + i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(run.path / file)
        rows.append({"sample_id": f"s{i:02d}", "k": 0, "file": file})
    return ScoringContext(run, {}, {}), rows


@pytest.mark.parametrize("size, ahead", [(3, 2), (4, 0), (1, 5), (50, 2)])
def test_batches_are_the_rows_in_order_with_their_own_pixels(tmp_path, size, ahead):
    ctx, rows = _context(tmp_path, 10)
    got = list(ctx.image_batches(rows, size, ahead=ahead))
    assert [b for b, _ in got] == [rows[i : i + size] for i in range(0, 10, size)]
    for batch, images in got:
        assert len(images) == len(batch)
        for row, image in zip(batch, images):
            expected = np.asarray(Image.open(ctx.run.path / row["file"]).convert("RGB"))
            assert image.mode == "RGB" and np.array_equal(np.asarray(image), expected)


def test_no_rows_gives_no_batches(tmp_path):
    ctx, _ = _context(tmp_path, 0)
    assert list(ctx.image_batches([], 4)) == []


def test_an_unreadable_image_fails_at_its_own_batch(tmp_path):
    ctx, rows = _context(tmp_path, 9)
    (ctx.run.path / rows[7]["file"]).write_bytes(b"not a png")
    seen = []
    with pytest.raises(OSError, match="cannot identify image file"):
        for batch, _ in ctx.image_batches(rows, 3):
            seen.append(batch)
    assert seen == [rows[0:3], rows[3:6]]  # the batches before it were scored


def test_stopping_early_returns_without_reading_the_rest(tmp_path):
    ctx, rows = _context(tmp_path, 40)
    read, load = [], ctx.load_image
    ctx.load_image = lambda row: read.append(row["file"]) or load(row)
    batches = ctx.image_batches(rows, 2, ahead=1)
    first, _ = next(batches)
    batches.close()  # what a consumer's exception or break does
    assert first == rows[:2]
    assert len(read) <= 4  # this batch and the one in flight, not all 40
