"""SIGTERM to a real server: the request in flight still gets its answer, then the process exits cleanly."""
import io
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import requests

from serve.fakes import png_bytes
from serve.live import free_port, wait_until_up

HERE = Path(__file__).parent


def test_sigterm_lets_the_request_in_flight_finish():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(HERE / "slow_server.py"), str(port), "1.5"], cwd=HERE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(server, url)
        answer = {}
        asking = threading.Thread(target=lambda: answer.update(response=requests.post(
            url + "/v1/predict", files={"file": ("a.png", io.BytesIO(png_bytes(42)))}, timeout=30)))
        asking.start()
        time.sleep(0.5)  # the request is in the model now
        server.send_signal(signal.SIGTERM)
        asking.join(30)
        assert answer["response"].status_code == 200
        assert answer["response"].json()["results"][0]["top"] == [["grey", 42 / 255]]
        # uvicorn re-raises the signal once it has shut down, so the exit status says SIGTERM ended it
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.stderr.read()
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            raise AssertionError("still answering after SIGTERM")
        except OSError:
            pass
    finally:
        server.kill()
