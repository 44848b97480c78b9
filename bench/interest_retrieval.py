"""Per-interest retrieval against the aggregated vector, through the bundle path.

    .venv/bin/python bench/interest_retrieval.py --run ml-100k=runs/issue12/ml-100k \\
        --run beauty=runs/issue12/beauty

Each run is exported to a bundle (ONNX encoder; no index, so searches are exact) and its
test split is answered by `service.recommender.LoadedModel.recommend`, the code that
serves POST /recommend: each test user's last n clicks before the target as raw ids,
clicked items left in the ranking (history kept, RecBole's protocol), top 50 -> HR@50.
The trainer's own HR@50 (PyTorch, history kept) is printed beside the aggregate figure as
a check that the bundle path reproduces it.

Variants: ``aggregate`` (eq. 8, the paper's inference); ``interests`` with
``interest_diversity`` 0, 0.25, 0.5, 0.75 and 1 (the list divided among the interests by
their weights e_k, by their click shares m_k, or a mix); and, for reference, the K
rankings merged by score alone (MIND's and the paper's SINE-label merge).

Genre coverage (ml-100k, genres from ../shared/data/ml-100k.items.csv.gz): top_n=20
requests; the mean number of distinct genres among the 20 items, the mean share of the
genres of a user's input clicks that the 20 items cover, and the genre miscalibration
(Steck, RecSys 2018: KL divergence of the list's genre distribution from the input
clicks', each item's weight spread over its genres, the list's smoothed with 1% of the
clicks'; lower is better). For scale: the distinct genres of the 20 input clicks and of
20 random items. Also reported per dataset:
how distinct the K interests are (mean pairwise cosine), the mean top weight e_k and the
mean top click share. Writes bench/results/interest_retrieval.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service import interests  # noqa: E402
from service.recommender import LoadedModel, Query  # noqa: E402
from sine.bundle import INTENTION_ASSIGNMENT, INTEREST_VECTORS, INTEREST_WEIGHTS  # noqa: E402
from sine.encoder import prepare_clicks  # noqa: E402
from sine_cli.app import setup_logging  # noqa: E402
from trainer.export import export_bundle  # noqa: E402
from trainer.run import load_data, load_run  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GENRES = DATA / "ml-100k.items.csv.gz"
VARIANTS = {  # name: (retrieval, interest_diversity, share of the list divided among interests)
    "aggregate": ("aggregate", None, 1.0),
    "interests, merged by score (MIND / SINE-label)": ("interests", 0.0, 0.0),
    **{f"interests, interest_diversity={d:g}": ("interests", d, 1.0) for d in (0.0, 0.25, 0.5, 0.75, 1.0)},
}
BATCH = 256


def answer_all(model: LoadedModel, sequences: list[list[str]], top_n: int, retrieval: str,
               diversity: float | None, by_share: float) -> list[list[str]]:
    model.by_share = by_share
    options = {"interest_diversity": diversity} if diversity is not None else {}
    out = []
    for start in range(0, len(sequences), BATCH):
        queries = [Query(s, top_n=top_n, exclude_clicked=False, retrieval=retrieval, **options)
                   for s in sequences[start:start + BATCH]]
        out.extend(a.item_ids for a in model.recommend(queries))
    return out


def interest_shape(model: LoadedModel, inputs: np.ndarray) -> dict:
    """How distinct and how concentrated the interests are, over the test inputs."""
    cosines, top_weight, top_share = [], [], []
    for start in range(0, len(inputs), BATCH):
        batch = inputs[start:start + BATCH]
        out = model.encoder.encode_all(batch)
        phi = out[INTEREST_VECTORS] / np.linalg.norm(out[INTEREST_VECTORS], axis=2, keepdims=True)
        gram = phi @ phi.transpose(0, 2, 1)
        k = gram.shape[1]
        cosines.extend(((gram.sum((1, 2)) - k) / (k * (k - 1))).tolist())
        top_weight.extend(out[INTEREST_WEIGHTS].max(1).tolist())
        shares = interests.click_shares(out[INTENTION_ASSIGNMENT], (batch > 0).sum(1))
        top_share.extend(shares.max(1).tolist())
    return {"mean_pairwise_cosine": float(np.mean(cosines)), "mean_top_weight": float(np.mean(top_weight)),
            "mean_top_click_share": float(np.mean(top_share)), "interests": int(k)}


def genre_table() -> dict[str, set[str]]:
    import pandas as pd

    frame = pd.read_csv(GENRES, dtype=str)
    return {row.item_id: set(str(row.categories).split("|")) for row in frame.itertuples()}


def genre_distribution(items: list[str], genres: dict[str, set[str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        for genre in genres[item]:
            out[genre] = out.get(genre, 0.0) + 1.0 / (len(genres[item]) * len(items))
    return out


def miscalibration(clicks: list[str], listed: list[str], genres: dict[str, set[str]]) -> float:
    """KL(p || q~), p over the clicks' genres, q~ = 0.99 q + 0.01 p over the list's."""
    p, q = genre_distribution(clicks, genres), genre_distribution(listed, genres)
    return sum(pg * np.log(pg / (0.99 * q.get(g, 0.0) + 0.01 * pg)) for g, pg in p.items())


def genre_figures(sequences: list[list[str]], lists: list[list[str]], genres: dict[str, set[str]]) -> dict:
    distinct, covered, kl = [], [], []
    for clicks, got in zip(sequences, lists, strict=True):
        listed = set().union(*(genres[i] for i in got))
        clicked = set().union(*(genres[i] for i in clicks))
        distinct.append(len(listed))
        covered.append(len(listed & clicked) / len(clicked))
        kl.append(miscalibration(clicks, got, genres))
    return {"top20_distinct_genres": float(np.mean(distinct)),
            "top20_history_genre_coverage": float(np.mean(covered)),
            "top20_genre_miscalibration": float(np.mean(kl))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="DATASET=RUN_DIR",
                        help="a trained SINE run; DATASET names ../shared/data/DATASET.csv.gz")
    parser.add_argument("--capped", action="append", default=[], metavar="DATASET",
                        help="mark this dataset's run as capped (trained with fewer epochs than the defaults)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "interest_retrieval.json")
    args = parser.parse_args()
    setup_logging()
    report = {"commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "default_interest_diversity": interests.DEFAULT_INTEREST_DIVERSITY, "datasets": {}}
    for spec in args.run:
        dataset, run_dir = spec.split("=", 1)
        run = load_run(run_dir)
        data = load_data(DATA / f"{dataset}.csv.gz", run.config, vocabulary=run.vocabulary)
        evalset = data.evaluation_set("test", run.config.max_len)
        ids = run.vocabulary.ids
        sequences = [[ids[i - 1] for i in row if i > 0] for row in evalset.inputs]
        targets = [ids[i - 1] for i in evalset.targets]
        with tempfile.TemporaryDirectory() as tmp:
            model = LoadedModel(export_bundle(run_dir, Path(tmp) / "bundle"))
        entry = {"run": str(run_dir), "users": len(targets), "epochs": run.metrics.get("epochs"),
                 "best_epoch": run.metrics.get("best_epoch"), "capped": dataset in args.capped,
                 "training": {k: run.config.to_dict()[k] for k in ("dim", "interests", "prototypes", "tau")},
                 "trainer_hr@50_history_kept": run.metrics["test_history_kept"]["hr@50"],
                 "interests": interest_shape(model, prepare_clicks(
                     [[i for i in row if i > 0] for row in evalset.inputs], run.config.max_len)),
                 "variants": {}}
        genres = genre_table() if dataset == "ml-100k" else None
        if genres is not None:
            rng = np.random.default_rng(0)
            entry["genres_for_scale"] = {
                "input_clicks_distinct_genres": float(np.mean(
                    [len(set().union(*(genres[i] for i in s))) for s in sequences])),
                "random_20_items_distinct_genres": float(np.mean(
                    [len(set().union(*(genres[i] for i in rng.choice(ids, 20, replace=False))))
                     for _ in sequences]))}
        for name, (retrieval, diversity, by_share) in VARIANTS.items():
            started = time.perf_counter()
            lists = answer_all(model, sequences, 50, retrieval, diversity, by_share)
            result = {"hr@50": float(np.mean([t in got for t, got in zip(targets, lists, strict=True)])),
                      "seconds": round(time.perf_counter() - started, 2)}
            if genres is not None:
                top20 = answer_all(model, sequences, 20, retrieval, diversity, by_share)
                result.update(genre_figures(sequences, top20, genres))
            entry["variants"][name] = result
            print(dataset, name, json.dumps(result), flush=True)
        base = entry["variants"]["aggregate"]
        for result in entry["variants"].values():
            result["hr@50_vs_aggregate"] = result["hr@50"] / base["hr@50"] - 1
            if "top20_distinct_genres" in result:
                result["genres_vs_aggregate"] = result["top20_distinct_genres"] / base["top20_distinct_genres"] - 1
        report["datasets"][dataset] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = ["Test split, history kept, through `LoadedModel.recommend` (ONNX encoder, exact search); "
             f"service default: interest_diversity={report['default_interest_diversity']}. "
             "Targets: HR@50 within 5% of aggregate or better; "
             "top-20 distinct genres (ml-100k) +20% or more. One seed per dataset (no spread).", ""]
    for dataset, entry in report["datasets"].items():
        shape = entry["interests"]
        lines += [f"**{dataset}**{' (CAPPED: fewer epochs than the defaults)' if entry['capped'] else ''}: "
                  f"{entry['users']:,} test users, run {entry['run']} ({entry['epochs']} epochs, best "
                  f"{entry['best_epoch']}; D={entry['training']['dim']}, K={entry['training']['interests']}, "
                  f"L={entry['training']['prototypes']}); trainer HR@50 (history kept) "
                  f"{entry['trainer_hr@50_history_kept']:.4f}. Interests: mean pairwise cosine "
                  f"{shape['mean_pairwise_cosine']:.3f}, mean top weight {shape['mean_top_weight']:.3f}, "
                  f"mean top click share {shape['mean_top_click_share']:.3f} (uniform: "
                  f"{1 / shape['interests']:.3f}).", "",
                  "| retrieval | HR@50 | vs aggregate | top-20 distinct genres | vs aggregate | "
                  "top-20 share of the clicks' genres | top-20 genre miscalibration (KL) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in entry["variants"].items():
            genres = (f"{r['top20_distinct_genres']:.2f} | {r['genres_vs_aggregate']:+.1%} | "
                      f"{r['top20_history_genre_coverage']:.3f} | {r['top20_genre_miscalibration']:.3f}"
                      ) if "top20_distinct_genres" in r else " | | | "
            lines.append(f"| {name} | {r['hr@50']:.4f} | {r['hr@50_vs_aggregate']:+.1%} | {genres} |")
        if "genres_for_scale" in entry:
            scale = entry["genres_for_scale"]
            lines += ["", f"For scale: the 20 input clicks span {scale['input_clicks_distinct_genres']:.2f} "
                      f"distinct genres, 20 random items {scale['random_20_items_distinct_genres']:.2f} "
                      "(of 19)."]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
