"""What ``GET /metrics`` shows, in Prometheus' text format: requests and errors by route and status, latency,
batch sizes and the images waiting. A registry of its own per app (two apps in one process count apart)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("backbonekit_requests", "HTTP requests answered", ("route", "status"),
                                registry=self.registry)
        self.errors = Counter("backbonekit_errors", "requests answered with a 4xx or 5xx status", ("route", "status"),
                              registry=self.registry)
        self.latency = Histogram("backbonekit_request_seconds", "time from request to response", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("backbonekit_batch_size", "images run through the model together",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.images = Counter("backbonekit_images", "images run through the model", registry=self.registry)
        self.waiting = Gauge("backbonekit_queue_images", "images waiting for a batch", registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)
        self.images.inc(size)

    def text(self) -> bytes:
        return generate_latest(self.registry)
