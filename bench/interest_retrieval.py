"""Per-interest retrieval against the aggregated vector, through the bundle path.

One run per dataset (n=1, no spread):

    .venv/bin/python bench/interest_retrieval.py --run ml-100k=runs/issue12/ml-100k \\
        --run beauty=runs/issue12/beauty

Several seeds of a dataset (the project's standard for a benchmark: at least 3), each
trained with its own `--seed`, e.g. `sine train --data ../shared/data/ml-100k.csv.gz
--out runs/ir/ml-100k-s1 --seed 1`, then one `--run` per seed:

    .venv/bin/python bench/interest_retrieval.py --run ml-100k=runs/ir/ml-100k-s0 \\
        --run ml-100k=runs/ir/ml-100k-s1 --run ml-100k=runs/ir/ml-100k-s2

Every run is evaluated on its own and kept in the JSON (its seed from config.json's
`train.seed`, its epochs and best epoch); the markdown gives per dataset the mean and the
sample standard deviation over the runs of every figure, with n. A relative figure ("vs
aggregate") is computed within each run, against that run's own aggregate, then averaged.
A run marked `--capped` (the dataset name marks all its runs, a RUN_DIR one run) or whose
training was interrupted is listed but never averaged in; a dataset with no other run shows
each such run's own figures, marked.

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
from sine.errors import SineError  # noqa: E402
from sine_cli.app import setup_logging  # noqa: E402
from trainer.export import export_bundle  # noqa: E402
from trainer.run import CHECKPOINT, CONFIG, METRICS, POPULARITY, VOCABULARY, load_data, load_run  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GENRES = DATA / "ml-100k.items.csv.gz"
VARIANTS = {  # name: (retrieval, interest_diversity, share of the list divided among interests)
    "aggregate": ("aggregate", None, 1.0),
    "interests, merged by score (MIND / SINE-label)": ("interests", 0.0, 0.0),
    **{f"interests, interest_diversity={d:g}": ("interests", d, 1.0) for d in (0.0, 0.25, 0.5, 0.75, 1.0)},
}
BATCH = 256
SETTINGS = ("dim", "interests", "prototypes", "tau")  # shown in the report
NOT_MODEL_SETTINGS = frozenset({"seed", "device", "threads", "memory_budget", "init_from"})
"""config.json `train` keys that may differ between seeds of one configuration; every other
key (aggregation, attention power, precision, epochs, lr, ...) must be the same."""
COLUMNS = ("hr@50", "hr@50_vs_aggregate", "top20_distinct_genres", "genres_vs_aggregate",
           "top20_history_genre_coverage", "top20_genre_miscalibration")  # averaged over the seeds
SHAPE = ("mean_pairwise_cosine", "mean_top_weight", "mean_top_click_share")
HR_TARGET = -0.05  # HR@50 within 5% of the aggregate, or better
GENRE_TARGET = 0.20  # top-20 distinct genres (ml-100k) +20% or more


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


def parse_runs(specs: list[str], capped: list[str]) -> dict[str, list[tuple[str, bool]]]:
    """The `--run DATASET=RUN_DIR` specs grouped by dataset, in order, each with its capped mark.

    A `--capped` value names a dataset (all its runs) or a RUN_DIR given with `--run` (that run).
    Raises ValueError naming the argument: a spec without '=', a run given twice (it would count
    twice in the mean), a `--capped` that names nothing (a typo would leave a capped run averaged in).
    """
    runs: dict[str, list[tuple[str, bool]]] = {}
    for spec in specs:
        dataset, sep, run_dir = spec.partition("=")
        if not sep or not dataset or not run_dir:
            raise ValueError(f"--run {spec!r}: expected DATASET=RUN_DIR")
        if any(Path(run_dir).resolve() == Path(other).resolve() for group in runs.values() for other, _ in group):
            raise ValueError(f"--run {spec!r}: {run_dir} is given twice, it would count twice in the mean")
        runs.setdefault(dataset, []).append((run_dir, False))
    for name in capped:
        hits = 0
        for dataset, group in runs.items():
            for i, (run_dir, _) in enumerate(group):
                if name == dataset or Path(name).resolve() == Path(run_dir).resolve():
                    group[i] = (run_dir, True)
                    hits += 1
        if not hits:
            raise ValueError(f"--capped {name!r}: neither a dataset nor a RUN_DIR given with --run")
    return runs


def check_runs(dataset: str, trains: dict[str, dict], averaged: list[str]) -> None:
    """Refuse, before any evaluation, runs of one dataset that should not be averaged together.

    `trains` maps each RUN_DIR to its config.json `train` section; `averaged` are the RUN_DIRs
    that would enter the mean (not capped, not interrupted). Different model settings are not
    seeds of one configuration; two averaged runs with one seed are not independent.
    """
    keys = sorted({k for train in trains.values() for k in train} - NOT_MODEL_SETTINGS)
    differ = [k for k in keys if len({json.dumps(train.get(k), sort_keys=True) for train in trains.values()}) > 1]
    if differ:
        shown = "; ".join(f"{run_dir}: " + ", ".join(f"{k}={train.get(k)}" for k in differ)
                          for run_dir, train in trains.items())
        raise ValueError(f"{dataset}: the runs differ in model settings, not only in seed ({shown})")
    seeds: dict[object, str] = {}
    for run_dir in averaged:
        seed = trains[run_dir].get("seed")
        if seed in seeds:
            raise ValueError(f"{dataset}: {seeds[seed]} and {run_dir} both have seed {seed}; "
                             "the mean needs independent seeds (mark one --capped to list it only)")
        seeds[seed] = run_dir


def relative_to_aggregate(variants: dict[str, dict]) -> dict[str, dict]:
    """Each variant's figures with its change relative to this run's own aggregate added.

    Computed within a run, so that averaging over seeds gives the mean relative change
    (not the ratio of mean figures, which a seed with a high aggregate would dominate).
    """
    base = variants["aggregate"]
    out = {}
    for name, result in variants.items():
        result = {**result, "hr@50_vs_aggregate": result["hr@50"] / base["hr@50"] - 1}
        if "top20_distinct_genres" in result:
            result["genres_vs_aggregate"] = result["top20_distinct_genres"] / base["top20_distinct_genres"] - 1
        out[name] = result
    return out


def mean_sd(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (n - 1); sd None for one value: one seed shows no spread."""
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def excluded_because(run: dict) -> str | None:
    """Why a run is listed but not averaged in: capped (marked with --capped) or interrupted."""
    if run.get("capped"):
        return "capped"
    if run.get("interrupted"):
        return "interrupted"
    return None


