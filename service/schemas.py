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


# --------------------------------------------------------------- business rules

Label = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
Labels = Annotated[dict[Label, Annotated[list[Label], Field(max_length=1000)]], Field(max_length=16)]
FILTER_ERROR_EXAMPLE = ("filter.include.category: unknown value 'Comdy' (did you mean 'Comedy'?); "
                        "category has: Action, Adventure, Animation, Children's, Comedy, ...")


class ItemFilter(_Body):
    """Attribute filter, applied inside the index search (see README, "Filters")."""

    include: Labels = Field(default_factory=dict, description="Keep only items with one of these "
                            "labels, for every attribute named (e.g. {\"category\": [\"Comedy\", \"Drama\"]}).")
    exclude: Labels = Field(default_factory=dict, description="Never return items with any of these labels.")


class Diversity(_Body):
    """At most `cap` items per label of `attribute`, or ComiRec's greedy penalty (one of the two)."""

    attribute: Label = Field("category", description="The attribute whose labels are diversified.")
    cap: int | None = Field(None, ge=1, le=1000, description="At most this many items of one label.")
    penalty: float | None = Field(None, ge=0, le=1e6, allow_inf_nan=False,
                                  description="lambda of ComiRec's rule: score + lambda x (distinct-"
                                  "category items already chosen); in the model's score units.")

    @model_validator(mode="after")
    def _one_rule(self) -> Diversity:
        if (self.cap is None) == (self.penalty is None):
            raise ValueError("give exactly one of cap or penalty")
        return self


INTEREST_ONLY = ("interest_diversity", "interest_merge")
"""Request fields that only retrieval "interests" reads (422 with any other retrieval)."""


class RecommendRequest(_Body):
    clicks: list[ItemId] = Field(default_factory=list, description="Raw item ids, oldest first.")
    user_id: ItemId | None = Field(
        None, description="Prepend this user's stored history; clicks the history already ends "
        "with (a client that also posts /events) are counted once.")
    top_n: int = Field(DEFAULT_TOP_N, ge=1, description="How many items to return (1..max_top_n, 1000 by default).")
    exclude: list[ItemId] = Field(default_factory=list, description="Items never to return.")
    exclude_clicked: bool = Field(True, description="Never return items the user clicked.")
    filter: ItemFilter | None = Field(None, description="Only items whose attributes pass; an unknown "
                                      f"attribute or label is a 422 that lists what exists, e.g. "
                                      f"`{FILTER_ERROR_EXAMPLE}`.")
    diversity: Diversity | None = Field(None, description="Spread the top-N over categories.")
    retrieval: Literal["aggregate", "interests"] | None = Field(
        None, description="Default: the live model's (GET /model: `encoder.default_retrieval`; "
        "\"interests\" for MIND, whose paper serves its K vectors, \"aggregate\" otherwise). "
        "aggregate: one search with the user vector aggregated from the "
        "interests (eq. 8, the paper's inference). interests: one search per interest (all users "
        "and interests in one batched search); the list is divided among the interests "
        "(`interest_diversity`), each filling its part from its own ranking, and each item is "
        "scored by its best inner product with an interest. Needs a bundle (SINE, MIND, MCPRN) "
        "exported with the per-interest outputs (GET /model: `encoder.retrieval`).")
    interest_diversity: float = Field(
        DEFAULT_INTEREST_DIVERSITY, ge=0, le=1,
        description="retrieval \"interests\" only: how the list is divided among the interests. "
        "Interest k gets the share (1 - d) e_k + d m_k of top_n (largest remainders), e_k its "
        "aggregation weight (eq. 7: the predicted next intention), m_k its share of the user's "
        "clicks (mean P(k|t), eq. 3). 0: by the weights (closest to aggregate); 1: by the clicks "
        "(each interest gets its share of the user's clicks, the mean of P(k|t)).")
    interest_merge: Literal["shares", "score"] = Field(
        "shares", description="retrieval \"interests\" only: how the K per-interest rankings become "
        "one list. shares: divided among the interests by `interest_diversity` (above). score: "
        "merged by score alone -- the K*N candidates (top_n from each interest) sorted by their "
        "best inner product with an interest, each item once; MIND's and the paper's SINE-label "
        "retrieval (section 4.5), the rule a model trained with `sine train --label-aware` is "
        "evaluated with. `interest_diversity` does not apply to it. Unset: the live model's "
        "default (GET /model: `encoder.default_interest_merge`; score for MIND and SINE-label "
        "bundles), or shares when interest_diversity is given.")
    explain: bool = Field(
        False, description="Add `interest` to every item (the interest whose vector has the largest "
        "inner product with it: slot, concept id, that product) and `interests` to the response "
        "(each interest's slot, concept id, weight and the clicks assigned to it). Needs a bundle "
        "exported with the per-interest outputs (GET /model: `encoder.explain`).")

    model_config = ConfigDict(
        extra="forbid", coerce_numbers_to_str=True,
        json_schema_extra={"examples": [
            {"clicks": ["1002", "873", "4410"], "top_n": 10},
            {"clicks": ["1002", "873"], "top_n": 10, "filter": {"include": {"category": ["Comedy", "Drama"]},
                                                               "exclude": {"brand": ["acme"]}}},
            {"clicks": ["1002", "873"], "top_n": 20, "diversity": {"attribute": "category", "cap": 3}},
            {"clicks": ["1002", "873"], "top_n": 20, "diversity": {"penalty": 0.5}},
            {"clicks": ["1002", "873", "4410", "52"], "top_n": 10, "retrieval": "interests",
             "interest_diversity": 0.5, "explain": True},
            {"clicks": ["1002", "873", "4410", "52"], "top_n": 10, "retrieval": "interests",
             "interest_merge": "score"},
        ]},
    )

    @model_validator(mode="after")
    def _diversity_needs_interests(self) -> RecommendRequest:
        # an unset retrieval is the live model's default: the route checks it then (check_outputs)
        for name in INTEREST_ONLY:
            if name in self.model_fields_set and self.retrieval == "aggregate":
                raise ValueError(f'{name} applies to retrieval "interests" only; add '
                                 f'"retrieval": "interests" or leave {name} out')
        if "interest_diversity" in self.model_fields_set and self.interest_merge == "score":
            raise ValueError('interest_diversity does not apply to interest_merge "score" '
                             '(the list is merged by score alone)')
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
    note: str | None = Field(
        None, description="Why the list is empty when the request's filter, together with the items "
        "unavailable now, leaves no item of the catalog to return (absent otherwise).")

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


