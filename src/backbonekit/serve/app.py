"""The routes: ``POST /v1/predict``, ``POST /v1/explain``, ``GET /v1/model``, ``GET /health``, ``GET /metrics`` and
the page at ``/``. ``create_app`` takes any model with ``prepare``, ``run``, ``describe`` (and ``explain``): the
served checkpoint (``model.ServedModel``), or a stand-in in the tests."""
from __future__ import annotations

import asyncio
import base64
import io
import logging
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from backbonekit.errors import BackbonekitError
from backbonekit.serve.batching import Batcher
from backbonekit.serve.errors import RequestError
from backbonekit.serve.metrics import Metrics
from backbonekit.serve.options import ServeOptions
from backbonekit.serve.safety import Guard
from backbonekit.serve.uploads import decode_upload, uploaded_files

log = logging.getLogger("backbonekit.serve")


def create_app(model, options: ServeOptions) -> Guard:
    """The ASGI app uvicorn runs: the routes behind the ``Guard`` (key, body limit, metrics); the FastAPI app is its
    ``.app``, the batcher ``.app.state.batcher``."""
    metrics = Metrics()
    arriving = Arrivals()
    batcher = Batcher(model.run, options.max_batch, options.max_wait_ms, options.max_queue, metrics.batch,
                      arriving=lambda: arriving.count)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await run_in_threadpool(batcher.stop)  # after uvicorn let the requests in flight finish: theirs run first

    # No /docs: FastAPI's pages load their scripts from a CDN, and the machines this serves on may be offline.
    app = FastAPI(title="backbonekit serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher, app.state.metrics, app.state.model = batcher, metrics, model
    app.add_exception_handler(RequestError, lambda request, e: error_response(e))
    # Starlette's own refusals (404, 405) in the same shape: {"error": one line}
    app.add_exception_handler(HTTPException, lambda request, e: error_response(RequestError(e.status_code, str(
        e.detail), e.headers)))
    add_routes(app, model, options, batcher, metrics, arriving)
    return Guard(app, options.key(), options.max_body_bytes, metrics)


def error_response(e: RequestError) -> JSONResponse:
    return JSONResponse({"error": e.reason}, e.status, e.headers)


class Arrivals:
    """Predict requests read or decoded now, whose images the batcher may wait for (only the event loop counts)."""
    count = 0


def add_routes(app: FastAPI, model, options: ServeOptions, batcher: Batcher, metrics: Metrics,
               arriving: Arrivals) -> None:
    page = resources.files("backbonekit.serve").joinpath("page.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    @app.get("/health")
    async def health():
        alive = batcher.alive()
        return JSONResponse({"status": "ok" if alive else "batch worker stopped", "waiting": batcher.waiting()},
                            200 if alive else 503)

    @app.get("/metrics")
    async def prometheus():
        metrics.waiting.set(batcher.waiting())
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/model")
    async def describe():
        return model.describe()

    @app.post("/v1/predict")
    async def predict(request: Request):
        return await within(options.timeout_s, predict_rows(request, model, options, batcher, arriving))

    @app.post("/v1/explain")
    async def explain(request: Request):
        fmt = request.query_params.get("format", "png")
        if fmt not in ("png", "array"):
            raise RequestError(400, f"format={fmt}: png (overlays as PNG data URLs) or array (the maps' values)")
        return await within(options.timeout_s, explain_maps(request, model, options, fmt))


async def within(seconds: float, work):
    """``work``'s answer, or 504 when it takes longer than the per-request timeout."""
    try:
        return await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:
        raise RequestError(504, f"not answered within the {seconds:g} s request timeout") from None
    except RequestError:
        raise
    except BackbonekitError as e:
        raise RequestError(400, str(e)) from None
    except Exception as e:  # noqa: BLE001 - a bug, not the client's: logged whole, answered in one line
        log.exception("request failed")
        raise RequestError(500, f"internal error ({type(e).__name__}: {e})") from None


async def read_images(request: Request, options: ServeOptions, max_images: int) -> list[tuple[str, object]]:
    body = await request.body()
    files = uploaded_files(request.headers.get("content-type", ""), body, max_images)
    return await run_in_threadpool(lambda: [(name, decode_upload(name, data, options.max_pixels))
                                            for name, data in files])


async def predict_rows(request: Request, model, options: ServeOptions, batcher: Batcher, arriving: Arrivals) -> dict:
    futures = []
    arriving.count += 1
    try:
        try:
            body = await request.body()
            files = uploaded_files(request.headers.get("content-type", ""), body, options.max_images)
            # decoded and prepared in one trip to a worker thread: each trip costs the event loop a hand-over
            prepared = await run_in_threadpool(prepare_all, model, files, options.max_pixels)
            for _, item in prepared:
                futures.append(batcher.submit(item))
        finally:
            arriving.count -= 1
        rows = await asyncio.gather(*map(asyncio.wrap_future, futures))
    finally:
        for future in futures:
            future.cancel()  # a refused or timed-out request takes its images out of the queue (run ones stay)
    field = getattr(model, "path_field", "path")  # predict's name for it: sequence's rows say file_path
    return {"task": model.task, "results": [{field: name, **row} for (name, _), row in zip(prepared, rows)]}


def prepare_all(model, files: list[tuple[str, bytes]], max_pixels: int) -> list[tuple[str, object]]:
    return [(name, model.prepare(decode_upload(name, data, max_pixels))) for name, data in files]


async def explain_maps(request: Request, model, options: ServeOptions, fmt: str) -> dict:
    (name, image), = await read_images(request, options, 1)
    picture, maps, what = await run_in_threadpool(model.explain, image)
    shown = [{"caption": caption, **({"overlay": overlay_png(picture, heat)} if fmt == "png" else
                                     {"values": np.round(np.asarray(heat, np.float32), 4).tolist()})}
             for caption, heat in maps]
    return {"task": model.task, "path": name, "what": what, "input": png_data_url(picture),
            "maps": shown}


def overlay_png(picture: np.ndarray, heat: np.ndarray) -> str:
    from backbonekit.explain.overlay import heat_overlay

    return png_data_url(heat_overlay(picture, np.asarray(heat, np.float32)))


def png_data_url(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
