"""POST /recommend and POST /recommend/batch."""

from __future__ import annotations

from typing import TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.api.deps import get_settings, live_model
from service.core.config import Settings
from service.metrics import ServiceMetrics
from service.recommender import Answer, LoadedModel, Query
from service.schemas import BatchRequest, BatchResponse, RecommendRequest, RecommendResponse
from service.store import StoreUnavailable

router = APIRouter(tags=["recommend"])

JSON = "application/json"
B = TypeVar("B", bound=BaseModel)


def documented_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route that parses its own body (see `parse_body`)."""
    return {"requestBody": {"required": True,
                            "content": {JSON: {"schema": model.model_json_schema()}}}}


async def parse_body(request: Request, model: type[B]) -> B:
    """Validate the raw body with pydantic-core's JSON parser, in one pass.

    FastAPI's own path (json.loads, then validation of the Python objects, then the
    dependency solver) cost about a fifth of a /recommend request on one core. Errors
    take the same shape as FastAPI's, so the 422 handler words them the same way.
    """
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def check_limits(body: RecommendRequest, settings: Settings, where: str = "") -> None:
    if body.top_n > settings.max_top_n:
        raise HTTPException(422, f"{where}top_n must be between 1 and {settings.max_top_n} "
                                 "(SINE_MAX_TOP_N)")
    if len(body.clicks) > settings.max_clicks:
        raise HTTPException(422, f"{where}too many clicks: {len(body.clicks)}, at most "
                                 f"{settings.max_clicks} per request (SINE_MAX_CLICKS); send the "
                                 "most recent ones")
    if len(body.exclude) > settings.max_clicks:
        raise HTTPException(422, f"{where}too many excluded ids: {len(body.exclude)}, at most "
                                 f"{settings.max_clicks} (SINE_MAX_CLICKS)")


async def to_query(request: Request, body: RecommendRequest) -> tuple[Query, str]:
    """Merge the stored history (if a user_id is given and the store answers)."""
    clicks, history = body.clicks, "none"
    if body.user_id is not None:
        try:
            stored = await request.app.state.store.history(body.user_id)
            history = "merged" if stored else "empty"
            clicks = stored + clicks
        except StoreUnavailable:
            history = "unavailable"
    return Query(clicks, body.top_n, body.exclude, body.exclude_clicked), history


def answer_json(answer: Answer, model: LoadedModel, history: str) -> dict:
    return {
        "items": [{"item_id": i, "score": s} for i, s in zip(answer.item_ids, answer.scores, strict=True)],
        "model_version": model.version,
        "unknown_clicks": answer.unknown_clicks,
        "fallback": answer.fallback,
        "history": history,
    }


async def compute(request: Request, model: LoadedModel, queries: list[Query]) -> list[Answer]:
    state = request.app.state
    if state.settings.batching and len(queries) == 1:
        answers = [await state.coalescer.submit((model, queries[0]))]
    else:
        state.metrics.batch_size.observe(len(queries))
        answers = model.recommend(queries)
    fallbacks = sum(a.fallback for a in answers)
    if fallbacks:
        state.metrics.fallbacks.inc(fallbacks)
    return answers


def answer_coalesced(items: list[tuple[LoadedModel, Query]], metrics: ServiceMetrics) -> list[Answer]:
    """Compute a coalesced batch; during a swap it may span two versions, each gets its own."""
    metrics.batch_size.observe(len(items))
    answers: list[Answer | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for position, (model, _) in enumerate(items):
        groups.setdefault(id(model), []).append(position)
    for positions in groups.values():
        model = items[positions[0]][0]
        for position, answer in zip(positions, model.recommend([items[p][1] for p in positions]),
                                    strict=True):
            answers[position] = answer
    return answers  # type: ignore[return-value]


@router.post("/recommend", response_model=RecommendResponse,
             summary="Top-N items for a click sequence (and/or a user's stored history)",
             openapi_extra=documented_body(RecommendRequest))
async def recommend(request: Request) -> Response:
    body = await parse_body(request, RecommendRequest)
    model, settings = live_model(request), request.app.state.settings
    check_limits(body, settings)
    query, history = await to_query(request, body)
    (answer,) = await compute(request, model, [query])
    return Response(orjson.dumps(answer_json(answer, model, history)), media_type=JSON)


@router.post("/recommend/batch", response_model=BatchResponse,
             summary="Many recommendation requests, encoded and searched as one batch")
async def recommend_batch(
    body: BatchRequest,
    request: Request,
    model: LoadedModel = Depends(live_model),
    settings: Settings = Depends(get_settings),
) -> Response:
    if len(body.requests) > settings.max_batch:
        raise HTTPException(422, f"too many requests in one batch: {len(body.requests)}, at most "
                                 f"{settings.max_batch} (SINE_MAX_BATCH)")
    for position, item in enumerate(body.requests):
        check_limits(item, settings, where=f"requests[{position}]: ")
    prepared = [await to_query(request, item) for item in body.requests]
    answers = await compute(request, model, [q for q, _ in prepared])
    results = [answer_json(a, model, h) for a, (_, h) in zip(answers, prepared, strict=True)]
    return Response(orjson.dumps({"results": results}), media_type=JSON)


def static_answer(top_n: int = 50) -> bytes:
    """A same-size precomputed response: the ceiling of the HTTP stack, for the benchmark."""
    return orjson.dumps({
        "items": [{"item_id": f"{100000 + i}", "score": 1.0 / (i + 1)} for i in range(top_n)],
        "model_version": "static", "unknown_clicks": [], "fallback": False, "history": "none",
    })