def summarise(runs: list[dict], include_excluded: bool = False) -> dict:
    """Mean and sample sd over a dataset's runs of every figure, with n.

    Capped and interrupted runs are listed under "excluded" and left out of the mean, unless
    `include_excluded` (the markdown uses that to show one such run's own figures, n=1).
    The "vs aggregate" columns are the runs' own relative changes (`relative_to_aggregate`),
    averaged. A variant's column is summarised only if every averaged run has it.
    """
    kept = runs if include_excluded else [r for r in runs if excluded_because(r) is None]
    summary: dict = {"n": len(kept), "seeds": [r.get("seed") for r in kept],
                     "excluded": [] if include_excluded else
                     [{"run": r["run"], "seed": r.get("seed"), "reason": excluded_because(r)}
                      for r in runs if excluded_because(r) is not None]}
    if not kept:
        return summary
    summary["variants"] = {
        name: {column: mean_sd([r["variants"][name][column] for r in kept]) for column in COLUMNS
               if all(column in r["variants"].get(name, {}) for r in kept)}
        for name in kept[0]["variants"] if all(name in r["variants"] for r in kept)}
    summary["interests"] = {k: mean_sd([r["interests"][k] for r in kept]) for k in SHAPE}
    summary["trainer_hr@50_history_kept"] = mean_sd([r["trainer_hr@50_history_kept"] for r in kept])
    if all("genres_for_scale" in r for r in kept):
        summary["genres_for_scale"] = {k: mean_sd([r["genres_for_scale"][k] for r in kept])
                                       for k in kept[0]["genres_for_scale"]}
    return summary


def targets(summary: dict, variant: str) -> dict:
    """Whether the mean over the runs meets each target at `variant` (the service default).

    HR@50 within 5% of the aggregate or better; top-20 distinct genres +20% or more (only
    where the dataset has genres). "met" is judged on the mean alone, the sd shown beside it.
    """
    row = summary.get("variants", {}).get(variant)
    out: dict = {"variant": variant, "n": summary["n"]}
    if row is None:
        return out
    for column, goal in (("hr@50_vs_aggregate", HR_TARGET), ("genres_vs_aggregate", GENRE_TARGET)):
        if column in row:
            out[column] = {**row[column], "target": goal, "met": row[column]["mean"] >= goal}
    return out


