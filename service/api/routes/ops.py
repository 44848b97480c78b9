"""Operations: liveness, readiness, Prometheus metrics, the live model's manifest and concepts."""

from __future__ import annotations

import asyncio
import time

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import interests
from service.api.deps import live_model
from service.schemas import ConceptsResponse, Health
from sine.bundle import model_variant
from sine.concepts import CAPTURE_RULE, LABEL_RULE, NEAREST_MAX, NEAREST_RULE, NoConceptPool

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
    availability = state.availability
    if availability.kind == "redis":  # how fresh the unavailable-items set this replica applies is
        age = time.monotonic() - availability.read_at if availability.read_at is not None else None
        checks["unavailable_items"] = (f"{len(availability.ids)} ids, read {age:.1f} s ago" if age is not None
                                       else "never read (Redis did not answer yet)")
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
    info["variant"] = model_variant(manifest["model"], manifest.get("training"))
    info["metrics"] = {split: values for split, values in info.get("metrics", {}).items()
                       if isinstance(values, dict)}
    index = manifest.get("index") or {}
    # held-out recall of the published index, to 4 places (the manifest keeps the rest)
    recall = {k: round(v, 4) if isinstance(v, float) else v for k, v in (index.get("recall") or {}).items()}
    info["index"] = {"type": model.index_spec.type, "recall": recall}
    # attribute -> number of labels: what `filter` and `diversity` can name
    info["attributes"] = model.attributes.summary() if model.attributes is not None else {}
    info["serving"] = {"encoder_provider": model.encoder.provider, "index_on": model.index_on,
                       "index_type": model.index_spec.type}
    # which per-interest outputs the encoder has, hence which request options it answers
    info["encoder"] = interests.capabilities(model.encoder.outputs, model.default_retrieval,
                                             model.default_interest_merge)
    return info


MAX_CONCEPTS = 1000
"""The most prototypes one GET /model/concepts lists (the response grows with top x nearest)."""


@router.get("/model/concepts", response_model=ConceptsResponse,
            summary="The live SINE model's concepts: items each prototype captures, its nearest items",
            responses={404: {"description": "The live model has no concept pool (not SINE, or a bundle "
                                            "exported without concepts.npy)"},
                       503: {"description": "No model is loaded yet"}})
async def model_concepts(
    request: Request,
    top: int = Query(20, ge=1, le=MAX_CONCEPTS,
                     description="How many prototypes to list, most items captured first."),
    nearest: int = Query(10, ge=1, le=NEAREST_MAX, description="Nearest items per prototype."),
    ids: list[int] | None = Query(None, alias="id", max_length=MAX_CONCEPTS,
                                  description="List these prototypes instead (repeat: ?id=3&id=17), e.g. "
                                  "the concept ids an explanation names; `top` is then ignored."),
) -> Response:
    """Computed once per loaded bundle (`sine.concepts`, in a worker thread on first use) and
    kept with the model; a request only slices it. A SINE-cate bundle that carries its item
    attributes also says how many items carry each prototype's label (`labelled`,
    `captured_labelled`, `label_rule`): captures follow the inner product, not the labels."""
    model = live_model(request)
    try:
        analysis = await asyncio.to_thread(model.concepts)
    except NoConceptPool as exc:
        raise HTTPException(404, str(exc).replace(f"{model.bundle.path}: ", "live model: ")) from None
    L = analysis.num_prototypes
    if ids is not None:
        bad = [i for i in ids if not 0 <= i < L]
        if bad:
            raise HTTPException(422, f"no prototype {bad[0]}: the concept pool has {L} (ids 0..{L - 1})")
        chosen = ids
    else:
        chosen = analysis.ranked()[:top].tolist()
    body = {
        "model_version": model.version,
        "capture_rule": CAPTURE_RULE,
        "nearest_rule": NEAREST_RULE,
        **({"label_rule": LABEL_RULE} if analysis.agreement is not None else {}),
        "summary": analysis.summary(),
        "concepts": [analysis.concept(i, model.item_list, nearest, model.bundle.concept_labels)
                     for i in chosen],
    }
    return Response(orjson.dumps(body), media_type="application/json")
