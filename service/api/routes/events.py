"""POST /events: record clicks for histories and for the nightly retrain."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response

from service.api.deps import get_settings
from service.core.config import Settings
from service.schemas import Event, EventsResponse
from service.store import Click, StoreUnavailable

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsResponse,
             summary="Record one click or many: user history (capped) + event stream")
async def record_events(
    request: Request,
    body: Event | list[Event] = Body(..., examples=[{"user_id": "u17", "item_id": "1002"}]),
    settings: Settings = Depends(get_settings),
) -> Response:
    events = body if isinstance(body, list) else [body]
    if not events:
        raise HTTPException(422, "no events given: send one event object or a non-empty list")
    if len(events) > settings.max_events:
        raise HTTPException(422, f"too many events: {len(events)}, at most {settings.max_events} per "
                                 "call (SINE_MAX_EVENTS)")
    now = time.time()
    clicks = [Click(e.user_id, e.item_id, e.timestamp if e.timestamp is not None else now) for e in events]
    try:
        ids = await request.app.state.store.record(clicks)
    except StoreUnavailable:
        raise HTTPException(503, "the event store (Redis) is unavailable; nothing was stored, "
                                 "retry later") from None
    metrics = request.app.state.metrics
    metrics.events.inc(len(ids))
    if request.app.state.store.stream_length is not None:
        metrics.stream_entries.set(request.app.state.store.stream_length)
    return Response(orjson.dumps({"stored": len(ids), "ids": ids}), media_type="application/json")
