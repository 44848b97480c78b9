"""POST /admin/reload and /admin/rollback (bearer token; disabled without one)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from service.api.deps import get_holder, require_admin
from service.holder import ModelHolder
from service.schemas import ModelSwap, ReloadRequest
from sine.errors import SineError

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/reload", response_model=ModelSwap, summary="Load a bundle beside the live one, then swap")
async def reload(request: Request, body: ReloadRequest | None = Body(None),
                 holder: ModelHolder = Depends(get_holder)) -> ModelSwap:
    try:
        changed = await holder.reload(Path(body.bundle) if body and body.bundle else None)
    except SineError as exc:
        keeps = "the live model keeps serving" if holder.model is not None else "no model is loaded"
        raise HTTPException(409, f"bundle refused, {keeps}: {exc}") from None
    return ModelSwap(model_version=holder.model.version, changed=changed)


@router.post("/rollback", response_model=ModelSwap, summary="Serve the previous model version again")
async def rollback(request: Request, holder: ModelHolder = Depends(get_holder)) -> ModelSwap:
    try:
        version = await holder.rollback()
    except SineError as exc:
        raise HTTPException(409, f"rollback refused, the live model keeps serving: {exc}") from None
    return ModelSwap(model_version=version, changed=True)
