"""uvicorn running the app: loopback unless ``--host`` says otherwise, and a graceful stop on SIGTERM or Ctrl-C
(uvicorn stops accepting, lets the requests in flight finish, up to the request timeout and a little, then the app's
shutdown runs what is still queued)."""
from __future__ import annotations

import ipaddress
import sys

from backbonekit.serve.options import API_KEY_ENV, ServeOptions


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(options: ServeOptions) -> None:
    """Loads the checkpoint, then serves until SIGTERM or Ctrl-C."""
    from backbonekit.serve.app import create_app
    from backbonekit.serve.model import ServedModel

    model = ServedModel(options)
    print(f"serving the {model.task} model {model.path.name} on {model.runtime} ({model.device}) at "
          f"http://{options.host}:{options.port}/ (the page), /v1/predict, /v1/explain, /v1/model, /health, /metrics",
          flush=True)
    run_app(create_app(model, options), options)


def run_app(app, options: ServeOptions) -> None:
    import uvicorn

    if not is_loopback(options.host) and not options.key():
        print(f"warning: serving on {options.host} without an API key: anyone who can reach this machine can use "
              f"the model (--api-key or {API_KEY_ENV})", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", server_header=False,
                            timeout_graceful_shutdown=int(options.timeout_s) + 5, proxy_headers=False)
    uvicorn.Server(config).run()
