"""Per-interest retrieval and explanations: what SINE's K interests add to an answer.

A SINE encoder outputs, beside the aggregated user vector v of eq. (8), the K interest
vectors phi^k (eq. 5), their aggregation weights e_k (eq. 7), the activated concept
ids (eq. 2) and each click's intention assignment P(k|t) (eq. 3). `LoadedModel`
answers with them in two ways, both chosen per request:

**retrieval "aggregate"** (the default, unless the bundle names another: MIND's is
"interests", `default_retrieval`) is the paper's inference: one search with v.

**retrieval "interests"** searches once per interest and divides the list among the
interests:

1. *Candidates.* The index is searched once for every user and interest together (one
   call over a [users x K, D] query matrix), each interest as deep as the aggregate
   search goes (top_n plus the excluded items), so any one interest could fill the list.
2. *Shares.* Interest k gets the share s_k = (1 - d) e_k + d m_k of the list, where e_k
   is its aggregation weight (eq. 7: the model's prediction of the user's next
   intention), m_k its share of the user's clicks (the mean of P(k|t), eq. 3, over the
   clicks) and d the request's ``interest_diversity``. The top_n slots are divided by
   these shares (largest remainders).
3. *Fill.* Heaviest share first, each interest takes its slots from its own ranking,
   skipping excluded items and items already taken; slots left (a ranking used up by
   exclusions) go to the best remaining candidates of any interest by inner product.
4. *Order.* An item's score is its best inner product over the K interests; the list
   is returned best first by that score.

Why this rule. MIND and the paper's SINE-label variant merge the K rankings by score
alone; measured on ml-100k (bench/results/interest_retrieval.md) that lost 8.2% of
HR@50 against the aggregated vector, dividing the list by the weights e_k 3.6% (the
weights are what eq. 8 aggregates with), by the click shares 8.0%. But e_k predicts the
*next* intention only: the sharper the model, the more one interest takes the whole
list, which is what the aggregated vector does already. Click shares m_k divide the
list as the user's history is divided (a calibrated list, Steck, RecSys 2018): every
interest the user showed keeps a share, and the genre miscalibration fell by a fifth.
``interest_diversity`` moves between the two; it is a share of the list, so a client
sets it without knowing the model's score scale (unlike ComiRec's lambda, a bonus in
score units). The default, 0.5, kept HR@50 within 5% of the aggregate on ml-100k
(-4.4%) and beauty (+0.2%) while calibrating half of the list; 0.25 measured -2.6% and
+0.9%, within one standard error on ml-100k's 943 test users (about 4% relative).

**interest_merge "score"** skips steps 2 and 3: the K rankings are merged by score alone
(each item once, at its best inner product over the interests), which is how MIND and the
paper's SINE-label variant retrieve -- "K*N candidate items based on K embedding vectors,
then the final top-N by sorting the K*N items" (section 4.5). A SINE-label model
(`sine train --label-aware`) is trained for that rule; its aggregated vector (eq. 8) is not
trained at all.

**explain** adds, per returned item, the interest whose vector has the largest inner
product with it (its slot, its concept id and that inner product; in "interests" mode
this is not always the interest whose share of the list took the item), and per response the user's interests with their
weights, concept ids and the clicks assigned to each (the argmax over k of P(k|t), over
the clicks the encoder saw: known ids, the last n).

Bundles exported before these outputs existed still load and serve "aggregate";
`missing_outputs` says which outputs a request needs that the encoder lacks, and the
API answers such a request 422 with that list (no silent fallback: a client that asked
for an explanation or for diversity should learn that this model cannot give it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sine.bundle import (
    CONCEPT_IDS,
    INTENTION_ASSIGNMENT,
    INTEREST_OUTPUTS,
    INTEREST_VECTORS,
    INTEREST_WEIGHTS,
)
from sine.errors import BundleError

RETRIEVALS = ("aggregate", "interests")
INTEREST_MERGES = ("shares", "score")
"""How retrieval "interests" merges the K rankings: divided by shares, or by score alone."""
DEFAULT_INTEREST_DIVERSITY = 0.5
NEEDS_FOR_INTERESTS = (INTEREST_VECTORS, INTEREST_WEIGHTS, INTENTION_ASSIGNMENT)
NEEDS_FOR_EXPLAIN = INTEREST_OUTPUTS


def needed_outputs(retrieval: str, explain: bool) -> tuple[str, ...]:
    """The encoder outputs a request needs beside the user vector."""
    if explain:
        return NEEDS_FOR_EXPLAIN
    return NEEDS_FOR_INTERESTS if retrieval == "interests" else ()


def missing_outputs(outputs: Sequence[str], retrieval: str, explain: bool) -> list[str]:
    return [name for name in needed_outputs(retrieval, explain) if name not in outputs]


def default_retrieval(manifest: dict, outputs: Sequence[str]) -> str:
    """The retrieval a request that names none gets: the manifest's ``default_retrieval``
    ("interests" for MIND and SINE-label, trained for the K*N merge; trainer/export.py),
    else "aggregate". Checked when the bundle loads."""
    value = manifest.get("default_retrieval", "aggregate")
    if value not in RETRIEVALS:
        raise BundleError(f"the manifest's default_retrieval {value!r} is not one of {', '.join(RETRIEVALS)}")
    missing = missing_outputs(outputs, value, False)
    if missing:
        raise BundleError(f"the manifest's default retrieval {value!r} needs the encoder outputs "
                          f"{', '.join(missing)}, which the encoder lacks")
    return value


def default_interest_merge(manifest: dict) -> str:
    """The merge a request for "interests" that names none (and no interest_diversity) gets:
    the manifest's ``default_interest_merge`` ("score" for MIND and SINE-label), else "shares"."""
    value = manifest.get("default_interest_merge", "shares")
    if value not in INTEREST_MERGES:
        raise BundleError(f"the manifest's default_interest_merge {value!r} is not one of "
                          f"{', '.join(INTEREST_MERGES)}")
    return value


