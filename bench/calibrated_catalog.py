"""A large item catalog whose neighbourhood structure is fitted to a real trained item table.

Why: an ANN index's speed at a given recall depends on how items cluster and how far
a query's 50th neighbour is from its 1st, not on the catalog's size alone. Today's
synthetic catalog (bench/index_bench.py) is a guess; this one is fitted, so a 1M-item
benchmark says something about what a real 1M catalog would do.

The fit (on a real item table E [N, D] and its validation users' vectors U):

1. k-means with C = N / ITEMS_PER_CLUSTER clusters (faiss): centroids, cluster sizes,
   per-cluster residual scales (RMS distance of members to their centroid).
2. New centroids for the large catalog are drawn from a Gaussian with the real
   centroids' mean and covariance; cluster sizes and residual scales are resampled
   from the real ones (so items per cluster and cluster tightness keep the real
   distribution); a residual is the cluster's scale times a draw from the real
   residuals' covariance (whitened to unit RMS), so its directions follow the real table.
3. Item norms are mapped, by quantile, onto the real table's norm distribution (the
   model's norms carry popularity; inner-product search feels them).
4. Queries are the real users "mapped the same way": each real user vector is split
   into its least-squares mix of its 3 highest-scoring real centroids plus a residual;
   the mapped query is the same weights over 3 synthetic centroids plus the same
   residual: the first drawn by cluster size (users click popular clusters more), the
   others at the same neighbour quantile of the first as the real user's were. They are held
   out: no query is an item of the index.

`fit` and `generate` are deterministic for a seed. bench/index_1m.py uses them and
prints the neighbour profile of real vs generated catalogs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ITEMS_PER_CLUSTER = 40
MIX = 3


@dataclass
class CatalogModel:
    """What the generator keeps of a real table (all fitted, nothing hand-set)."""

    centre_mean: np.ndarray  # [D]
    centre_chol: np.ndarray  # [D, D] Cholesky factor of the centroids' covariance
    residual_chol: np.ndarray  # [D, D] residual covariance, scaled to unit mean squared norm
    sizes: np.ndarray  # [C] real cluster sizes
    scales: np.ndarray  # [C] real per-cluster RMS residual norm
    norms: np.ndarray  # [N] sorted real item norms
    query_weights: np.ndarray  # [Q, MIX] users' least-squares weights on their top centroids
    query_residuals: np.ndarray  # [Q, D]
    query_quantiles: np.ndarray  # [Q, MIX - 1] where the other centroids rank among the first's neighbours


def _kmeans(vectors: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    km = faiss.Kmeans(vectors.shape[1], clusters, niter=20, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=10_000)
    km.train(vectors)
    _, assign = km.index.search(vectors, 1)
    return km.centroids.astype(np.float32), assign[:, 0]


def _chol(cov: np.ndarray) -> np.ndarray:
    cov = (cov + cov.T) / 2 + 1e-6 * np.eye(len(cov)) * np.trace(cov) / len(cov)
    return np.linalg.cholesky(cov).astype(np.float32)


def _neighbour_ranks(centroids: np.ndarray, first: np.ndarray) -> np.ndarray:
    """[len(first), C]: rank of every centroid among the neighbours (by inner product) of `first`."""
    order = np.argsort(-(centroids[first] @ centroids.T), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks


def _mix(users: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: least-squares weights on its MIX best-scoring centroids, the residual, and
    where its 2nd..MIXth centroids rank among the 1st one's neighbours (as a quantile)."""
    top = np.argsort(-(users @ centroids.T), axis=1)[:, :MIX]
    weights = np.zeros((len(users), MIX), np.float32)
    residuals = np.zeros_like(users)
    for row, (u, ids) in enumerate(zip(users, top, strict=True)):
        basis = centroids[ids].T  # [D, MIX]
        w, *_ = np.linalg.lstsq(basis, u, rcond=None)
        weights[row] = w
        residuals[row] = u - basis @ w
    ranks = _neighbour_ranks(centroids, top[:, 0])
    quantiles = np.take_along_axis(ranks, top[:, 1:], axis=1) / len(centroids)
    return weights, residuals, quantiles.astype(np.float32)


