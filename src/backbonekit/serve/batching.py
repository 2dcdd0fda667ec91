"""Dynamic batching: images submitted from many requests at once run through the model as one batch.

One worker thread owns the model. It takes the first waiting image, then waits at most ``max_wait_ms`` for more,
up to ``max_batch``, runs them together and hands each caller its own row (results come back in the order the
images went in, so row i is image i's). It waits only while more images are on their way (``arriving``: requests
being read and decoded now): a lone caller's image runs at once instead of waiting the whole ``max_wait_ms`` for
company that is not coming. The queue is bounded: when ``max_queue`` images already wait, a new one is refused at
once (503 with ``Retry-After``) rather than waiting past any timeout. On shutdown the images already queued still
run before the thread ends.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

from backbonekit.serve.errors import RequestError

_STOP = object()
POLL_S = 0.0005  # how often a waiting batch looks whether images are still on their way


class Batcher:
    def __init__(self, run: Callable[[list], list], max_batch: int = 8, max_wait_ms: float = 5.0,
                 max_queue: int = 64, on_batch: Callable[[int], None] | None = None,
                 arriving: Callable[[], int] = lambda: 1):
        self.run, self.max_batch, self.max_wait = run, max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.arriving = arriving  # default: always wait the full max_wait_ms for company
        self.on_batch = on_batch or (lambda size: None)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_queue))
        self._thread = threading.Thread(target=self._loop, name="backbonekit-batcher", daemon=True)

    def start(self) -> "Batcher":
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, item) -> Future:
        future: Future = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise RequestError(503, f"busy: {self._queue.maxsize} images already wait; retry shortly",
                               {"Retry-After": "1"}) from None
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Runs what is queued, then ends the worker."""
        if self._thread.is_alive():
            self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)

    def _next_batch(self) -> tuple[list, bool]:
        """(up to max_batch queued (item, future) pairs, whether the stop mark came)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch, deadline = [first], time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or not self.arriving():
                    break
                try:
                    nxt = self._queue.get(timeout=min(left, POLL_S))
                except queue.Empty:
                    continue
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._next_batch()
            # A caller that gave up (its timeout) cancelled its future: its image is not run.
            live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
            if not live:
                continue
            self.on_batch(len(live))
            try:
                rows = self.run([item for item, _ in live])
            except Exception as e:  # noqa: BLE001 - each caller gets the error; the worker keeps serving
                for _, future in live:
                    future.set_exception(e)
                continue
            for (_, future), row in zip(live, rows):
                future.set_result(row)