class ItemsUpdate(_Body):
    unavailable: list[ItemId] = Field(default_factory=list, max_length=10_000,
                                      description="Raw ids to stop serving (every replica, within a second).")
    available: list[ItemId] = Field(default_factory=list, max_length=10_000,
                                    description="Raw ids to serve again.")

    model_config = ConfigDict(
        extra="forbid", coerce_numbers_to_str=True,
        json_schema_extra={"examples": [{"unavailable": ["1002", "4410"]}, {"available": ["1002"]}]},
    )

    @model_validator(mode="after")
    def _disjoint(self) -> ItemsUpdate:
        both = sorted(set(self.unavailable) & set(self.available))
        if both:
            raise ValueError(f"ids both unavailable and available: {', '.join(both[:10])}")
        if not self.unavailable and not self.available:
            raise ValueError("give unavailable and/or available ids")
        return self


class ItemsState(BaseModel):
    unavailable: int = Field(description="Ids in the unavailable set now.")
    ids: list[str] = Field(default_factory=list, description="Some of them, sorted (GET: up to `limit`; "
                           "POST: up to 100).")
    store: Literal["redis", "memory"]
    not_in_catalog: list[str] = Field(default_factory=list,
                                      description="Ids of the set (POST: of those just written) that the "
                                      "live model does not know, up to 100 (kept: a later bundle may).")
    unavailable_in_bundle: list[str] = Field(
        default_factory=list, description="Ids marked available that the live bundle's attribute file "
        "marks available=false: they stay out until a bundle says otherwise.")


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


class ConceptItem(BaseModel):
    item_id: str
    cosine: float = Field(description="Cosine similarity of the item's vector with the prototype.")
    captured: bool = Field(description="The prototype also captures this item (see `capture_rule`).")


class Concept(BaseModel):
    id: int = Field(description="Prototype index in the concept pool, 0..L-1 (as in eq. 2's idx).")
    label: str | None = Field(None, description="SINE-cate only: the attribute value (--prototypes-from) "
                              "whose items' mean embedding this prototype is; absent for learned prototypes.")
    captured: int = Field(description="Items this prototype captures (see `capture_rule`: the model's "
                          "activation rule, not a count of its label's items).")
    labelled: int | None = Field(None, description="SINE-cate only, when the bundle carries the item attributes: "
                                 "catalog items carrying `label` (the category's size).")
    captured_labelled: int | None = Field(None, description="SINE-cate only, as `labelled`: the captured items "
                                          "that carry `label`.")
    share: float = Field(description="captured / number of items.")
    norm: float = Field(description="L2 norm of the prototype (larger norms win more items and users).")
    nearest: list[ConceptItem] = Field(description="The items closest to the prototype, best first.")


class ConceptSummary(BaseModel):
    prototypes: int = Field(description="L, the size of the concept pool.")
    items: int
    active_prototypes: int = Field(description="Prototypes that capture at least one item.")
    entropy: float = Field(description="Entropy (nats) of the share of items each prototype captures.")
    entropy_normalized: float = Field(description="entropy / log L: 1 when all capture equally many.")
    effective_concepts: float = Field(description="exp(entropy): as many equally sized concepts.")
    largest_share: float
    median_active_size: float
    labelled_items: int | None = Field(None, description="SINE-cate only, when the bundle carries the item "
                                       "attributes: items carrying at least one prototype's label.")
    captured_by_own_label: float | None = Field(None, description="SINE-cate only, as `labelled_items`: the "
                                                "share of them captured by a prototype of one of their own labels.")


class ConceptsResponse(BaseModel):
    model_version: str
    capture_rule: str
    nearest_rule: str
    label_rule: str | None = Field(None, description="SINE-cate with item attributes only: what `labelled` "
                                   "and `captured_labelled` count.")
    summary: ConceptSummary
    concepts: list[Concept] = Field(description="Most items captured first, or the requested ids in order.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_version": "20250101T000000Z-1a2b3c4d",
        "capture_rule": "each item is captured by the prototype with the largest inner product <C_l, x_i> "
                        "(eq. 2 with the item alone as the sequence)",
        "nearest_rule": "cosine similarity between the prototype and the item vectors (the paper's Figure 3)",
        "summary": {"prototypes": 500, "items": 1682, "active_prototypes": 141, "entropy": 4.3,
                    "entropy_normalized": 0.69, "effective_concepts": 73.7, "largest_share": 0.05,
                    "median_active_size": 8.0},
        "concepts": [{"id": 17, "captured": 84, "share": 0.05, "norm": 1.9,
                      "nearest": [{"item_id": "50", "cosine": 0.62, "captured": True}]}],
    }]})