def fit(items: np.ndarray, users: np.ndarray, seed: int = 0) -> CatalogModel:
    """Fit the generator to a real item table and its users' vectors."""
    items = np.ascontiguousarray(items, dtype=np.float32)
    clusters = max(8, len(items) // ITEMS_PER_CLUSTER)
    centroids, assign = _kmeans(items, clusters, seed)
    sizes = np.bincount(assign, minlength=clusters)
    residual = items - centroids[assign]
    sq = (residual ** 2).sum(axis=1)
    scales = np.sqrt(np.bincount(assign, weights=sq, minlength=clusters) / np.maximum(sizes, 1))
    keep = sizes > 0
    res_cov = np.cov(residual, rowvar=False)
    res_cov /= np.trace(res_cov)  # a draw z @ chol.T has mean squared norm 1
    weights, residuals, quantiles = _mix(np.asarray(users, np.float32), centroids)
    return CatalogModel(
        centre_mean=centroids[keep].mean(axis=0),
        centre_chol=_chol(np.cov(centroids[keep], rowvar=False)),
        residual_chol=_chol(res_cov),
        sizes=sizes[keep],
        scales=scales[keep].astype(np.float32),
        norms=np.sort(np.linalg.norm(items, axis=1)).astype(np.float32),
        query_weights=weights,
        query_residuals=residuals,
        query_quantiles=quantiles,
    )


def generate(model: CatalogModel, num_items: int, num_queries: int, seed: int = 0,
             chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(items [num_items, D], held-out queries [num_queries, D]) drawn from `model`."""
    rng = np.random.default_rng(seed)
    dim = len(model.centre_mean)
    # clusters until their (resampled) sizes cover the catalog
    sizes: list[int] = []
    while sum(sizes) < num_items:
        sizes.extend(rng.choice(model.sizes, size=1024).tolist())
    sizes_arr = np.array(sizes)
    clusters = int(np.searchsorted(np.cumsum(sizes_arr), num_items) + 1)
    sizes_arr = sizes_arr[:clusters]
    centres = (model.centre_mean + rng.standard_normal((clusters, dim)).astype(np.float32)
               @ model.centre_chol.T).astype(np.float32)
    scales = rng.choice(model.scales, size=clusters).astype(np.float32)
    member = np.repeat(np.arange(clusters), sizes_arr)[:num_items]
    items = np.empty((num_items, dim), np.float32)
    for start in range(0, num_items, chunk):
        m = member[start:start + chunk]
        z = rng.standard_normal((len(m), dim)).astype(np.float32) @ model.residual_chol.T
        items[start:start + chunk] = centres[m] + scales[m, None] * z
    # norms onto the real distribution, by rank
    norms = np.linalg.norm(items, axis=1)
    ranks = np.argsort(np.argsort(norms))
    target = np.interp((ranks + 0.5) / num_items, (np.arange(len(model.norms)) + 0.5) / len(model.norms),
                       model.norms)
    items *= (target / np.maximum(norms, 1e-12))[:, None].astype(np.float32)
    # queries: real users' mix weights and residuals over synthetic centroids
    # (the item-norm mapping rescales items, not centroids: centroids are recomputed)
    counts = np.bincount(member, minlength=clusters)
    sums = np.zeros((clusters, dim), np.float64)
    np.add.at(sums, member, items)
    centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    pick = rng.integers(0, len(model.query_weights), size=num_queries)
    first = rng.choice(clusters, size=num_queries, p=counts / counts.sum())
    # the other centroids at the same neighbour quantile of the first as the real user's
    order = np.argsort(-(centroids[first] @ centroids.T), axis=1)
    at = np.minimum((model.query_quantiles[pick] * clusters).astype(int), clusters - 1)
    chosen = np.concatenate([first[:, None], np.take_along_axis(order, at, axis=1)], axis=1)
    queries = (np.einsum("qm,qmd->qd", model.query_weights[pick], centroids[chosen])
               + model.query_residuals[pick]).astype(np.float32)
    return np.ascontiguousarray(items), np.ascontiguousarray(queries)
