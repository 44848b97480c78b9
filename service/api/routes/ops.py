"""Operations: liveness, readiness, Prometheus metrics, the live model's manifest."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import interests
from service.schemas import Health

router = APIRouter(tags=["operations"])

@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health,
            summary="Ready when a model is loaded; a Redis outage is reported as degraded, not unready",
            responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness is the model alone: `/recommend` with explicit clicks answers without Redis,
    so a Redis blip must not take every replica out of the load balancer. It is reported
    (status ``degraded``, ``checks.redis``) for dashboards and alerts."""
    state = request.app.state
    holder = state.holder
    checks = {}
    model = holder.model
    if model is not None:
        checks["model"] = f"version {model.version}"
    else:
        checks["model"] = f"not loaded: {holder.waiting or holder.last_error or 'loading'}"
    if holder.last_error:
        checks["last_reload"] = f"refused: {holder.last_error}"
    if holder.pinned_over is not None:
        checks["pointer"] = "pinned by an explicit reload or rollback until the live-model pointer moves"
    if state.store.kind == "redis":
        checks["redis"] = "ok" if await state.store.ping() else "unavailable"
    if model is None:
        status = "not ready"
    elif checks.get("redis", "ok") != "ok":
        status = "degraded"
    else:
        status = "ready"
    return JSONResponse(Health(status=status, checks=checks).model_dump(),
                        status_code=503 if model is None else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


MANIFEST_FIELDS = ("version", "model", "dim", "max_len", "num_items", "created_at", "metrics")
"""What clients of `GET /model` get from the manifest: never file paths, the training run
or its full configuration (they describe the training machine, not the model's contract)."""


@router.get("/model", summary="The live model: version, dimensions, catalog size, index, metrics, "
            "encoder outputs (which retrieval modes and explanations it answers)")
async def model_manifest(request: Request) -> JSONResponse:
    model = request.app.state.holder.model
    if model is None:
        return JSONResponse({"error": "no model is loaded yet; see GET /readyz"}, status_code=503)
    return JSONResponse(public_model_info(model))


def public_model_info(model) -> dict:
    """The part of the live model's manifest that clients need, plus how it is served."""
    manifest = model.bundle.manifest
    info = {key: manifest[key] for key in MANIFEST_FIELDS if key in manifest}
    info["metrics"] = {split: values for split, values in info.get("metrics", {}).items()
                       if isinstance(values, dict)}
    index = manifest.get("index") or {}
    info["index"] = {"type": model.index_spec.type, "recall": index.get("recall", {})}
    info["serving"] = {"encoder_provider": model.encoder.provider, "index_on": model.index_on,
                       "index_type": model.index_spec.type}
    # which per-interest outputs the encoder has, hence which request options it answers
    info["encoder"] = interests.capabilities(model.encoder.outputs)
    return info
