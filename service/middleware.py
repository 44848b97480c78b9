"""One pure-ASGI middleware for every request: id, body limit, metrics and log line.

A client that goes away before its request is read is not a server error: it is
counted with the status 499 (nginx's "client closed request") and in
``sine_client_disconnects_total``, logged at debug level, and never reaches
``sine_errors_total`` (which pages someone). Nor does a request refused by admission
control (503, counted in ``sine_rejected_total``): under overload a warning per refusal
would flood the log exactly when the process has no time to spare.

(Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs tens of microseconds
per request: this service's whole budget is a few hundred.)
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson

from service.core.logging import request_id
from service.metrics import ServiceMetrics

log = logging.getLogger("sine.service.access")

CLIENT_CLOSED = 499
REFUSED = "sine.refused"  # scope key: the request was refused by admission control (503)


class RequestMiddleware:
    def __init__(self, app, metrics: ServiceMetrics, max_body_bytes: int):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        rid = None
        length = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:128]
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value.split(b";")[0].strip().lower()
        rid = rid or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        limit = self.max_body_bytes

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        try:
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _error(send_wrapper, 413, f"request body too large: at most {limit} bytes "
                             "(SINE_MAX_BODY_BYTES)")
                return
            # read the whole body first (bounded): an oversized one never reaches the app
            chunks, received, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    status = CLIENT_CLOSED  # the client went away: nothing to answer
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    await _error(send_wrapper, 413, f"request body too large: at most {limit} bytes "
                                 "(SINE_MAX_BODY_BYTES)")
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if body and not _is_json(content_type):
                await _error(send_wrapper, 415, "send the request body as JSON with the header "
                             "Content-Type: application/json")
                return
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            refused = scope.get(REFUSED, False)
            if status == CLIENT_CLOSED:
                self.metrics.disconnects.labels(endpoint).inc()
            elif status >= 500 and not refused:
                self.metrics.errors.labels(endpoint).inc()
            if status >= 400 or log.isEnabledFor(logging.DEBUG):
                level = (logging.DEBUG if status == CLIENT_CLOSED or refused else logging.WARNING
                         if status >= 500 else logging.INFO if status >= 400 else logging.DEBUG)
                log.log(level, "request", extra={"method": scope["method"], "path": scope["path"],
                                          "status": status, "duration_ms": round(elapsed * 1e3, 3)})
            request_id.reset(token)


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or content_type.endswith(b"+json")


async def _error(send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
