"""A request's business rules, turned into what the model applies: filter, availability, diversity.

The route calls `apply` once per request, on the event loop, with the model the request
is answered by: the filter is checked against that model's attributes (422 naming what
exists), combined with the items unavailable now into one cached `Constraint`, and the
diversity rule gets its attribute's column. The search itself runs later, in the batch
worker (`service.recommender`).
"""

from __future__ import annotations

from typing import Protocol

from fastapi import HTTPException

from service.core.availability import Availability
from service.recommender import LoadedModel, Query
from sine import filters
from sine.diversity import DiversityRule


class FilterBody(Protocol):
    include: dict[str, list[str]]
    exclude: dict[str, list[str]]


class DiversityBody(Protocol):
    attribute: str
    cap: int | None
    penalty: float | None


class Ruled(Protocol):
    """The part of a request that carries rules (`service.schemas.RecommendRequest`)."""

    filter: FilterBody | None
    diversity: DiversityBody | None


def apply(query: Query, body: Ruled, model: LoadedModel, availability: Availability, where: str = "") -> None:
    """Set `query.constraint` and `query.diversity`; raises HTTP 422 for a bad filter."""
    spec = body.filter
    key = filters.filter_key(spec.include, spec.exclude) if spec is not None else None
    try:
        if key is not None:
            filters.check_filter(model.attributes, key, where)
        if body.diversity is not None:
            filters.check_attribute(model.attributes, body.diversity.attribute, f"{where}diversity: ")
    except filters.FilterError as exc:
        raise HTTPException(422, str(exc)) from None
    query.constraint = model.constraints.get(key, availability.rows_for(model))
    if body.diversity is not None:
        query.diversity = DiversityRule(model.attributes.columns[body.diversity.attribute],
                                        body.diversity.cap, body.diversity.penalty)


def empty_note(query: Query) -> str | None:
    """A 200 with no items must say why: the filter (with what is unavailable now) allows no
    item at all. None whenever some item is allowed."""
    constraint = query.constraint
    if constraint is None or constraint.count:
        return None
    return (f"no item passes: the filter, together with the items unavailable now, allows 0 of the "
            f"{constraint.num_items} items of the catalog; loosen filter.include / filter.exclude "
            "(GET /admin/items lists the unavailable items)")
