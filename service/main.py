"""The FastAPI application: `create_app()` builds it; `sine serve` runs it under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service import heap
from service.api.routes import admin, events, items, ops, recommend
from service.batching import Coalescer, Overloaded
from service.core import logging as service_logging
from service.core import matching
from service.core.availability import Availability
from service.core.config import Settings, get_settings
from service.holder import ModelHolder
from service.metrics import ServiceMetrics
from service.middleware import REFUSED, RequestMiddleware
from service.recommender import LoadedModel
from service.store import MemoryStore, RedisStore
from sine import __version__
from sine.errors import SineError

log = logging.getLogger("sine.service")

DESCRIPTION = """
The matching stage of a recommender: a user's recent clicks in, the top-N candidate items
out, scored by a SINE model (Sparse-Interest Network, WSDM 2021) through its ONNX user
encoder and a faiss index. Click events recorded here feed the nightly retrain.
"""


def memory_store(settings: Settings) -> MemoryStore:
    return MemoryStore(settings.history_cap, settings.memory_users, settings.memory_events)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service_logging.configure(settings.log_level)
    metrics = ServiceMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = app.state.holder
        if settings.redis_url is not None:
            store = RedisStore(settings.redis_url.get_secret_value(), settings.redis_prefix,
                               settings.history_cap, settings.redis_timeout_seconds,
                               settings.event_stream_maxlen)
            holder.redis = store.client
        else:
            store = memory_store(settings)
        app.state.store = store
        if settings.redis_url is not None:
            app.state.availability = Availability(store.client, settings.redis_prefix,
                                                  settings.availability_poll_seconds, settings.max_unavailable)
            try:  # before the first request: items marked unavailable stay out across restarts
                await asyncio.wait_for(app.state.availability.refresh(force=True), timeout=5)
            except Exception as exc:
                log.error("cannot read the unavailable-items set from Redis at start (%s): serving "
                          "every item until it answers", exc)
        try:
            await holder.follow_pointer()
        except SineError as exc:  # refused or nothing configured: serve 503s, keep watching
            log.error("no model loaded at start: %s", exc)
        if holder.model is None and holder.waiting:
            log.warning("no model loaded at start: %s", holder.waiting)
        watcher = asyncio.create_task(holder.watch())
        availability_watcher = asyncio.create_task(app.state.availability.watch())
        try:
            yield
        finally:
            # bounded: a shutdown must never hang on a half-dead Redis connection
            for task in (watcher, availability_watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(task, timeout=2)
            app.state.coalescer.close()
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(store.close(), timeout=2)

    app = FastAPI(title="sine-rec", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = ModelHolder(settings)
    app.state.store = memory_store(settings)
    app.state.availability = Availability(max_items=settings.max_unavailable)  # in-process until Redis
    app.state.coalescer = Coalescer(functools.partial(matching.answer_grouped, metrics=metrics),
                                    settings.max_coalesced, in_thread=settings.batch_in_thread,
                                    max_waiting=settings.max_waiting)

    def on_swap(model: LoadedModel) -> None:
        metrics.catalog.set(model.num_items)
        metrics.model.info({"version": model.version, "index_type": model.index_spec.type,
                            "index_on": model.index_on, "encoder": model.encoder.provider})
        log.debug("heap settled in %.3f s", heap.settle_after_load())

    app.state.holder.listeners.append(on_swap)
    app.state.holder.outcome_listeners.append(lambda outcome: metrics.reloads.labels(outcome).inc())

    app.include_router(recommend.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(admin.router)
    app.include_router(items.router)
    if settings.static_endpoint:
        body = recommend.static_answer()

        @app.post("/_static", include_in_schema=False)
        async def static() -> Response:
            return Response(body, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            problems.append({"loc": [str(p) for p in error.get("loc", ())], "msg": str(error.get("msg")),
                             "type": str(error.get("type"))})
        summary = "; ".join(f"{'.'.join(p['loc'][1:]) or 'body'}: {p['msg']}" for p in problems[:5])
        return JSONResponse({"error": f"invalid request: {summary}", "detail": problems}, status_code=422)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        metrics.rejected.labels("overloaded").inc()
        request.scope[REFUSED] = True  # the access middleware neither logs it nor counts an error
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(HTTPException)  # starlette's: also the router's 404 / 405
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": "internal error; the request id is in the X-Request-ID header"},
                            status_code=500)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    # outermost: request id, body limit, metrics, log line
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
