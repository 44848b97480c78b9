"""Matching logic between the routes and the model: history merge, queries, answers.

The routes parse, call this and serialise; everything that decides *what* is answered
lives here and in `service.recommender`:

* `merge_history` says how a user's stored history and the request's clicks combine;
* `queries_for` reads every stored history a request needs in one store round trip;
* `answer` sends one query through the coalescer, or a whole batch to its worker
  thread, so the event loop itself never encodes or searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.batching import Coalescer
from service.metrics import ServiceMetrics
from service.recommender import Answer, LoadedModel, Query
from service.store import HistoryStore, StoreUnavailable


class Requested(Protocol):
    """What a recommendation request carries (`service.schemas.RecommendRequest`)."""

    clicks: list[str]
    user_id: str | None
    top_n: int
    exclude: list[str]
    exclude_clicked: bool
    retrieval: str
    interest_diversity: float
    interest_merge: str
    explain: bool


def merge_history(stored: Sequence[str], clicks: Sequence[str]) -> list[str]:
    """The stored history followed by the request's clicks, their overlap counted once.

    A client that posts its clicks to /events *and* sends its recent clicks with the
    request sends clicks that the stored history already ends with. The rule: the
    longest suffix of `stored` that equals a prefix of `clicks` is kept once, e.g.
    stored ``a b c d`` + clicks ``c d e`` -> ``a b c d e``; stored ``a b`` + clicks
    ``a b`` -> ``a b``. Anything else is taken as new clicks after the stored ones
    (stored ``a b`` + clicks ``c a`` -> ``a b c a``): a repeated click is a real signal.
    """
    if not stored:
        return list(clicks)
    if not clicks:
        return list(stored)
    first, n = clicks[0], len(stored)
    # candidate overlaps start where the stored history holds the first click; the
    # earliest such position is the longest overlap
    for start in range(max(0, n - len(clicks)), n):
        if stored[start] == first and list(stored[start:]) == list(clicks[: n - start]):
            return [*stored, *clicks[n - start:]]
    return [*stored, *clicks]


async def queries_for(store: HistoryStore, requests: Sequence[Requested]) -> list[tuple[Query, str]]:
    """Queries with their stored histories merged, read in one round trip.

    The second element says what happened to the history: "merged", "empty" (the user
    has none), "none" (no user_id given) or "unavailable" (the store did not answer;
    the request's own clicks are used).
    """
    users = list(dict.fromkeys(r.user_id for r in requests if r.user_id is not None))
    stored: dict[str, list[str]] = {}
    unavailable = False
    if users:
        try:
            stored = dict(zip(users, await store.histories(users), strict=True))
        except StoreUnavailable:
            unavailable = True
    out = []
    for r in requests:
        clicks, history = list(r.clicks), "none"
        if r.user_id is not None:
            if unavailable:
                history = "unavailable"
            else:
                previous = stored.get(r.user_id, [])
                history = "merged" if previous else "empty"
                clicks = merge_history(previous, clicks)
        out.append((Query(clicks, r.top_n, r.exclude, r.exclude_clicked, retrieval=r.retrieval,
                          interest_diversity=r.interest_diversity, interest_merge=r.interest_merge,
                          explain=r.explain), history))
    return out


async def answer(coalescer: Coalescer, model: LoadedModel, queries: list[Query], batching: bool,
                 metrics: ServiceMetrics) -> list[Answer]:
    """Answer `queries` with `model`: one request through the coalescer, several as one batch.

    Both computations run in the coalescer's worker thread (`batching` off and a single
    query: on the loop, one request at a time, as that setting asks). Raises
    `service.batching.Overloaded` when too many requests are already waiting.
    """
    if len(queries) == 1 and batching:
        answers = [await coalescer.submit((model, queries[0]))]
    elif len(queries) == 1:
        answers = answer_grouped([(model, queries[0])], metrics)
    else:
        answers = list(await coalescer.run([(model, q) for q in queries]))
    fallbacks = sum(a.fallback for a in answers)
    if fallbacks:
        metrics.fallbacks.inc(fallbacks)
    return answers


def answer_grouped(items: Sequence[tuple[LoadedModel, Query]], metrics: ServiceMetrics) -> list[Answer]:
    """Compute a batch; during a swap it may span two versions, each answers its own."""
    metrics.batch_size.observe(len(items))
    answers: list[Answer | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for position, (model, _) in enumerate(items):
        groups.setdefault(id(model), []).append(position)
    for positions in groups.values():
        model = items[positions[0]][0]
        for position, result in zip(positions, model.recommend([items[p][1] for p in positions]),
                                    strict=True):
            answers[position] = result
    return answers  # type: ignore[return-value]
