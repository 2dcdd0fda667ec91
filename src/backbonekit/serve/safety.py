"""What every HTTP request passes before any route: the API key (when one is set), the body limit, and the count
and timing of its answer (``/metrics``). Plain ASGI, so a refused request costs no routing, parsing or reading of
its body."""
from __future__ import annotations

import hmac
import json
import time

from backbonekit.serve.errors import RequestError
from backbonekit.serve.metrics import Metrics

# Open without the key: the page (static, it holds no model data; it sends the key the user types with each of its
# calls) and the liveness check (it says only "ok"), so a browser can load one and a load balancer probe the other.
OPEN_PATHS = ("/", "/health")
ROUTES = ("/", "/health", "/metrics", "/v1/model", "/v1/predict", "/v1/explain")  # metric labels: a fixed set


def presented_key(headers: dict[bytes, bytes]) -> bytes:
    """The key a request sends: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return headers.get(b"x-api-key", b"").strip()


class Guard:
    def __init__(self, app, key: str | None, max_body: int, metrics: Metrics):
        self.app, self.max_body, self.metrics = app, max_body, metrics
        self.key = key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refused = self.refusal(scope)
            if refused is not None:
                return await self.reply(send_counted, refused)
            await self.app(scope, self.limited(receive), send_counted)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.observe(route, status[0], time.perf_counter() - start)

    def refusal(self, scope) -> RequestError | None:
        headers = dict(scope["headers"])
        # compare_digest: the time taken does not depend on how much of the key a guess got right
        if self.key and scope["path"] not in OPEN_PATHS and not hmac.compare_digest(presented_key(headers), self.key):
            return RequestError(401, "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key: KEY)",
                                {"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            return RequestError(400, "Content-Length is not a number")
        if int(length) > self.max_body:
            return self.too_large()
        return None

    def too_large(self) -> RequestError:
        return RequestError(413, f"request body over {self.max_body / 2 ** 20:g} MiB")

    def limited(self, receive):
        """``receive`` that stops a body (one sent in chunks, with no Content-Length) at the limit."""
        seen = [0]

        async def receive_limited():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    raise self.too_large()
            return message

        return receive_limited

    @staticmethod
    async def reply(send, error: RequestError) -> None:
        body = json.dumps({"error": error.reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
