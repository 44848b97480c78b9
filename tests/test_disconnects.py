"""A client that hangs up is not a server error (issue 11, defect 8)."""

from __future__ import annotations

import asyncio
import logging

from service.metrics import ServiceMetrics
from service.middleware import RequestMiddleware


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_client_gone_before_its_body_is_read_is_a_499_not_a_5xx(caplog):
    reached = []

    async def app(scope, receive, send):  # never reached: nothing to answer
        reached.append(scope)

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        raise AssertionError("nothing may be sent to a client that went away")

    metrics = ServiceMetrics()
    middleware = RequestMiddleware(app, metrics=metrics, max_body_bytes=1000)
    scope = {"type": "http", "method": "POST", "path": "/recommend",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")]}
    with caplog.at_level(logging.DEBUG, logger="sine.service.access"):
        asyncio.run(middleware(scope, receive, send))
    assert not reached
    assert sample(metrics, "sine_errors_total", endpoint="unmatched") == 0
    assert sample(metrics, "sine_requests_total", endpoint="unmatched", status="500") == 0
    assert sample(metrics, "sine_requests_total", endpoint="unmatched", status="499") == 1
    assert sample(metrics, "sine_client_disconnects_total", endpoint="unmatched") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
