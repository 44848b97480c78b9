"""SINE's learned concepts, inspectable: which items each prototype captures, its nearest items.

Torch-free (numpy only): the service (GET /model/concepts), `sine inspect` and
bench/concept_nmi.py all compute from the same arrays, a bundle's ``concepts.npy``
(the pool C of eq. 2, [L, D]) and the item vectors X that eqs. (1)-(2) see
(`Bundle.concept_item_table`; for a run directory, `trainer.export.concept_pool`).

**What "captures" means.** Eq. (2) activates prototypes by the inner product
s = <C, z_u>, where z_u is the attention-pooled sequence of eq. (1). For a sequence of
one item i the attention of eq. (1) is a softmax over one position, so z_u = x_i exactly,
and the concept that item alone activates first is argmax_l <C_l, x_i>. That is the
assignment used here: item i is captured by the prototype with the largest inner product
with its input embedding (ties: the lowest id). It is the model's own activation rule,
not a post-hoc clustering, and it partitions the catalog (every item has one concept),
which is what the paper's NMI (Table 5) needs. The inner product, not the cosine, decides:
eq. (2) uses the inner product, so a prototype with a larger norm wins more items, as it
wins more users. (Users activate K concepts from a whole sequence; the activation counts
over validation users are a different statistic, `metrics.json` -> ``concepts``.)

**Nearest items.** Listed by cosine similarity between the prototype and the item
vectors, as the paper's case study does (section 4.4, Figure 3: "the top-8 closest items
under their cosine similarity"). The inner product would list the same few large-norm
items (the popular ones) for most prototypes. Each nearest item says whether the
prototype also captures it.

**SINE-cate: captured versus labelled.** When the pool is the item categories (prototype l
is the mean embedding of the items labelled l), "prototype Drama captures 900 items" does
not say that 900 items are Drama: captures follow the inner product, so mostly the
prototypes' norms. Such a pool also reports, per prototype, ``labelled`` (catalog items
carrying its label: the category's size) and ``captured_labelled`` (those of its captured
items that carry its label), and in the summary the share of labelled items captured by a
prototype of one of their own labels. They need the item attributes (the bundle's
``item_attributes.json``, the column the training's ``prototypes_from`` names); without
them these keys are absent.

Memory is bounded whatever the catalog size: items are scored in chunks of at most
`CHUNK_SCORES` scores, keeping a running top-k per prototype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sine.attributes import Column
from sine.bundle import CONCEPTS, Bundle
from sine.errors import SineError

NEAREST_MAX = 50
"""Nearest items kept per prototype: the most a report or the endpoint can show."""
CHUNK_SCORES = 1 << 22
"""Scores held at once (items x prototypes per chunk): 16 MB of float32."""
CAPTURE_RULE = ("each item is captured by the prototype with the largest inner product <C_l, x_i> "
                "(eq. 2 with the item alone as the sequence)")
LABEL_RULE = ("labelled: catalog items carrying the prototype's label (the category's size); "
              "captured_labelled: the captured items that carry it")
NEAREST_RULE = "cosine similarity between the prototype and the item vectors (the paper's Figure 3)"


class NoConceptPool(SineError):
    """The model has no concept pool to inspect (not SINE, or exported without it)."""


def no_pool_message(bundle: Bundle) -> str:
    model = bundle.manifest.get("model")
    if model != "sine":
        return f"{bundle.path}: the {model} model has no concept pool (only SINE learns one)"
    return (f"{bundle.path}: this SINE bundle has no concept pool ({CONCEPTS} is absent: exported "
            "before bundles carried it); re-export its run with `sine export`")


def arrays_of(bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """The concept pool [L, D] and the item vectors it is compared with [M, D]."""
    if bundle.concepts is None:
        raise NoConceptPool(no_pool_message(bundle))
    return bundle.concepts, bundle.concept_item_table


def _chunk_rows(num_prototypes: int) -> int:
    return max(1, CHUNK_SCORES // max(num_prototypes, 1))


def assign_items(prototypes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[M] int64: for each item row, the prototype that captures it (argmax of <C_l, x_i>)."""
    prototypes = np.asarray(prototypes, dtype=np.float32)
    items = np.asarray(items, dtype=np.float32)
    out = np.empty(len(items), dtype=np.int64)
    step = _chunk_rows(len(prototypes))
    for start in range(0, len(items), step):
        out[start:start + step] = np.argmax(items[start:start + step] @ prototypes.T, axis=1)
    return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))  # a zero vector has cosine 0 with all


