"""POST /recommend and POST /recommend/batch: parse, call `service.core.matching`, serialise."""

from __future__ import annotations

from typing import TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service import interests
from service.api.deps import get_settings, live_model
from service.core import matching, rules
from service.core.config import Settings
from service.recommender import Answer, LoadedModel, Query
from service.schemas import (
    FILTER_ERROR_EXAMPLE,
    INTEREST_ONLY,
    BatchRequest,
    BatchResponse,
    RecommendRequest,
    RecommendResponse,
)

router = APIRouter(tags=["recommend"])

JSON = "application/json"
B = TypeVar("B", bound=BaseModel)


def documented_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route that parses its own body (see `parse_body`).

    pydantic puts nested models under the schema's own `$defs` and points at them with
    `#/$defs/...`; in the OpenAPI document that pointer would resolve from the document's
    root, where there is no `$defs`, so clients and fuzzers could not follow it. The nested
    models (none of them recursive) are therefore written in place.
    """
    schema = model.model_json_schema()
    return {"requestBody": {"required": True,
                            "content": {JSON: {"schema": inline_defs(schema, schema.pop("$defs", {}))}}}}


def inline_defs(node: object, defs: dict) -> object:
    """`node` with every `{"$ref": "#/$defs/Name"}` replaced by that definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return inline_defs({**defs[ref.removeprefix("#/$defs/")],
                                **{k: v for k, v in node.items() if k != "$ref"}}, defs)
        return {k: inline_defs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_defs(v, defs) for v in node]
    return node


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


def check_outputs(body: RecommendRequest, model: LoadedModel, where: str = "") -> None:
    """A request for per-interest retrieval or explanations against a bundle whose encoder
    lacks those outputs (a baseline, or exported before them) is refused, not degraded.
    An unset retrieval becomes the model's default (`LoadedModel.default_retrieval`), and so
    does an unset interest_merge, unless interest_diversity (a parameter of the shares merge)
    was given."""
    if body.retrieval is None:
        body.retrieval = model.default_retrieval
        for name in INTEREST_ONLY:
            if name in body.model_fields_set and body.retrieval != "interests":
                raise HTTPException(422, f'{where}{name} applies to retrieval "interests" only; add '
                                         f'"retrieval": "interests" or leave {name} out')
    if not {"interest_merge", "interest_diversity"} & body.model_fields_set:
        body.interest_merge = model.default_interest_merge
    missing = model.missing_outputs(body.retrieval, body.explain)
    if missing:
        asked = "explain" if body.explain else 'retrieval "interests"'
        raise HTTPException(422, f"{where}{asked} needs the encoder outputs {', '.join(missing)}, which "
                                 f"the live model ({model.bundle.manifest['model']}, version "
                                 f"{model.version}) does not have (GET /model lists them); ask for "
                                 'retrieval "aggregate" without explain, or serve a multi-interest bundle (SINE, '
                                 "MIND or MCPRN) exported by this release (sine export)")


def answer_json(answer: Answer, model: LoadedModel, history: str, query: Query | None = None) -> dict:
    body = {
        "items": [{"item_id": i, "score": s} for i, s in zip(answer.item_ids, answer.scores, strict=True)],
        "model_version": model.version,
        "unknown_clicks": answer.unknown_clicks,
        "fallback": answer.fallback,
        "history": history,
    }
    if answer.explanation is not None:
        body["interests"] = interests.explanation_json(body["items"], answer.explanation)
    note = rules.empty_note(query) if query is not None else None
    if note is not None:
        body["note"] = note
    return body


BAD_REQUEST = {422: {"description": "A bad request, e.g. a filter naming an unknown attribute or label "
                          "(the message lists what exists)",
                      "content": {JSON: {"example": {"error": FILTER_ERROR_EXAMPLE}}}}}


@router.post("/recommend", response_model=RecommendResponse,
             summary="Top-N items for a click sequence (and/or a user's stored history)",
             openapi_extra=documented_body(RecommendRequest), responses=BAD_REQUEST)
async def recommend(request: Request) -> Response:
    body = await parse_body(request, RecommendRequest)
    model, settings = live_model(request), request.app.state.settings
    check_limits(body, settings)
    check_outputs(body, model)
    state = request.app.state
    ((query, history),) = await matching.queries_for(state.store, [body])
    rules.apply(query, body, model, state.availability)
    (answer,) = await matching.answer(state.coalescer, model, [query], settings.batching, state.metrics)
    return Response(orjson.dumps(answer_json(answer, model, history, query)), media_type=JSON)


@router.post("/recommend/batch", response_model=BatchResponse,
             summary="Many recommendation requests, encoded and searched as one batch", responses=BAD_REQUEST)
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
        check_outputs(item, model, where=f"requests[{position}]: ")
    state = request.app.state
    prepared = await matching.queries_for(state.store, body.requests)
    for position, ((query, _), item) in enumerate(zip(prepared, body.requests, strict=True)):
        rules.apply(query, item, model, state.availability, where=f"requests[{position}]: ")
    answers = await matching.answer(state.coalescer, model, [q for q, _ in prepared], settings.batching,
                                    state.metrics)
    results = [answer_json(a, model, h, q) for a, (q, h) in zip(answers, prepared, strict=True)]
    return Response(orjson.dumps({"results": results}), media_type=JSON)


def static_answer(top_n: int = 50) -> bytes:
    """A same-size precomputed response: the ceiling of the HTTP stack, for the benchmark."""
    return orjson.dumps({
        "items": [{"item_id": f"{100000 + i}", "score": 1.0 / (i + 1)} for i in range(top_n)],
        "model_version": "static", "unknown_clicks": [], "fallback": False, "history": "none",
    })
