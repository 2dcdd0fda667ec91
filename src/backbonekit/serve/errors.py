"""A request the server refuses: its HTTP status and one line saying why (the body the client gets)."""
from __future__ import annotations

from backbonekit.errors import BackbonekitError


class RequestError(BackbonekitError):
    def __init__(self, status: int, reason: str, headers: dict | None = None):
        super().__init__(" ".join(reason.split()))  # one line, whatever the reason quoted
        self.status, self.reason, self.headers = status, str(self), headers or {}
