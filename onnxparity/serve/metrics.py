"""The server's Prometheus metrics (``/metrics``): requests, latency, batch sizes, compute time."""

from __future__ import annotations


class Metrics:
    """Prometheus counters and histograms in a registry of the server's own."""

    def __init__(self, max_batch_size: int):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("onnxparity_requests", "Requests by route (gRPC: grpc, grpc_infer), model and status",
                                ["route", "model", "status"], registry=self.registry)
        self.latency = Histogram("onnxparity_request_duration_seconds", "Time from request to response",
                                 ["route", "model"], registry=self.registry,
                                 buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5))
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, max_batch_size})
        self.batch_size = Histogram("onnxparity_batch_size", "Rows per ONNX Runtime run", ["model"],
                                    registry=self.registry, buckets=[s for s in sizes if s <= max_batch_size])
        self.compute = Histogram("onnxparity_inference_duration_seconds", "Time of one ONNX Runtime run",
                                 ["model"], registry=self.registry,
                                 buckets=(.0001, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1))
        self._children: dict[tuple, object] = {}

    def _child(self, metric, *labels):
        # labels() validates and locks on every call; the label sets are few (routes, models, statuses).
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, route: str, model: str, status: str, seconds: float | None = None) -> None:
        """One answered request; its latency too where given."""
        self._child(self.requests, route, model, status).inc()
        if seconds is not None:
            self._child(self.latency, route, model).observe(seconds)

    def batch(self, model: str, rows: int, seconds: float) -> None:
        self._child(self.batch_size, model).observe(rows)
        self._child(self.compute, model).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