def capabilities(outputs: Sequence[str], default: str = "aggregate", merge: str = "shares") -> dict:
    """What a model with these encoder outputs can answer (for GET /model)."""
    return {
        "outputs": list(outputs),
        "default_retrieval": default,
        "default_interest_merge": merge,
        "retrieval": [r for r in RETRIEVALS if not missing_outputs(outputs, r, False)],
        "explain": not missing_outputs(outputs, "aggregate", True),
    }


def check_outputs(outputs: dict[str, np.ndarray], batch: np.ndarray, dim: int) -> None:
    """Shapes and values of the per-interest outputs an encoder has (at load time)."""
    rows, width = batch.shape
    vectors = outputs.get(INTEREST_VECTORS)
    k = vectors.shape[1] if vectors is not None and vectors.ndim == 3 else None
    expected = {INTEREST_VECTORS: (rows, k, dim), INTEREST_WEIGHTS: (rows, k),
                CONCEPT_IDS: (rows, k), INTENTION_ASSIGNMENT: (rows, width, k)}
    for name, shape in expected.items():
        value = outputs.get(name)
        if value is None:
            continue
        if k is None or value.shape != shape:
            raise BundleError(f"the encoder's {name} output is {value.shape}, expected {shape}")
        if not np.isfinite(value).all():
            raise BundleError(f"the encoder's {name} output holds NaN or infinite values")


