"""POST /admin/items and GET /admin/items: items not to serve between retrains (bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from service.api.deps import require_admin
from service.core.availability import TooMany
from service.schemas import ItemsState, ItemsUpdate

SHOWN = 100  # ids listed in an answer (the set itself may hold 100k)

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/items", response_model=ItemsState,
             summary="Mark items unavailable (or available again): every replica within a second, no reload")
async def mark_items(body: ItemsUpdate, request: Request) -> ItemsState:
    state = request.app.state
    availability = state.availability
    try:
        size = await availability.mark(body.unavailable, body.available)
    except TooMany as exc:
        raise HTTPException(409, f"not changed: {exc}") from None
    except Exception as exc:  # Redis did not answer: nothing (or, at worst, all of it) was written
        raise HTTPException(503, f"the unavailable-items set in Redis cannot be written ({exc}); "
                                 "retry") from None
    model = state.holder.model
    held = []
    if model is not None and model.attributes is not None:
        flagged = {model.item_list[r] for r in model.attributes.unavailable_rows().tolist()}
        held = [i for i in body.available if i in flagged][:SHOWN]
    return ItemsState(unavailable=size, ids=sorted(availability.ids)[:SHOWN], store=availability.kind,
                      not_in_catalog=not_in_catalog(request, body.unavailable + body.available),
                      unavailable_in_bundle=held)


@router.get("/items", response_model=ItemsState, summary="The items not served now")
async def list_items(request: Request, limit: int = Query(100, ge=0, le=10_000)) -> ItemsState:
    availability = request.app.state.availability
    return ItemsState(unavailable=len(availability.ids), ids=sorted(availability.ids)[:limit],
                      store=availability.kind, not_in_catalog=not_in_catalog(request, availability.ids))


def not_in_catalog(request: Request, ids) -> list[str]:
    """Up to `SHOWN` of `ids` (sorted) that the live model does not know; POST and GET say the
    same of the same ids."""
    model = request.app.state.holder.model
    if model is None:
        return []
    return sorted(i for i in ids if i not in model.row_of)[:SHOWN]
