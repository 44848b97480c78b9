"""The matching logic, without HTTP: a loaded bundle answers batches of click sequences.

`LoadedModel` holds one bundle version's encoder, item table, index and id maps
together, so a request is always answered by one consistent version (the response's
`model_version` says which). `recommend` maps raw ids to indices (unknown ones are
reported, not fatal), encodes the users with a click in one batch, searches the index
for enough candidates to survive filtering, removes clicked and excluded items, and falls
back to popular items for users with no known click.

Business rules (`service.core.rules` builds them per request): a query's `constraint`
(attribute filter and unavailable items) is applied inside the search (`sine.filters`;
queries sharing one are searched as one batch), its `diversity` rule picks the top-N
from a deeper candidate list (`sine.diversity`). Both apply to the popular fallback too.

Queries asking for per-interest retrieval or explanations are answered from the encoder's
per-interest outputs (`service.interests`); constraints and diversity apply to them too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np

from service import interests
from sine import filters, search
from sine.bundle import (
    ENCODER_OUTPUT,
    INTENTION_ASSIGNMENT,
    INTEREST_OUTPUTS,
    INTEREST_VECTORS,
    INTEREST_WEIGHTS,
    Bundle,
    read_bundle,
)
from sine.concepts import ConceptAnalysis, analyse_bundle
from sine.diversity import DiversityRule
from sine.encoder import OnnxEncoder, prepare_clicks
from sine.errors import BundleError
from sine.search import IndexSpec, ItemSearch

log = logging.getLogger("sine.service")


@dataclass
class Query:
    """One recommendation request, after validation (raw ids, oldest click first)."""

    clicks: Sequence[str]
    top_n: int = 50
    exclude: Sequence[str] = ()
    exclude_clicked: bool = True
    _: KW_ONLY  # the options below by name only: positions would silently shift as they grow
    constraint: filters.Constraint | None = None  # rows it may get (filter, availability)
    diversity: DiversityRule | None = None
    retrieval: str = "aggregate"  # or "interests" (service.interests)
    interest_diversity: float = interests.DEFAULT_INTEREST_DIVERSITY
    interest_merge: str = "shares"  # or "score": MIND / SINE-label's K*N merge (service.interests)
    explain: bool = False


@dataclass
class Answer:
    item_ids: list[str]
    scores: list[float]
    unknown_clicks: list[str] = field(default_factory=list)
    fallback: bool = False
    explanation: interests.Explanation | None = None  # when the query asked to explain


class LoadedModel:
    """One bundle version, loaded and smoke-tested: encoder + item table + index."""

    _concepts: ConceptAnalysis | None = None
    _concepts_lock = threading.Lock()  # one computation at a time, whichever model asks

    def __init__(self, bundle: Bundle, onnx_threads: int = 1, faiss_threads: int = 1, gpu: str = "auto"):
        started = time.perf_counter()
        self.bundle = bundle
        self.version = bundle.version
        self.max_len = bundle.max_len
        self.num_items = bundle.num_items
        self.item_list = list(bundle.items)  # row -> raw id
        self.row_of = {item: row for row, item in enumerate(bundle.items)}  # raw id -> row (index - 1)
        self.popular_rows = np.argsort(-bundle.popularity, kind="stable")
        self.encoder = OnnxEncoder(bundle.encoder_path, threads=onnx_threads,
                                   gpu="off" if gpu == "off" else gpu)
        if self.encoder.dim != bundle.dim:
            raise BundleError(f"{bundle.path}: the encoder outputs D={self.encoder.dim}, the item "
                              f"table has D={bundle.dim}")
        faiss = search.faiss_module()
        if faiss_threads:
            faiss.omp_set_num_threads(faiss_threads)
        on_gpu = gpu != "off" and search.gpu_count() > 0
        section = bundle.manifest.get("index")
        items = np.ascontiguousarray(bundle.item_embeddings, dtype=np.float32)
        if bundle.index_path is not None and section:
            self.index_spec = IndexSpec.from_dict(section)
            index = search.load_index(bundle.index_path.read_bytes(), self.index_spec, gpu=on_gpu)
            if index.ntotal != bundle.num_items or index.d != bundle.dim:
                raise BundleError(f"{bundle.path}: the index holds {index.ntotal} x {index.d} "
                                  f"vectors, the item table {bundle.num_items} x {bundle.dim}")
        else:
            log.warning("%s has no index: searching exactly (run `sine build-index` for a measured "
                        "index)", bundle.path)
            self.index_spec = IndexSpec("flat")
            index = search.exact_index(items, on_gpu)
        # GPU searches serialized; deeper than measured or rows left short: exact (sine.search)
        self.index = ItemSearch(index, items, exact_beyond=search.trusted_depth(section))
        if self.index.exact_beyond is not None:
            log.info("searches deeper than k=%d are exact (index recall below the floor beyond it)",
                     self.index.exact_beyond)
        self.index_on = "gpu" if on_gpu and self.index_spec.type not in search.CPU_ONLY_TYPES else "cpu"
        self.attributes = bundle.attributes
        self.default_retrieval = interests.default_retrieval(bundle.manifest, self.encoder.outputs)
        self.default_interest_merge = interests.default_interest_merge(bundle.manifest)
        self.constraints = filters.Constraints(
            bundle.attributes, bundle.num_items,
            bundle.attributes.unavailable_rows() if bundle.attributes is not None else None)
        self.filtered = filters.FilteredSearch(self.index, self.index_spec, section)
        # which per-interest outputs the encoder has (older bundles: some or none)
        self.interest_outputs = [name for name in INTEREST_OUTPUTS if name in self.encoder.outputs]
        self.by_share = 1.0  # the share of a list divided among interests (benchmarks compare 0)
        self._smoke_test()
        log.info("loaded bundle %s (%s items, %s index on %s, encoder on %s) in %.2f s", self.version,
                 f"{self.num_items:,}", self.index_spec.type, self.index_on, self.encoder.provider,
                 time.perf_counter() - started)

    @classmethod
    def load(cls, path: str | Path, onnx_threads: int = 1, faiss_threads: int = 1,
             gpu: str = "auto") -> LoadedModel:
        return cls(read_bundle(path), onnx_threads, faiss_threads, gpu)

    def _smoke_test(self) -> None:
        """Encode and search a few real queries: a bundle that cannot is refused now."""
        queries = self.bundle.sample_queries()[:8]
        queries = queries[queries[:, -1] > 0] if len(queries) else queries
        if len(queries) == 0:
            queries = np.array([[1]], dtype=np.int64)
        try:
            vectors = self.encoder.encode(queries)
            _, rows = self.index.search_index(vectors, 5)
        except Exception as exc:  # onnxruntime / faiss errors
            raise BundleError(f"{self.bundle.path}: smoke test failed: {exc}") from None
        if not np.isfinite(vectors).all() or (rows < 0).all():
            raise BundleError(f"{self.bundle.path}: smoke test failed: the encoder or the index "
                              "returns no usable result")
        if self.interest_outputs:
            try:
                interests.check_outputs(self.encoder.encode_all(queries), queries, self.bundle.dim)
            except BundleError as exc:
                raise BundleError(f"{self.bundle.path}: smoke test failed: {exc}") from None

    def missing_outputs(self, retrieval: str, explain: bool) -> list[str]:
        """Encoder outputs a query with these options needs and this bundle lacks."""
        return interests.missing_outputs(self.encoder.outputs, retrieval, explain)

    def rows_of(self, item_ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Rows of the known ids (in order) and the unknown ids."""
        get = self.row_of.get
        rows, unknown = [], []
        for item in item_ids:
            row = get(item)
            if row is None:
                unknown.append(item)
            else:
                rows.append(row)
        return rows, unknown

    def recommend(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch of queries with one encoder call and one index search per retrieval
        mode and constraint in the batch (the aggregate vectors; every interest of the
        "interests" users)."""
        for q in queries:
            missing = self.missing_outputs(q.retrieval, q.explain)
            if missing:  # the API refuses such requests first (422); this guards other callers
                raise BundleError(f"bundle {self.version}: the encoder lacks {', '.join(missing)}")
        prepared = []
        for q in queries:
            rows, unknown = self.rows_of(q.clicks)
            excluded = set(self.rows_of(q.exclude)[0])
            if q.exclude_clicked:
                excluded.update(rows)
            prepared.append((rows, unknown, excluded, min(q.top_n, self.num_items)))

        with_clicks = [i for i, p in enumerate(prepared) if p[0]]
        answers: list[Answer | None] = [None] * len(queries)
        if with_clicks:
            sequences = [[r + 1 for r in prepared[i][0][-self.max_len:]] for i in with_clicks]
            batch = prepare_clicks(sequences, self.max_len)
            modes = [queries[i].retrieval for i in with_clicks]
            if "interests" in modes or any(queries[i].explain for i in with_clicks):
                outputs = self.encoder.encode_all(batch)
            else:
                outputs = {ENCODER_OUTPUT: self.encoder.encode(batch)}
            groups: dict[tuple[str, int], list[int]] = {}  # positions in with_clicks
            for j, i in enumerate(with_clicks):
                groups.setdefault((modes[j], id(queries[i].constraint)), []).append(j)
            for (mode, _), members in groups.items():
                users = [with_clicks[j] for j in members]
                searcher = self._searcher(queries[users[0]].constraint)
                if mode == "aggregate":
                    self._recommend_aggregate(queries, prepared, users, outputs[ENCODER_OUTPUT][members],
                                              searcher, answers)
                else:
                    shares = interests.shares_of(
                        outputs[INTEREST_WEIGHTS][members], outputs[INTENTION_ASSIGNMENT][members],
                        [len(sequences[j]) for j in members], [queries[i].interest_diversity for i in users])
                    self._recommend_per_interest(queries, prepared, users, outputs[INTEREST_VECTORS][members],
                                                 shares, searcher, answers)
        for i, (_, unknown, excluded, top_n) in enumerate(prepared):
            if answers[i] is None:
                answers[i] = self.popular(top_n, excluded, unknown, queries[i])
                if queries[i].explain:
                    answers[i].explanation = interests.NO_INTERESTS  # type: ignore[union-attr]
        for j, i in enumerate(with_clicks):
            if queries[i].explain:
                answer = answers[i]
                clicks = [self.item_list[r - 1] for r in sequences[j]]
                rows = [self.row_of[item] for item in answer.item_ids]  # type: ignore[union-attr]
                answer.explanation = interests.explain(  # type: ignore[union-attr]
                    outputs, j, clicks, self.index.items, rows)
        return answers  # type: ignore[return-value]

    def _searcher(self, constraint: filters.Constraint | None):
        """What answers `.search(vectors, k)` for queries under `constraint`: the index, or the
        filtered search (`sine.filters`) bound to that constraint."""
        if constraint is None:
            return self.index
        return _ConstrainedSearch(self.filtered, constraint)

    def _recommend_aggregate(self, queries: Sequence[Query], prepared: list, users: list[int],
                             vectors: np.ndarray, searcher, answers: list[Answer | None]) -> None:
        """The paper's inference: one search with the aggregated user vectors."""
        wanted = max(self._depth(queries[i], prepared[i][3]) + len(prepared[i][2]) for i in users)
        k = min(wanted, self.num_items)
        scores, rows = searcher.search(vectors, k)
        # plain Python lists: indexing numpy scalars one by one costs more than the search
        all_rows, all_scores = rows.tolist(), scores.tolist()
        for j, i in enumerate(users):
            _, unknown, excluded, top_n = prepared[i]
            depth = self._depth(queries[i], top_n)
            kept, values = [], []
            for row, score in zip(all_rows[j], all_scores[j], strict=True):
                if row >= 0 and row not in excluded:
                    kept.append(row)
                    values.append(score)
                    if len(kept) == depth:
                        break
            answers[i] = self._answer(queries[i], kept, values, top_n, unknown, fallback=False)

    def _recommend_per_interest(self, queries: Sequence[Query], prepared: list, users: list[int],
                                vectors: np.ndarray, shares: np.ndarray, searcher,
                                answers: list[Answer | None]) -> None:
        """Per-interest retrieval: one search for all these users' interests, each list
        divided among them by `shares` (`service.interests`); a diversity rule then picks the
        top-N from the deeper merged list it asks for."""
        wanted = [self._depth(queries[i], prepared[i][3]) for i in users]
        depth = min(max(w + len(prepared[i][2]) for w, i in zip(wanted, users, strict=True)), self.num_items)
        results = interests.retrieve(searcher, self.index.items, vectors, shares,
                                     [prepared[i][2] for i in users], wanted, depth,
                                     [interests.share_of_list(queries[i].interest_merge, self.by_share)
                                      for i in users])
        for i, (rows, scores) in zip(users, results, strict=True):
            answers[i] = self._answer(queries[i], rows, scores, prepared[i][3], prepared[i][1],
                                      fallback=False)

    @staticmethod
    def _depth(query: Query, top_n: int) -> int:
        """How many candidates a query needs: top_n, or the diversity rule's deeper pool."""
        return top_n if query.diversity is None else query.diversity.pool(top_n)

    def _answer(self, query: Query, rows: list[int], scores: list[float], top_n: int,
                unknown: list[str], fallback: bool) -> Answer:
        if query.diversity is not None:
            chosen = query.diversity.choose(rows, scores, top_n)
            rows, scores = [rows[p] for p in chosen], [scores[p] for p in chosen]
        names = self.item_list
        return Answer([names[row] for row in rows[:top_n]], scores[:top_n], unknown, fallback=fallback)

    def popular(self, top_n: int, excluded: set[int], unknown: list[str], query: Query | None = None) -> Answer:
        """The cold-start answer: most clicked items, scored by their training clicks."""
        query = query or Query(())
        candidates = self.popular_rows
        if query.constraint is not None:
            candidates = candidates[query.constraint.allows(candidates)]
        depth = self._depth(query, top_n)
        chosen = []
        for row in candidates:
            if int(row) not in excluded:
                chosen.append(int(row))
                if len(chosen) == depth:
                    break
        return self._answer(query, chosen, self.bundle.popularity[chosen].astype(float).tolist(), top_n,
                            unknown, fallback=True)

    def concepts(self) -> ConceptAnalysis:
        """This bundle's concepts (`sine.concepts`), computed on first use and kept with the
        model: they depend on the bundle alone, so a request never recomputes them, and a
        bundle nobody inspects costs nothing at load. `NoConceptPool` when it has none."""
        with self._concepts_lock:
            if self._concepts is None:
                self._concepts = analyse_bundle(self.bundle)
            return self._concepts


class _ConstrainedSearch:
    """An `ItemSearch`-like `.search(vectors, k)` bound to one constraint (`sine.filters`)."""

    def __init__(self, filtered: filters.FilteredSearch, constraint: filters.Constraint):
        self.filtered, self.constraint = filtered, constraint

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.filtered.search(vectors, k, self.constraint)
