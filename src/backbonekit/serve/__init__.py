"""``backbonekit serve``: a trained checkpoint behind HTTP (FastAPI on uvicorn) and a page to try it in a browser.

The pieces, one a file: ``options`` (every setting and its default), ``model`` (the checkpoint loaded through the
runtime layer, and its task's ``serving`` from the task registry), ``uploads`` (request bodies → decoded images, with
the size, pixel and format limits), ``batching`` (requests that arrive together run as one batch), ``safety`` (the
API key and the body limit, before any route), ``metrics`` (Prometheus), ``app`` (the routes), ``server``
(uvicorn, graceful shutdown) and ``command`` (the CLI). Each task's ``serve.py`` turns images into the rows its
``predict --format json`` writes, through the same functions ``predict`` uses.

In Python::

    from backbonekit.serve import serve
    serve("runs/classify/exp/best.ckpt", port=8000)      # blocks until Ctrl-C or SIGTERM
"""
from __future__ import annotations


def serve(checkpoint: str, **options) -> None:
    """Serves ``checkpoint`` until interrupted; ``options``: the fields of ``backbonekit.serve.options.ServeOptions``
    (host, port, runtime, api_key, max_batch …)."""
    from backbonekit.serve.options import ServeOptions
    from backbonekit.serve.server import run_server

    run_server(ServeOptions(checkpoint=str(checkpoint), **options))
