"""Request and response bodies of the API (pydantic v2), with OpenAPI examples.

Ids are strings; a JSON number sent as an id is taken as its decimal string, since real
logs often use numeric ids. Static limits live here; the configurable ones (clicks per
request, top_n, batch size) are checked against the settings by the routes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.interests import DEFAULT_INTEREST_DIVERSITY
from sine.search import DEFAULT_TOP_N

MAX_ID_LENGTH = 256
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class RecommendRequest(_Body):
    clicks: list[ItemId] = Field(default_factory=list, description="Raw item ids, oldest first.")
    user_id: ItemId | None = Field(
        None, description="Prepend this user's stored history; clicks the history already ends "
        "with (a client that also posts /events) are counted once.")
    top_n: int = Field(DEFAULT_TOP_N, ge=1, description="How many items to return (1..max_top_n, 1000 by default).")
    exclude: list[ItemId] = Field(default_factory=list, description="Items never to return.")
    exclude_clicked: bool = Field(True, description="Never return items the user clicked.")
    retrieval: Literal["aggregate", "interests"] = Field(
        "aggregate", description="aggregate: one search with the user vector aggregated from the "
        "interests (eq. 8, the paper's inference). interests: one search per interest (all users "
        "and interests in one batched search); the list is divided among the interests "
        "(`interest_diversity`), each filling its part from its own ranking, and each item is "
        "scored by its best inner product with an interest. Needs a SINE bundle exported with the "
        "per-interest outputs (GET /model: `encoder.retrieval`).")
    interest_diversity: float = Field(
        DEFAULT_INTEREST_DIVERSITY, ge=0, le=1,
        description="retrieval \"interests\" only: how the list is divided among the interests. "
        "Interest k gets the share (1 - d) e_k + d m_k of top_n (largest remainders), e_k its "
        "aggregation weight (eq. 7: the predicted next intention), m_k its share of the user's "
        "clicks (mean P(k|t), eq. 3). 0: by the weights (closest to aggregate); 1: by the clicks "
        "(every interest the user showed keeps its share of the list).")
    explain: bool = Field(
        False, description="Add `interest` to every item (the interest whose vector has the largest "
        "inner product with it: slot, concept id, that product) and `interests` to the response "
        "(each interest's slot, concept id, weight and the clicks assigned to it). Needs a bundle "
        "exported with the per-interest outputs (GET /model: `encoder.explain`).")

    model_config = ConfigDict(
        extra="forbid", coerce_numbers_to_str=True,
        json_schema_extra={"examples": [
            {"clicks": ["1002", "873", "4410"], "top_n": 10},
            {"clicks": ["1002", "873", "4410", "52"], "top_n": 10, "retrieval": "interests",
             "interest_diversity": 0.5, "explain": True},
        ]},
    )

    @model_validator(mode="after")
    def _diversity_needs_interests(self) -> RecommendRequest:
        if "interest_diversity" in self.model_fields_set and self.retrieval != "interests":
            raise ValueError('interest_diversity applies to retrieval "interests" only; add '
                             '"retrieval": "interests" or leave interest_diversity out')
        return self


class ItemInterest(BaseModel):
    index: int = Field(description="The interest's slot k (0 = the best-matching concept of eq. 2).")
    concept_id: int = Field(description="The concept (prototype) that interest was activated from.")
    score: float = Field(description="Inner product of the item with that interest's vector.")


class ScoredItem(BaseModel):
    item_id: str
    score: float = Field(description="aggregate: inner product with the user vector; interests: the "
                         "best inner product with one of the interests; fallback: popularity count.")
    interest: ItemInterest | None = Field(
        None, description="Only with explain: the interest that matches the item best (null for a "
        "fallback's items).")


class UserInterest(BaseModel):
    index: int = Field(description="Slot k, as in the items' `interest.index`.")
    concept_id: int = Field(description="The activated concept (prototype) id; see the concept pool.")
    weight: float = Field(description="Aggregation weight e_k (eq. 7); the weights sum to 1.")
    clicks: list[str] = Field(description="The clicks assigned to this interest (argmax over the "
                              "interests of P(k|t), eq. 3), oldest first; only the clicks the "
                              "encoder saw (known ids, the last max_len).")


class RecommendResponse(BaseModel):
    items: list[ScoredItem] = Field(description="Best first; scores are the model's inner products "
                                    "(popularity counts when `fallback` is true).")
    model_version: str
    unknown_clicks: list[str] = Field(description="Clicked ids the model does not know (ignored).")
    fallback: bool = Field(description="No known click remained: popular items were returned.")
    history: Literal["merged", "empty", "none", "unavailable"] = Field(
        description="merged: the stored history was prepended; empty: the user has none; "
        "none: no user_id given; unavailable: the history store did not answer.")
    interests: list[UserInterest] | None = Field(
        None, description="Only with explain: the user's K interests ([] for a fallback).")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"item_id": "2201", "score": 7.31,
                   "interest": {"index": 1, "concept_id": 412, "score": 7.31}},
                  {"item_id": "99", "score": 6.94,
                   "interest": {"index": 0, "concept_id": 37, "score": 6.94}}],
        "model_version": "20250101T000000Z-1a2b3c4d", "unknown_clicks": [], "fallback": False,
        "history": "none",
        "interests": [{"index": 0, "concept_id": 37, "weight": 0.62, "clicks": ["1002", "873"]},
                      {"index": 1, "concept_id": 412, "weight": 0.31, "clicks": ["4410"]},
                      {"index": 2, "concept_id": 5, "weight": 0.05, "clicks": ["52"]},
                      {"index": 3, "concept_id": 260, "weight": 0.02, "clicks": []}],
    }]})


class BatchRequest(_Body):
    requests: list[RecommendRequest] = Field(min_length=1)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"requests": [{"clicks": ["1002"]},
                                                      {"clicks": ["873", "4410"], "top_n": 5}]}]},
    )


class BatchResponse(BaseModel):
    results: list[RecommendResponse]


class Event(_Body):
    user_id: ItemId
    item_id: ItemId
    timestamp: float | None = Field(None, ge=0, lt=1e11, allow_inf_nan=False,
                                    description="Unix seconds (not milliseconds: the retrain puts "
                                    "events on the base log's scale); default: the time received.")

    model_config = ConfigDict(
        extra="forbid", coerce_numbers_to_str=True,
        json_schema_extra={"examples": [{"user_id": "u17", "item_id": "1002", "timestamp": 1764201600}]},
    )


class EventsResponse(BaseModel):
    stored: int
    ids: list[str] = Field(description="Stream ids of the stored events, in order.")


class ReloadRequest(_Body):
    bundle: str | None = Field(None, max_length=4096,
                               description="Bundle directory to load, or the name of a version in the "
                               "bundle store (as in its CURRENT file); default: the live pointer.")


class ModelSwap(BaseModel):
    model_version: str
    changed: bool


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
