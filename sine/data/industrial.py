"""A synthetic log shaped like the paper's industrial ones, at millions of items.

`sine.data.synthetic` draws a small demo log click by click; this module draws logs of
tens of millions of clicks in vectorised chunks of users and writes them as a Parquet
dataset partitioned by day (``day=YYYY-MM-DD/part-NNNNN.parquet``, the layout of the
event store, deploy/events.py), so neither the generator nor `sine train` holds the
whole log in memory. The shape, from what the paper says of its logs (section 4.1,
Table 2: many items, few clicks each, users with several interests):

- items are ranked by popularity, item ``r`` (0-based) has weight ``1 / (r + 1) ** zipf``,
  so the click count of the r-th most popular item falls as a power law with slope
  ``-zipf`` on a log-log plot;
- every item belongs to one latent cluster (the ``category`` column); cluster sizes
  are uneven (a power law with `cluster_size_zipf`);
- a user has a few interests, clusters drawn by their total popularity, mixed with
  Dirichlet weights; so the marginal click probability of an item stays its Zipf weight;
- a user's clicks come in sessions (time gaps of `session_gap_s` on average between
  sessions, `click_gap_s` within one): a session has one interest, and each of its clicks
  stays in it with probability `stay`, otherwise it is drawn from another of the user's
  interests (the mixed sequences SINE is built for).

Users are generated until `num_clicks` clicks are reached (the last chunk is cut).
Deterministic for a given spec (seed included) and chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from sine.data.logs import ITEM, TIME, USER

DAY_SECONDS = 86_400
START = 1_767_225_600  # 2026-01-01 00:00 UTC: where the log's clock starts


@dataclass(frozen=True)
class IndustrialSpec:
    """Everything that shapes an industrial-style log (defaults: 1M items, 10M clicks)."""

    num_items: int = 1_000_000
    num_clicks: int = 10_000_000
    num_clusters: int = 2_000
    zipf: float = 0.6
    """Slope of the rank-frequency curve: video.csv.gz's is -0.60 between ranks 10 and M/10
    (beauty -0.48, toys -0.41; bench/results/synth_calibration.md)."""
    cluster_size_zipf: float = 0.5
    min_interests: int = 2
    max_interests: int = 6
    mean_sessions: float = 4.0
    mean_session_length: float = 5.0
    stay: float = 0.85
    days: int = 30
    session_gap_s: float = 2 * DAY_SECONDS
    click_gap_s: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_items < 1 or self.num_clicks < 1:
            raise ValueError("need at least one item and one click")
        if not 1 <= self.num_clusters <= self.num_items:
            raise ValueError("need 1 <= clusters <= items")
        if not 1 <= self.min_interests <= self.max_interests:
            raise ValueError("need 1 <= min_interests <= max_interests")
        if not 0.0 <= self.stay <= 1.0:
            raise ValueError("stay must be in [0, 1]")
        if self.mean_sessions < 1 or self.mean_session_length < 1:
            raise ValueError("mean sessions and session length must be at least 1")

    @property
    def mean_user_length(self) -> float:
        return self.mean_sessions * self.mean_session_length


@dataclass(frozen=True)
class Catalog:
    """The items' popularity weights and clusters, laid out for vectorised sampling."""

    weights: np.ndarray  # [M] Zipf weight of item r (r = popularity rank)
    cluster: np.ndarray  # [M] cluster of each item
    by_cluster: np.ndarray  # [M] item ids sorted by cluster
    cumulative: np.ndarray  # [M] cumulative weights along by_cluster
    cluster_start: np.ndarray  # [C + 1] span of cluster c in by_cluster
    cluster_weight: np.ndarray  # [C] total weight of each cluster

    def sample(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of `clusters`, drawn by Zipf weight within that cluster."""
        before = np.where(self.cluster_start[clusters] > 0,
                          self.cumulative[np.maximum(self.cluster_start[clusters] - 1, 0)], 0.0)
        target = before + rng.random(len(clusters)) * self.cluster_weight[clusters]
        position = np.searchsorted(self.cumulative, target, side="right")
        # float round-off at a cluster's right edge: stay inside the cluster
        position = np.clip(position, self.cluster_start[clusters], self.cluster_start[clusters + 1] - 1)
        return self.by_cluster[position]


def catalog(spec: IndustrialSpec) -> Catalog:
    """The catalog of `spec`: the generator's first draws (so `item_clusters` agrees)."""
    rng = np.random.default_rng([spec.seed, 0])
    weights = 1.0 / np.arange(1, spec.num_items + 1, dtype=np.float64) ** spec.zipf
    size_weights = 1.0 / np.arange(1, spec.num_clusters + 1, dtype=np.float64) ** spec.cluster_size_zipf
    # every cluster gets one item, the rest by the uneven sizes; items shuffled over clusters
    cluster = np.concatenate([np.arange(spec.num_clusters),
                              rng.choice(spec.num_clusters, spec.num_items - spec.num_clusters,
                                         p=size_weights / size_weights.sum())])
    cluster = cluster[rng.permutation(spec.num_items)]
    by_cluster = np.argsort(cluster, kind="stable")
    cumulative = np.cumsum(weights[by_cluster])
    cluster_start = np.concatenate([[0], np.cumsum(np.bincount(cluster, minlength=spec.num_clusters))])
    cluster_weight = np.bincount(cluster, weights=weights, minlength=spec.num_clusters)
    return Catalog(weights, cluster, by_cluster, cumulative, cluster_start, cluster_weight)


def _user_chunk(spec: IndustrialSpec, cat: Catalog, first_user: int, users: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Clicks of users first_user .. first_user + users - 1 as columns (time-ordered per user)."""
    kmax = min(spec.max_interests, spec.num_clusters)
    kmin = min(spec.min_interests, kmax)
    n_interests = rng.integers(kmin, kmax + 1, size=users)
    # interests: clusters by total popularity (Gumbel top-k = sampling without replacement)
    log_p = np.log(cat.cluster_weight / cat.cluster_weight.sum())
    if spec.num_clusters > 64 * kmax:  # sample a candidate pool, then top-k within it
        pool = rng.choice(spec.num_clusters, size=(users, 8 * kmax), p=np.exp(log_p) / np.exp(log_p).sum())
        # duplicates in the pool are pushed down so that interests are distinct clusters
        pool_sorted = np.sort(pool, axis=1)
        dup = np.zeros_like(pool, dtype=bool)
        dup[:, 1:] = pool_sorted[:, 1:] == pool_sorted[:, :-1]
        keys = rng.random(pool.shape) - dup * 2.0
        interests = np.take_along_axis(pool_sorted, np.argsort(-keys, axis=1)[:, :kmax], axis=1)
    else:
        keys = log_p[None, :] + rng.gumbel(size=(users, spec.num_clusters))
        interests = np.argsort(-keys, axis=1)[:, :kmax]
    mix = rng.gamma(1.0, size=(users, kmax))
    mix[np.arange(kmax)[None, :] >= n_interests[:, None]] = 0.0
    mix_cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)

    sessions = rng.geometric(1.0 / spec.mean_sessions, size=users)
    session_owner = np.repeat(np.arange(users), sessions)
    session_len = rng.geometric(1.0 / spec.mean_session_length, size=len(session_owner))
    n_sessions = len(session_owner)
    session_interest = (rng.random(n_sessions)[:, None] > mix_cum[session_owner]).sum(axis=1)
    session_interest = np.minimum(session_interest, n_interests[session_owner] - 1)

    click_session = np.repeat(np.arange(n_sessions), session_len)
    owner = session_owner[click_session]
    stray = rng.random(len(click_session)) >= spec.stay
    drawn = (rng.random(len(click_session))[:, None] > mix_cum[owner]).sum(axis=1)
    drawn = np.minimum(drawn, n_interests[owner] - 1)
    slot = np.where(stray, drawn, session_interest[click_session])
    clusters = interests[owner, slot]
    items = cat.sample(clusters, rng)

    # time: each user starts at a random point; a session starts an exponential gap after
    # the previous one ended, and its clicks follow each other by exponential gaps
    click_gap = rng.exponential(spec.click_gap_s, size=len(click_session))
    first_click = np.r_[0, np.cumsum(session_len)[:-1]]
    click_gap[first_click] = 0.0
    within = np.cumsum(click_gap)
    within -= np.repeat(within[first_click], session_len)
    duration = within[first_click + session_len - 1]
    first_session = np.r_[0, np.cumsum(sessions)[:-1]]
    session_gap = rng.exponential(spec.session_gap_s, size=n_sessions)
    session_gap[1:] += duration[:-1]  # after the previous session's last click
    session_gap[first_session] = rng.uniform(0, spec.days * DAY_SECONDS, size=users)
    user_clock = np.cumsum(session_gap)
    user_base = np.repeat(user_clock[first_session] - session_gap[first_session], sessions)
    session_start = user_clock - user_base
    times = START + session_start[click_session] + within
    return {"user": first_user + owner, "item": items, "cluster": cat.cluster[items],
            "time": np.floor(times).astype(np.int64)}


def chunks(spec: IndustrialSpec, users_per_chunk: int = 50_000,
           progress: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """The log as successive chunks of whole users (the last one cut at `num_clicks`)."""
    cat = catalog(spec)
    rng = np.random.default_rng([spec.seed, 1])
    done, first_user = 0, 0
    bar = tqdm(total=spec.num_clicks, unit="click", unit_scale=True, desc="synth",
               disable=not progress, mininterval=1.0)
    while done < spec.num_clicks:
        chunk = _user_chunk(spec, cat, first_user, users_per_chunk, rng)
        left = spec.num_clicks - done
        if len(chunk["user"]) > left:
            chunk = {name: column[:left] for name, column in chunk.items()}
        done += len(chunk["user"])
        first_user += users_per_chunk
        bar.update(len(chunk["user"]))
        yield chunk
    bar.close()


def _table(chunk: dict[str, np.ndarray]) -> pa.Table:
    """Arrow columns with the log's names; ids as strings (u12, i34), as real ids are."""
    def ids(prefix: str, values: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")

    return pa.table({USER: ids("u", chunk["user"]), ITEM: ids("i", chunk["item"]),
                     TIME: pa.array(chunk["time"]), "category": ids("c", chunk["cluster"])})


def write_parquet_dataset(spec: IndustrialSpec, out: str | Path, users_per_chunk: int = 50_000,
                          progress: bool = True) -> int:
    """Write the log under `out` as ``day=YYYY-MM-DD/part-NNNNN.parquet``; returns the clicks.

    One file per chunk and day; a chunk's rows of a day are one file, so memory is one
    chunk of users whatever the log size.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for number, chunk in enumerate(chunks(spec, users_per_chunk, progress)):
        day = (chunk["time"] - START) // DAY_SECONDS
        order = np.argsort(day, kind="stable")  # users stay in time order within a day
        table = _table(chunk).take(pa.array(order))
        day = day[order]
        cuts = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(day)], strict=True):
            stamp = np.datetime64(START + int(day[lo]) * DAY_SECONDS, "s").astype("datetime64[D]")
            folder = out / f"day={stamp}"
            folder.mkdir(exist_ok=True)
            pq.write_table(table.slice(lo, hi - lo), folder / f"part-{number:05d}.parquet")
        written += len(day)
    return written


def item_clusters(spec: IndustrialSpec) -> tuple[np.ndarray, np.ndarray]:
    """(item ids 'iN', cluster of each): the planted structure, for attribute files and tests."""
    cat = catalog(spec)
    return np.char.add("i", np.arange(spec.num_items).astype(str)), cat.cluster


def item_attributes(spec: IndustrialSpec) -> pd.DataFrame:
    """The item attribute file of the log (``item_id, category``, every catalog item): the
    cluster under the log's own name for it, so `sine train --attributes FILE
    --prototypes-from category` (SINE-cate) and the filters can use the planted clusters."""
    ids, clusters = item_clusters(spec)
    return pd.DataFrame({ITEM: ids, "category": np.char.add("c", clusters.astype(str))})


def expected_users(spec: IndustrialSpec) -> int:
    return math.ceil(spec.num_clicks / spec.mean_user_length)
