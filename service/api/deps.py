"""Dependencies injected into the routes."""

from __future__ import annotations

import secrets

from fastapi import Header, HTTPException, Request

from service.core.config import Settings
from service.holder import ModelHolder
from service.recommender import LoadedModel


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


def live_model(request: Request) -> LoadedModel:
    """The model this request will use from start to end (a later swap does not affect it)."""
    model = request.app.state.holder.model
    if model is None:
        raise HTTPException(503, "no model is loaded yet; see GET /readyz")
    return model


def require_admin(request: Request, authorization: str | None = Header(None)) -> None:
    """Bearer-token check, in constant time; admin endpoints are off without a token."""
    token = request.app.state.settings.admin_token
    if token is None:
        raise HTTPException(403, "admin endpoints are disabled: set SINE_ADMIN_TOKEN to enable them")
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected):
        raise HTTPException(401, "missing or wrong admin token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
