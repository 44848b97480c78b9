"""Operations: liveness, readiness, Prometheus metrics, the live model's manifest."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.schemas import Health

router = APIRouter(tags=["operations"])

SECRET_KEYS = ("token", "password", "secret", "redis_url")


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Model and index loaded; Redis answering when used",
            responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = {}
    model = state.holder.model
    checks["model"] = f"version {model.version}" if model else "not loaded"
    if state.holder.last_error:
        checks["last_reload"] = f"refused: {state.holder.last_error}"
    if state.store.kind == "redis":
        checks["redis"] = "ok" if await state.store.ping() else "unavailable"
    ready = model is not None and checks.get("redis", "ok") == "ok"
    return JSONResponse(Health(status="ready" if ready else "not ready", checks=checks).model_dump(),
                        status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/model", summary="The live model's manifest (no secrets)")
async def model_manifest(request: Request) -> JSONResponse:
    model = request.app.state.holder.model
    if model is None:
        return JSONResponse({"error": "no model is loaded yet"}, status_code=503)
    manifest = scrub(model.bundle.manifest)
    manifest["serving"] = {"encoder_provider": model.encoder.provider, "index_on": model.index_on,
                           "index_type": model.index_spec.type}
    return JSONResponse(manifest)


def scrub(value):
    """A copy without keys that could hold credentials."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not any(s in k.lower() for s in SECRET_KEYS)}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