# ---------------------------------------------------------------------------- retrieval


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` slots divided in proportion to `weights` (largest remainders, ties to the
    earlier slot): the counts sum to `total` exactly and each is floor or ceil of its share.

    Plain Python: K is a handful, and numpy's per-call overhead would cost more than this.
    """
    mass = float(sum(weights))
    shares = [float(w) / mass * total for w in weights] if mass > 0 else [total / len(weights)] * len(weights)
    counts = [int(share) for share in shares]  # floor: shares are not negative
    for k in sorted(range(len(shares)), key=lambda k: counts[k] - shares[k])[: total - sum(counts)]:
        counts[k] += 1
    return counts


def merge(rows: list[list[int]], scores: np.ndarray, shares: Sequence[float], excluded: set[int],
          top_n: int, by_share: float = 1.0) -> list[int]:
    """One user's K candidate rankings ([K][depth] rows, [K, depth] scores) -> top_n rows.

    Steps 2 and 3 of the module docstring (the caller orders the result). `by_share` < 1
    divides only that part of the list by the shares and merges the rest by score
    (0: MIND's merge; the benchmark measures it, the service divides the whole list).
    """
    chosen: list[int] = []
    taken: set[int] = set()
    slots = apportion(math.floor(by_share * top_n + 0.5), shares)  # half up, not to even
    for k in sorted(range(len(shares)), key=lambda k: -shares[k]):  # stable: the earlier slot first
        need = slots[k]
        for row in rows[k] if need else ():
            if row >= 0 and row not in excluded and row not in taken:
                taken.add(row)
                chosen.append(row)
                need -= 1
                if need == 0:
                    break
    if len(chosen) < top_n:
        depth = scores.shape[1]
        for flat in np.argsort(-scores, axis=None, kind="stable").tolist():
            row = rows[flat // depth][flat % depth]
            if row >= 0 and row not in excluded and row not in taken:
                taken.add(row)
                chosen.append(row)
                if len(chosen) == top_n:
                    break
    return chosen


def share_of_list(interest_merge: str, by_share: float = 1.0) -> float:
    """The part of the list divided among the interests by share (`merge`'s `by_share`):
    none for interest_merge "score" (MIND / SINE-label's K*N merge), else `by_share`."""
    if interest_merge not in INTEREST_MERGES:
        raise ValueError(f"interest_merge must be one of {INTEREST_MERGES}, not {interest_merge!r}")
    return 0.0 if interest_merge == "score" else by_share


def shares_of(weights: np.ndarray, assignment: np.ndarray, lengths: Sequence[int],
              diversity: Sequence[float]) -> np.ndarray:
    """s_k = (1 - d) e_k + d m_k per user ([B, K]): step 2 of the module docstring."""
    d = np.asarray(diversity, dtype=np.float64)[:, None]
    return (1 - d) * weights + d * click_shares(assignment, lengths)


def best_interest(items: np.ndarray, interests: np.ndarray, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the interest with the largest inner product and that product."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    products = items[rows] @ interests.T  # [n, K]
    best = products.argmax(axis=1)
    return best, products[np.arange(len(rows)), best]


def click_shares(assignment: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Each interest's share of each user's clicks: the mean of P(k|t) over the real clicks
    (the last `lengths[j]` columns of the left-padded batch), [B, K], rows summing to 1."""
    width = assignment.shape[1]
    real = np.arange(width)[None, :] >= width - np.asarray(lengths)[:, None]  # [B, S]
    totals = (assignment * real[:, :, None]).sum(axis=1)
    return totals / np.maximum(totals.sum(axis=1, keepdims=True), 1e-12)


def retrieve(search, items: np.ndarray, interests: np.ndarray, shares: np.ndarray,
             excluded: Sequence[set[int]], top_n: Sequence[int], depth: int,
             by_shares: Sequence[float]) -> list[tuple[list[int], list[float]]]:
    """Rows and scores, best first, for each user: one search over all users x K interests.

    `search` is an `ItemSearch`; `interests` [B, K, D]; `shares` [B, K] divide the lists;
    `by_shares` is `merge`'s `by_share` of each user (`share_of_list` of its interest_merge).
    """
    users, k, dim = interests.shape
    scores, rows = search.search(interests.reshape(users * k, dim), depth)
    scores, rows = scores.reshape(users, k, -1), rows.reshape(users, k, -1)
    all_shares = np.asarray(shares).tolist()
    out = []
    for j in range(users):
        chosen = merge(rows[j].tolist(), scores[j], all_shares[j], excluded[j], top_n[j], by_shares[j])
        _, best_scores = best_interest(items, interests[j], chosen)
        order = np.argsort(-best_scores, kind="stable")
        out.append(([chosen[i] for i in order.tolist()], best_scores[order].tolist()))
    return out


# ---------------------------------------------------------------------------- explanations


@dataclass
class Interest:
    """One of a user's K interests, as an explanation shows it."""

    index: int  # the slot k: the k-th best-scoring concept of eq. (2)
    concept_id: int  # the prototype's row in the concept pool C
    weight: float  # e_k of eq. (7)
    clicks: list[str]  # clicks assigned to it (argmax_k P(k|t)), oldest first


@dataclass
class Explanation:
    interests: list[Interest]
    item_interest: list[int]  # per returned item: the interest slot that matches it best
    item_concept: list[int]
    item_score: list[float]  # that interest's inner product with the item


def explain(outputs: dict[str, np.ndarray], j: int, clicks: list[str], items: np.ndarray,
            rows: list[int]) -> Explanation:
    """User `j`'s explanation: its interests, their clicks, the interest behind each row.

    `clicks` are the raw ids the encoder saw, oldest first: the last len(clicks) columns
    of the left-padded batch.
    """
    interests, weights = outputs[INTEREST_VECTORS][j], outputs[INTEREST_WEIGHTS][j]
    concepts = outputs[CONCEPT_IDS][j].tolist()
    assignment = outputs[INTENTION_ASSIGNMENT][j, outputs[INTENTION_ASSIGNMENT].shape[1] - len(clicks):]
    owner = assignment.argmax(axis=1).tolist() if len(clicks) else []
    groups: list[list[str]] = [[] for _ in concepts]
    for click, k in zip(clicks, owner, strict=True):
        groups[k].append(click)
    best, scores = best_interest(items, interests, rows)
    return Explanation(
        interests=[Interest(k, int(concepts[k]), float(weights[k]), groups[k]) for k in range(len(concepts))],
        item_interest=best.tolist(), item_concept=[int(concepts[k]) for k in best.tolist()],
        item_score=scores.tolist())


NO_INTERESTS = Explanation([], [], [], [])
"""The explanation of a popularity fallback: no known click, so no interest inferred."""


def explanation_json(answer_items: list[dict], explanation: Explanation) -> list[dict]:
    """Adds each item's ``interest`` to `answer_items` (in place; None for a fallback's
    items, which no interest chose); returns the user's interests."""
    if not explanation.interests:
        for item in answer_items:
            item["interest"] = None
        return []
    for item, k, concept, score in zip(answer_items, explanation.item_interest,
                                       explanation.item_concept, explanation.item_score, strict=True):
        item["interest"] = {"index": k, "concept_id": concept, "score": score}
    return [{"index": i.index, "concept_id": i.concept_id, "weight": i.weight, "clicks": i.clicks}
            for i in explanation.interests]

