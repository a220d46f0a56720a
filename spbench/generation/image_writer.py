"""Background image writing: PNG encoding and the atomic write of one batch overlap the
generation of the next, so the accelerator does not wait for them.

Measured by ``benchmarks/profile_engine.py`` (host-side stages): at 512x512 a PNG encode costs
about 30 ms and the atomic write with fsync 1-2 ms per image, work a GPU run would otherwise wait
for between batches. One thread is enough (zlib releases the GIL); the queue is bounded so memory
stays flat, and a failed write is raised in the engine when it is next waited for (a full
queue) or at the end.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from spbench.files import atomic_save_image


class ImageWriter:
    def __init__(self, max_pending: int):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spbench-image-writer")
        self._pending: deque[Future] = deque()
        self._max_pending = max(1, max_pending)

    def submit(self, path, image) -> None:
        self._pending.append(self._pool.submit(atomic_save_image, path, image))
        while len(self._pending) > self._max_pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every submitted image (also after an interrupt: those images are finished
        work), then stop the thread; the first write error is raised."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ImageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()  # keep the images already made (an interrupted run resumes after them)
        except Exception:
            pass  # the exception already under way is the one to report
