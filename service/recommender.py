"""The matching logic, without HTTP: a loaded bundle answers batches of click sequences.

`LoadedModel` holds one bundle version's encoder, item table, index and id maps
together, so a request is always answered by one consistent version (the response's
`model_version` says which). `recommend` maps raw ids to indices (unknown ones are
reported, not fatal), encodes the users with a click in one batch, searches the index
for enough candidates to survive filtering, removes clicked and excluded items, and falls
back to popular items for users with no known click. Queries asking for per-interest
retrieval or explanations are answered from the encoder's per-interest outputs
(`service.interests`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service import interests
from sine import search
from sine.bundle import (
    ENCODER_OUTPUT,
    INTENTION_ASSIGNMENT,
    INTEREST_OUTPUTS,
    INTEREST_VECTORS,
    INTEREST_WEIGHTS,
    Bundle,
    read_bundle,
)
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
    retrieval: str = "aggregate"  # or "interests" (service.interests)
    interest_diversity: float = interests.DEFAULT_INTEREST_DIVERSITY
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
        self.index_on = "gpu" if on_gpu and self.index_spec.type != "hnsw" else "cpu"
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
        mode in the batch (the aggregate vectors; every interest of the "interests" users)."""
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
            aggregate = [j for j, mode in enumerate(modes) if mode == "aggregate"]
            per_interest = [j for j, mode in enumerate(modes) if mode == "interests"]
            if aggregate:
                self._recommend_aggregate(prepared, [with_clicks[j] for j in aggregate],
                                          outputs[ENCODER_OUTPUT][aggregate], answers)
            if per_interest:
                users = [with_clicks[j] for j in per_interest]
                shares = interests.shares_of(
                    outputs[INTEREST_WEIGHTS][per_interest], outputs[INTENTION_ASSIGNMENT][per_interest],
                    [len(sequences[j]) for j in per_interest], [queries[i].interest_diversity for i in users])
                self._recommend_per_interest(prepared, users, outputs[INTEREST_VECTORS][per_interest],
                                             shares, answers)
        for i, (_, unknown, excluded, top_n) in enumerate(prepared):
            if answers[i] is None:
                answers[i] = self.popular(top_n, excluded, unknown)
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

    def _recommend_aggregate(self, prepared: list, users: list[int], vectors: np.ndarray,
                             answers: list[Answer | None]) -> None:
        """The paper's inference: one search with the aggregated user vectors."""
        wanted = max(prepared[i][3] + len(prepared[i][2]) for i in users)
        k = min(wanted, self.num_items)
        scores, rows = self.index.search(vectors, k)
        # plain Python lists: indexing numpy scalars one by one costs more than the search
        all_rows, all_scores, names = rows.tolist(), scores.tolist(), self.item_list
        for j, i in enumerate(users):
            _, unknown, excluded, top_n = prepared[i]
            ids, values = [], []
            for row, score in zip(all_rows[j], all_scores[j], strict=True):
                if row >= 0 and row not in excluded:
                    ids.append(names[row])
                    values.append(score)
                    if len(ids) == top_n:
                        break
            answers[i] = Answer(ids, values, unknown, fallback=False)

    def _recommend_per_interest(self, prepared: list, users: list[int], vectors: np.ndarray,
                                shares: np.ndarray, answers: list[Answer | None]) -> None:
        """Per-interest retrieval: one search for all these users' interests, each list
        divided among them by `shares` (`service.interests`)."""
        depth = min(max(prepared[i][3] + len(prepared[i][2]) for i in users), self.num_items)
        results = interests.retrieve(self.index, self.index.items, vectors, shares,
                                     [prepared[i][2] for i in users], [prepared[i][3] for i in users],
                                     depth, self.by_share)
        names = self.item_list
        for i, (rows, scores) in zip(users, results, strict=True):
            answers[i] = Answer([names[r] for r in rows], scores, prepared[i][1], fallback=False)

    def popular(self, top_n: int, excluded: set[int], unknown: list[str]) -> Answer:
        """The cold-start answer: most clicked items, scored by their training clicks."""
        chosen = []
        for row in self.popular_rows:
            if int(row) not in excluded:
                chosen.append(int(row))
                if len(chosen) == top_n:
                    break
        return Answer([self.item_list[row] for row in chosen],
                      self.bundle.popularity[chosen].astype(float).tolist(),
                      unknown, fallback=True)
