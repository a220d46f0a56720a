"""The engine's background image writer: every image lands, errors surface, an interrupt keeps
finished images, and the queue stays bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from spbench.generation import image_writer
from spbench.generation.image_writer import ImageWriter


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))


def test_every_submitted_image_is_written_with_its_pixels(tmp_path):
    images = {tmp_path / f"{i}.png": _image(i) for i in range(7)}
    with ImageWriter(max_pending=2) as writer:
        for path, image in images.items():
            writer.submit(path, image)
    for path, image in images.items():
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_write_is_raised(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    writer = ImageWriter(max_pending=4)
    writer.submit(tmp_path / "file" / "x.png", _image(0))
    with pytest.raises(OSError):
        writer.close()


def test_an_interrupt_keeps_the_images_already_submitted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ImageWriter(max_pending=8) as writer:
            writer.submit(tmp_path / "a.png", _image(1))
            writer.submit(tmp_path / "b.png", _image(2))
            raise KeyboardInterrupt
    assert (tmp_path / "a.png").is_file() and (tmp_path / "b.png").is_file()


def test_submit_waits_when_too_many_images_are_pending(tmp_path, monkeypatch):
    started, release = [], threading.Event()
    real_save = image_writer.atomic_save_image

    def slow_save(path, image):
        started.append(path)
        release.wait(timeout=10)
        real_save(path, image)

    monkeypatch.setattr(image_writer, "atomic_save_image", slow_save)
    writer = ImageWriter(max_pending=2)
    writer.submit(tmp_path / "0.png", _image(0))
    writer.submit(tmp_path / "1.png", _image(1))
    blocked = threading.Thread(target=writer.submit, args=(tmp_path / "2.png", _image(2)))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # a third pending image waits for the first write
    release.set()
    blocked.join(timeout=10)
    assert not blocked.is_alive()
    writer.close()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["0.png", "1.png", "2.png"]
