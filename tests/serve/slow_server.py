"""A real uvicorn serving the stand-in model, each batch taking DELAY seconds: ``python slow_server.py PORT DELAY``
(the shutdown test sends it SIGTERM while a request is in flight)."""
import sys

from backbonekit.serve.options import ServeOptions
from backbonekit.serve.server import run_app
from fakes import EchoModel, echo_app

if __name__ == "__main__":
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    run_app(echo_app(EchoModel(delay=delay)), ServeOptions(checkpoint="echo", port=port))