def evaluate_run(dataset: str, run_dir: str, capped: bool) -> dict:
    """One run's figures: every variant through the bundle path, as for a single seed."""
    run = load_run(run_dir)
    data = load_data(DATA / f"{dataset}.csv.gz", run.config, vocabulary=run.vocabulary)
    evalset = data.evaluation_set("test", run.config.max_len)
    ids = run.vocabulary.ids
    sequences = [[ids[i - 1] for i in row if i > 0] for row in evalset.inputs]
    targets_ = [ids[i - 1] for i in evalset.targets]
    with tempfile.TemporaryDirectory() as tmp:
        model = LoadedModel(export_bundle(run_dir, Path(tmp) / "bundle"))
    entry = {"run": str(run_dir), "seed": run.info["train"].get("seed"), "users": len(targets_),
             "epochs": run.metrics.get("epochs"), "best_epoch": run.metrics.get("best_epoch"),
             "capped": capped, "interrupted": bool(run.metrics.get("interrupted")),
             "training": {k: run.config.to_dict()[k] for k in SETTINGS},
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
        result = {"hr@50": float(np.mean([t in got for t, got in zip(targets_, lists, strict=True)])),
                  "seconds": round(time.perf_counter() - started, 2)}
        if genres is not None:
            top20 = answer_all(model, sequences, 20, retrieval, diversity, by_share)
            result.update(genre_figures(sequences, top20, genres))
        entry["variants"][name] = result
        print(dataset, entry["seed"], name, json.dumps(result), flush=True)
    entry["variants"] = relative_to_aggregate(entry["variants"])
    return entry


def preflight(parser: argparse.ArgumentParser, runs: dict[str, list[tuple[str, bool]]]) -> None:
    """Every problem that would stop the benchmark or spoil its mean, before minutes of evaluation."""
    for dataset, group in runs.items():
        if not (DATA / f"{dataset}.csv.gz").is_file():
            parser.error(f"--run {dataset}=...: no {DATA / f'{dataset}.csv.gz'}")
        trains, averaged = {}, []
        for run_dir, capped in group:
            if not Path(run_dir).is_dir():
                parser.error(f"--run {dataset}={run_dir}: no such directory (give a run directory "
                             "written by `sine train --model sine`)")
            config = Path(run_dir) / CONFIG
            train = json.loads(config.read_text()).get("train", {}) if config.is_file() else {}
            if train.get("model", "sine") != "sine":
                parser.error(f"--run {dataset}={run_dir}: a {train['model']} run; this benchmark compares SINE's "
                             "per-interest retrieval (train with --model sine)")
            missing = [name for name in (CONFIG, METRICS, VOCABULARY, POPULARITY, CHECKPOINT)
                       if not (Path(run_dir) / name).is_file()]
            if missing:
                parser.error(f"--run {dataset}={run_dir}: not a finished SINE run, {', '.join(missing)} missing")
            trains[run_dir] = train
            metrics = json.loads((Path(run_dir) / METRICS).read_text())
            if "test_history_kept" not in metrics:
                parser.error(f"--run {dataset}={run_dir}: {METRICS} has no test_history_kept figures")
            interrupted = metrics.get("interrupted")
            if not capped and not interrupted:
                averaged.append(run_dir)
        try:
            check_runs(dataset, trains, averaged)
        except ValueError as error:
            parser.error(str(error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="DATASET=RUN_DIR",
                        help="a trained SINE run; DATASET names ../shared/data/DATASET.csv.gz; repeat a "
                             "dataset with one run per seed to get mean and sample sd")
    parser.add_argument("--capped", action="append", default=[], metavar="DATASET|RUN_DIR",
                        help="mark a dataset's runs (or one RUN_DIR) as capped (trained with fewer epochs "
                             "than the defaults): listed, not averaged in")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "interest_retrieval.json")
    args = parser.parse_args()
    try:
        runs = parse_runs(args.run, args.capped)
    except ValueError as error:
        parser.error(str(error))
    preflight(parser, runs)
    setup_logging()
    report = {"commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "default_interest_diversity": interests.DEFAULT_INTEREST_DIVERSITY, "datasets": {}}
    default = default_variant(report["default_interest_diversity"])
    for dataset, group in runs.items():
        try:
            entries = [evaluate_run(dataset, run_dir, capped) for run_dir, capped in group]
        except SineError as error:  # what the checks above could not see, e.g. a bundle that will not export
            parser.exit(1, f"{parser.prog}: error: {error}\n")
        summary = summarise(entries)
        report["datasets"][dataset] = {"runs": entries, "summary": summary, "targets": targets(summary, default)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def default_variant(diversity: float) -> str:
    """The variant the service answers with by default: where the targets are judged."""
    return f"interests, interest_diversity={diversity:g}"


def show(stat: dict[str, float | None], spec: str) -> str:
    """`mean ± sd` in `spec` (the sd unsigned), or the mean alone where there is no spread (n=1)."""
    text = format(stat["mean"], spec)
    return text if stat["sd"] is None else f"{text} ± {format(stat['sd'], spec.lstrip('+'))}"


def run_line(run: dict) -> str:
    why = excluded_because(run)
    mark = {"capped": ": CAPPED (fewer epochs than the defaults), listed, not averaged",
            "interrupted": ": INTERRUPTED (training stopped early), listed, not averaged"}.get(why or "", "")
    return (f"- seed {run.get('seed', '?')}: run {run['run']}, {run['epochs']} epochs (best {run['best_epoch']}), "
            f"trainer HR@50 (history kept) {run['trainer_hr@50_history_kept']:.4f}{mark}")


def section(dataset: str, runs: list[dict], summary: dict, default: str, label: str = "") -> list[str]:
    """One dataset's block: its runs, the mean ± sd table over the averaged ones, the targets."""
    n = summary["n"]
    first = runs[0]
    users = ", ".join(f"{u:,}" for u in sorted({r["users"] for r in runs}))
    training = first["training"]
    spread = ("n=1 run, no spread" if n == 1 else f"n={n} runs averaged, mean ± sample sd"
              + (" (fewer than the 3 seeds a benchmark needs)" if n < 3 else ""))
    shape = summary["interests"]
    lines = [f"**{dataset}**{label}: {users} test users; D={training['dim']}, K={training['interests']}, "
             f"L={training['prototypes']}; {spread}.", ""]
    lines += [run_line(r) for r in runs] + [""]
    lines += [f"Trainer HR@50 (history kept) {show(summary['trainer_hr@50_history_kept'], '.4f')}. Interests: "
              f"mean pairwise cosine {show(shape['mean_pairwise_cosine'], '.3f')}, mean top weight "
              f"{show(shape['mean_top_weight'], '.3f')}, mean top click share "
              f"{show(shape['mean_top_click_share'], '.3f')} (uniform: {1 / first['interests']['interests']:.3f}).",
              "",
              f"| retrieval (n={n}) | HR@50 | vs aggregate | top-20 distinct genres | vs aggregate | "
              "top-20 share of the clicks' genres | top-20 genre miscalibration (KL) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in summary["variants"].items():
        genres = (f"{show(r['top20_distinct_genres'], '.2f')} | {show(r['genres_vs_aggregate'], '+.1%')} | "
                  f"{show(r['top20_history_genre_coverage'], '.3f')} | "
                  f"{show(r['top20_genre_miscalibration'], '.3f')}") if "top20_distinct_genres" in r else " | | | "
        lines.append(f"| {name} | {show(r['hr@50'], '.4f')} | {show(r['hr@50_vs_aggregate'], '+.1%')} | {genres} |")
    lines += ["", target_line(targets(summary, default), label)]
    if "genres_for_scale" in summary:
        scale = summary["genres_for_scale"]
        lines += ["", f"For scale: the 20 input clicks span {show(scale['input_clicks_distinct_genres'], '.2f')} "
                  f"distinct genres, 20 random items {show(scale['random_20_items_distinct_genres'], '.2f')} "
                  "(of 19)."]
    return [*lines, ""]


def target_line(result: dict, label: str = "") -> str:
    """Whether the mean meets each target, in words."""
    judged = f"this run alone{label}" if label else f"by the mean of n={result['n']}"
    head = f"Targets at `{result['variant']}`, {judged}: "
    if "hr@50_vs_aggregate" not in result:
        return head + "not measured (no such variant)."
    parts = []
    for column, what, goal in (("hr@50_vs_aggregate", "HR@50 vs aggregate", "within 5% or better"),
                               ("genres_vs_aggregate", "top-20 distinct genres vs aggregate", "+20% or more")):
        if column not in result:
            parts.append(f"{what}: no genres for this dataset")
            continue
        figure = result[column]
        parts.append(f"{what} {show(figure, '+.1%')}, target {goal}: **{'met' if figure['met'] else 'not met'}**")
    return head + "; ".join(parts) + "."


def markdown(report: dict) -> str:
    default = default_variant(report["default_interest_diversity"])
    lines = ["Test split, history kept, through `LoadedModel.recommend` (ONNX encoder, exact search); "
             f"service default: interest_diversity={report['default_interest_diversity']}. "
             "Targets: HR@50 within 5% of aggregate or better; "
             "top-20 distinct genres (ml-100k) +20% or more; judged by the mean at the service default. "
             "Per dataset: mean ± sample standard deviation over its n runs (one seed each; n=1 shows no "
             "spread). Each \"vs aggregate\" is the run's own change relative to its own aggregate, "
             "averaged over the runs (its sd in percentage points). Capped or interrupted runs are listed, "
             "never averaged in; a dataset with no other run shows each of them alone, marked.", ""]
    for dataset, block in report["datasets"].items():
        summary = block["summary"]
        if summary["n"]:
            lines += section(dataset, block["runs"], summary, default)
            continue
        for run in block["runs"]:
            why = excluded_because(run)
            label = {"capped": " (CAPPED: fewer epochs than the defaults)",
                     "interrupted": " (INTERRUPTED: training stopped early)"}.get(why or "", "")
            lines += section(dataset, [run], summarise([run], include_excluded=True), default, label)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
