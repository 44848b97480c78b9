"""Service settings: environment variables with the prefix ``SINE_`` (one table, in README).

`sine serve` flags override them. Secrets (the admin token, a Redis URL's password) are
`SecretStr`, so they never appear in logs, in ``repr`` or in ``GET /model``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sine.search import DEFAULT_HISTORY_CAP, DEFAULT_MAX_CLICKS, DEFAULT_MAX_TOP_N

# Values that ship in examples and manifests: a token equal to one of them was never set.
PLACEHOLDER_TOKENS = frozenset({
    "change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me", "placeholder",
    "secret", "token", "admin", "password", "default", "example", "xxx", "todo", "none", "null",
})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINE_", extra="ignore")

    bundle: Path | None = Field(
        None, description="A bundle directory, or a bundle store (a directory with a CURRENT pointer).")
    redis_url: SecretStr | None = Field(
        None, description="Redis for user histories, click events and the live-model pointer; "
        "unset: an in-process store (histories and events are lost at restart).")
    redis_prefix: str = Field("sine:", description="Prefix of every Redis key and channel.")
    redis_timeout_seconds: float = Field(0.5, gt=0, description="Redis socket timeout.")
    history_cap: int = Field(DEFAULT_HISTORY_CAP, ge=1, le=100_000, description="Clicks kept per user history.")
    max_clicks: int = Field(DEFAULT_MAX_CLICKS, ge=1, le=1_000_000,
                            description="Most clicks (and excluded ids) per request.")
    max_top_n: int = Field(DEFAULT_MAX_TOP_N, ge=1, le=100_000, description="Largest top_n a request may ask for.")
    max_batch: int = Field(256, ge=1, le=100_000, description="Most requests in one /recommend/batch call.")
    max_events: int = Field(1000, ge=1, le=1_000_000, description="Most events in one /events call.")
    event_stream_maxlen: int = Field(
        10_000_000, ge=1000, description="Approximate cap on the Redis event stream (XADD MAXLEN ~); "
        "events beyond it are dropped oldest first, exported or not: keep it well above a day of "
        "clicks and alert on sine_event_stream_entries.")
    memory_users: int = Field(100_000, ge=1, description="Without Redis: most user histories kept in "
                              "the process (least recently written dropped first).")
    memory_events: int = Field(100_000, ge=1, description="Without Redis: most click events kept in "
                               "the process (oldest dropped first).")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted.")
    onnx_threads: int = Field(1, ge=0, description="onnxruntime intra-op threads (0: all cores).")
    faiss_threads: int = Field(1, ge=0, description="faiss OpenMP threads (0: all cores).")
    gpu: Literal["auto", "on", "off"] = Field(
        "auto", description="Encoder (CUDA provider) and index on a GPU when present.")
    batching: bool = Field(
        True, description="Encode and search concurrent /recommend requests as one batch.")
    max_coalesced: int = Field(64, ge=1, description="Most requests coalesced into one batch.")
    max_waiting: int = Field(
        256, ge=1, description="Most requests waiting for the encoder and index; more are refused "
        "with 503 and Retry-After (counted in sine_rejected_total).")
    limit_concurrency: int = Field(
        1024, ge=1, description="`sine serve`: most connections and requests in flight per worker "
        "(uvicorn --limit-concurrency); more are answered 503 by uvicorn.")
    batch_in_thread: bool = Field(
        True, description="Compute coalesced batches in a worker thread (the event loop keeps "
        "parsing requests meanwhile); false: on the event loop.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin/*; unset or empty: the admin endpoints are disabled; "
        "a placeholder (`change-me`, ...) refuses to start.")
    reload_poll_seconds: float = Field(
        5.0, ge=0, description="How often to check the bundle store / Redis pointer for a new "
        "live version (0: only on pub/sub messages and /admin/reload).")
    availability_poll_seconds: float = Field(
        0.5, gt=0, le=60, description="How often each replica checks Redis for items marked "
        "unavailable or available when no change is announced (a direct write to the set, a lost "
        "announcement): the longest delay until every replica applies it.")
    max_unavailable: int = Field(1_000_000, ge=1, description="Most ids in the unavailable-items set.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty: CORS off.")
    static_endpoint: bool = Field(
        False, description="Expose POST /_static, a precomputed 50-item answer (load-test ceiling).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    @field_validator("admin_token", mode="before")
    @classmethod
    def _admin_token(cls, value: object) -> object:
        """An empty token disables the admin API; a placeholder refuses to start.

        Compose's `${SINE_ADMIN_TOKEN:-}` passes an empty string, not "unset": taken as a
        token, an empty `Authorization: Bearer` would match it. A placeholder (the
        Kubernetes Secret's `change-me`) means nobody chose a secret: starting with it
        would open the admin API to anyone who read the manifest.
        """
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if isinstance(raw, str) and (raw.strip().lower() in PLACEHOLDER_TOKENS or "<" in raw):
            raise ValueError("SINE_ADMIN_TOKEN is a placeholder, not a secret: set a real one "
                             "(e.g. `openssl rand -hex 32`) or leave it empty to disable the admin API")
        return raw


@lru_cache
def get_settings() -> Settings:
    return Settings()