def nearest_items(prototypes: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per prototype, the `k` items of highest cosine: rows [L, k] and cosines [L, k], best first.

    Among equal cosines the lower row comes first, except at the k-th place, where which of
    several exactly equal cosines is kept is unspecified (each chunk is cut with argpartition).
    """
    protos = _unit(np.asarray(prototypes, dtype=np.float32))
    units = _unit(np.asarray(items, dtype=np.float32))
    k = max(1, min(k, len(units)))
    L = len(protos)
    best_rows = np.zeros((L, 0), dtype=np.int64)
    best_cos = np.zeros((L, 0), dtype=np.float32)
    step = _chunk_rows(L)
    for start in range(0, len(units), step):
        cos = protos @ units[start:start + step].T  # [L, chunk]
        rows = np.broadcast_to(np.arange(start, start + cos.shape[1]), cos.shape)
        if cos.shape[1] > k:  # only this chunk's k best can enter the running top-k
            cut = np.argpartition(-cos, k - 1, axis=1)[:, :k]
            cos, rows = np.take_along_axis(cos, cut, axis=1), np.take_along_axis(rows, cut, axis=1)
        cand_cos = np.concatenate([best_cos, cos], axis=1)
        cand_rows = np.concatenate([best_rows, rows], axis=1)
        # sort by (-cosine, row): lexsort's last key is the primary one
        order = np.lexsort((cand_rows, -cand_cos), axis=1)[:, :k]
        best_cos = np.take_along_axis(cand_cos, order, axis=1)
        best_rows = np.take_along_axis(cand_rows, order, axis=1)
    return best_rows, best_cos


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the distribution `counts` / sum."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class LabelAgreement:
    """SINE-cate: the labels the prototypes stand for beside the items they capture."""

    labelled: np.ndarray  # [L] int64, catalog items carrying prototype l's label
    captured_labelled: np.ndarray  # [L] int64, items prototype l captures that carry its label
    labelled_items: int  # items carrying at least one of the pool's labels

    def summary(self) -> dict[str, Any]:
        hits = int(self.captured_labelled.sum())  # each item has one captor: no item counts twice
        return {
            "labelled_items": self.labelled_items,
            # of the items with a pool label, the share captured by a prototype of one of their labels
            # None, not 0: with no labelled item there is no share to give
            "captured_by_own_label": round(hits / self.labelled_items, 6) if self.labelled_items else None,
        }


def label_agreement(assignment: np.ndarray, labels: Sequence[str], column: Column) -> LabelAgreement:
    """Compare the captures with the labels: prototype l stands for ``labels[l]``, a value of
    the item attribute `column` (aligned with the item rows of `assignment`). A label that no
    item carries in `column` counts 0 labelled items."""
    if column.num_rows != len(assignment):
        raise SineError(f"item attributes describe {column.num_rows} items, the concept pool's "
                        f"item table has {len(assignment)}")
    missing = len(labels)  # the prototype of a code no prototype stands for: none
    prototype_of_code = np.full(len(column.values), missing, dtype=np.int64)
    for prototype, label in enumerate(labels):
        code = column.code_of(label)
        if code is not None:
            prototype_of_code[code] = prototype
    rows = column.row_of_pair()
    prototypes = prototype_of_code[column.codes.astype(np.int64)]
    pooled = prototypes != missing
    rows, prototypes = rows[pooled], prototypes[pooled]
    agree = np.asarray(assignment)[rows] == prototypes
    L = len(labels)
    return LabelAgreement(
        labelled=np.bincount(prototypes, minlength=L).astype(np.int64),
        captured_labelled=np.bincount(prototypes[agree], minlength=L).astype(np.int64),
        labelled_items=len(np.unique(rows)),
    )


@dataclass(frozen=True)
class ConceptAnalysis:
    """The concepts of one concept pool: who captures what, and each prototype's nearest items."""

    assignment: np.ndarray  # [M] int64, the prototype that captures item row r
    counts: np.ndarray  # [L] int64, items each prototype captures
    nearest_rows: np.ndarray  # [L, k] int64, item rows by cosine, best first
    nearest_cosine: np.ndarray  # [L, k] float32
    prototype_norms: np.ndarray  # [L] float32
    agreement: LabelAgreement | None = None  # SINE-cate with the item attributes at hand

    @property
    def num_prototypes(self) -> int:
        return len(self.counts)

    @property
    def num_items(self) -> int:
        return len(self.assignment)

    def ranked(self) -> np.ndarray:
        """Prototype ids, most items captured first (ties: lower id first)."""
        return np.lexsort((np.arange(self.num_prototypes), -self.counts))

    def summary(self) -> dict[str, Any]:
        L, M = self.num_prototypes, self.num_items
        active = self.counts[self.counts > 0]
        h = entropy(self.counts)
        return {
            "prototypes": L,
            "items": M,
            "active_prototypes": len(active),  # capture at least one item
            "entropy": round(h, 6),  # nats, of the share of items each prototype captures
            # 1.0: all L prototypes capture equally many items; 0.0: one captures all
            "entropy_normalized": round(h / math.log(L), 6) if L > 1 else 0.0,
            "effective_concepts": round(math.exp(h), 3),  # exp(entropy): equally sized concepts
            "largest_share": round(float(self.counts.max()) / M, 6) if M else 0.0,
            "median_active_size": float(np.median(active)) if len(active) else 0.0,
            **(self.agreement.summary() if self.agreement is not None else {}),
        }

    def concept(self, concept_id: int, items: list[str], nearest: int,
                labels: list[str] | None = None) -> dict[str, Any]:
        """One prototype as JSON: its size and its `nearest` closest items (raw ids), and its
        label when the pool has labels (SINE-cate: `Bundle.concept_labels`), with how many
        items carry that label when the attributes are known (`LabelAgreement`)."""
        rows = self.nearest_rows[concept_id, :nearest]
        agreement = self.agreement
        return {
            "id": int(concept_id),
            **({"label": labels[concept_id]} if labels is not None else {}),
            "captured": int(self.counts[concept_id]),
            **({"labelled": int(agreement.labelled[concept_id]),
                "captured_labelled": int(agreement.captured_labelled[concept_id])}
               if agreement is not None else {}),
            "share": round(float(self.counts[concept_id]) / self.num_items, 6),
            "norm": round(float(self.prototype_norms[concept_id]), 6),
            "nearest": [
                {"item_id": items[row], "cosine": round(float(cos), 6),
                 "captured": bool(self.assignment[row] == concept_id)}
                for row, cos in zip(rows.tolist(), self.nearest_cosine[concept_id, :nearest].tolist(),
                                    strict=True)
            ],
        }


def analyse(prototypes: np.ndarray, items: np.ndarray, nearest: int = NEAREST_MAX,
            labels: Sequence[str] | None = None, label_column: Column | None = None) -> ConceptAnalysis:
    """Assign every item to its concept and find every prototype's `nearest` items; with a
    SINE-cate pool's `labels` and the item attribute they are values of, compare the two."""
    prototypes = np.asarray(prototypes, dtype=np.float32)
    if prototypes.ndim != 2 or np.asarray(items).ndim != 2 or prototypes.shape[1] != np.asarray(items).shape[1]:
        raise SineError(f"concept pool {prototypes.shape} and item table {np.asarray(items).shape} "
                        "must be [L, D] and [M, D]")
    if labels is not None and len(labels) != len(prototypes):
        raise SineError(f"{len(labels)} concept labels for a pool of {len(prototypes)} prototypes")
    assignment = assign_items(prototypes, items)
    rows, cosine = nearest_items(prototypes, items, nearest)
    agreement = (label_agreement(assignment, labels, label_column)
                 if labels is not None and label_column is not None else None)
    return ConceptAnalysis(
        assignment=assignment,
        counts=np.bincount(assignment, minlength=len(prototypes)).astype(np.int64),
        nearest_rows=rows,
        nearest_cosine=cosine,
        prototype_norms=np.linalg.norm(prototypes, axis=1),
        agreement=agreement,
    )


def label_column_of(bundle: Bundle) -> Column | None:
    """The item attribute a SINE-cate bundle's prototypes are labels of (the training's
    ``prototypes_from``), when the bundle carries it; None for other bundles."""
    attribute = (bundle.manifest.get("training") or {}).get("prototypes_from")
    if bundle.concept_labels is None or bundle.attributes is None or not attribute:
        return None
    return bundle.attributes.columns.get(attribute)


def analyse_bundle(bundle: Bundle, nearest: int = NEAREST_MAX) -> ConceptAnalysis:
    """`analyse` on a bundle's concept pool; `NoConceptPool` when it has none."""
    return analyse(*arrays_of(bundle), nearest=nearest, labels=bundle.concept_labels,
                   label_column=label_column_of(bundle))


def normalized_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """NMI of two labelings of the same items: I(A; B) / ((H(A) + H(B)) / 2).

    The arithmetic-mean normalisation (scikit-learn's default). 1.0 when both labelings
    are constant (nothing to disagree on), 0.0 when exactly one is.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two labelings of the same items needed, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no items to compare")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.bincount(ai * (bi.max() + 1) + bi).astype(np.float64)
    h_a, h_b, h_ab = entropy(np.bincount(ai)), entropy(np.bincount(bi)), entropy(joint)
    if h_a == 0.0 and h_b == 0.0:
        return 1.0
    if h_a == 0.0 or h_b == 0.0:
        return 0.0
    mutual = max(h_a + h_b - h_ab, 0.0)  # I(A; B) = H(A) + H(B) - H(A, B)
    return float(mutual / ((h_a + h_b) / 2))


def shuffled_nmi(assignment: np.ndarray, labels: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """NMI of `draws` random assignments with the same cluster sizes as `assignment`: the
    chance level its NMI is compared with (NMI grows with the number of clusters by itself)."""
    rng = np.random.default_rng(seed)
    return np.array([normalized_mutual_information(rng.permutation(assignment), labels)
                     for _ in range(draws)])
