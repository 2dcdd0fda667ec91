"""Dynamic batching: requests that arrive together run as one batch, each caller gets its own row back, and a full
queue answers 503 with Retry-After at once."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from backbonekit.serve.batching import Batcher
from backbonekit.serve.errors import RequestError
from serve.fakes import EchoModel, echo_app, png_bytes


def test_items_submitted_together_run_as_one_batch_and_come_back_in_order():
    batches = []
    batcher = Batcher(lambda items: batches.append(list(items)) or [i * 10 for i in items], max_batch=4,
                      max_wait_ms=300).start()
    futures = [batcher.submit(i) for i in range(6)]
    assert [f.result(5) for f in futures] == [0, 10, 20, 30, 40, 50]
    batcher.stop()
    assert batches == [[0, 1, 2, 3], [4, 5]]  # max_batch caps the first; the rest waited for the second


def test_a_failing_batch_fails_its_callers_and_the_worker_goes_on():
    def run(items):
        if -1 in items:
            raise ValueError("bad batch")
        return items

    batcher = Batcher(run, max_batch=2, max_wait_ms=0).start()
    with pytest.raises(ValueError):
        batcher.submit(-1).result(5)
    assert batcher.submit(3).result(5) == 3
    batcher.stop()


def test_stop_runs_what_is_queued_first():
    release = threading.Event()
    batcher = Batcher(lambda items: release.wait(5) and items, max_batch=1, max_wait_ms=0).start()
    futures = [batcher.submit(i) for i in range(3)]
    release.set()
    batcher.stop()
    assert [f.result(0) for f in futures] == [0, 1, 2]


def test_a_full_queue_is_503_with_retry_after():
    release = threading.Event()
    model = EchoModel()
    model.run = lambda items: release.wait(5) and [{"top": []} for _ in items]
    with TestClient(echo_app(model, max_batch=1, max_queue=2, max_wait_ms=0)) as client:
        batcher = client.app.app.state.batcher
        first = batcher.submit(0)  # taken by the worker, which then blocks in run
        while batcher.waiting():
            pass
        batcher.submit(1), batcher.submit(2)  # the queue's two places
        with pytest.raises(RequestError) as refused:
            batcher.submit(3)
        assert refused.value.status == 503
        answer = client.post("/v1/predict", files={"file": ("a.png", png_bytes())})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1" and "busy" in answer.json()["error"]
        release.set()
        assert first.result(5) == {"top": []}


def test_concurrent_requests_are_batched_and_each_gets_its_own_result():
    model = EchoModel(delay=0.05)
    with TestClient(echo_app(model, max_batch=8, max_wait_ms=250)) as client:
        def ask(grey):
            files = [("file", (f"{grey}.png", png_bytes(grey))), ("file", (f"{grey + 1}.png", png_bytes(grey + 1)))]
            return grey, client.post("/v1/predict", files=files).json()["results"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(0, 160, 20)))
        metrics = client.get("/metrics").text
    for grey, rows in answers:
        assert [row["path"] for row in rows] == [f"{grey}.png", f"{grey + 1}.png"]
        assert [row["top"][0][1] for row in rows] == [grey / 255, (grey + 1) / 255]
    assert sum(model.batches) == 16 and max(model.batches) > 2  # images of several requests in one batch
    assert "backbonekit_images_total 16.0" in metrics
    assert f"backbonekit_batch_size_count {len(model.batches)}.0" in metrics


def test_a_lone_request_does_not_wait_for_company():
    # --max-wait-ms is how long a batch may wait while other requests are on their way; with none, it runs at once
    with TestClient(echo_app(max_wait_ms=3000)) as client:
        start = time.perf_counter()
        assert client.post("/v1/predict", files={"file": ("a.png", png_bytes())}).status_code == 200
        assert time.perf_counter() - start < 1.5
