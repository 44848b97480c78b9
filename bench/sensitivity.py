"""Sensitivity of SINE to K, L and lambda (the paper's section 4.3, Figure 4), and its
Table 6 ablation (SINE-label, SINE-cate) beside plain SINE.

    python bench/sensitivity.py --datasets ml-100k --seeds 0 1 2 --jobs 2 --threads 1
    python bench/sensitivity.py --datasets beauty --seeds 0 --jobs 2 --threads 1
    python bench/sensitivity.py --table6 --datasets ml-100k --seeds 0 1 2
    python bench/sensitivity.py --summary-only            # markdown + plot from the JSONL

One factor at a time around the default (K = 4, L = 500, lambda = 0.5: the paper's
Amazon setting and its lambda), as the paper's figures vary one factor with the others
fixed: K in {4, 8}, L in {50, 500, 2000}, lambda in {0, 0.5, 1} is 6 configurations
(the default once), not the 18 of the full factorial, which 2 shared CPU cores cannot
run with several seeds. `--table6` runs SINE-label (`label_aware`: MIND's label-aware
attention for training, K*N retrieval merged by score for evaluation) and SINE-cate
(`prototypes_from`: the concept pool fixed to ml-100k's genres) beside the default.

The runner is bench/sine_variants.py's (one process per run, resumable JSON lines,
`--run-cap-s` stops a run at its best epoch so far and marks it "capped"). A run that
stopped at the epoch limit while its validation NDCG@10 was still within `patience`
epochs of its best did not early-stop: it is marked "capped (epoch limit)" here. Only
runs that stopped on their own enter the means; the others are listed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sine_variants import (  # noqa: E402  (one runner for every grid)
    DEFAULT_DATA,
    FINISHED,
    Job,
    dataset_paths,
    job_count,
    jobs_to_run,
    mean_spread,
    read_jsonl,
    run_grid,
    run_settings,
)

BASE = {"model": "sine", "dim": 32, "batch_size": 512, "lr": 3e-3, "max_len": 20, "loss": "full",
        "precision": "fp32", "epochs": 10, "patience": 2}
"""Every run's settings: n = 20 and the full softmax as bench/accuracy.py, but D = 32, batch
512 with learning rate 3e-3 and patience 2, so that an ml-100k run ends within about 15
minutes on one thread of a shared 2-core machine at load 20+ (one epoch of D = 64 took 3
minutes; with D = 32 and lr 1e-3 plain SINE still improved at epoch 6 of 2 minutes each)."""

DEFAULT = {"interests": 4, "prototypes": 500, "reg_weight": 0.5}
FACTORS: dict[str, tuple[str, list[Any]]] = {
    "interests": ("K", [4, 8]),
    "prototypes": ("L", [50, 500, 2000]),
    "reg_weight": ("lambda", [0.0, 0.5, 1.0]),
}
"""Each factor's symbol and the levels the paper's grid names (issue 13)."""

ITEM_FILE = "ml-100k.items.csv.gz"
TABLE6 = {
    "sine-label": {"label_aware": True},
    "sine-cate": {"prototypes_from": "categories"},  # attributes: DEFAULT_DATA / ITEM_FILE
}
METRICS = ("hr@20", "hr@50", "ndcg@20", "ndcg@50")
PLOT_METRIC = "hr@50"

log = logging.getLogger("sine.bench")


def variants(table6: bool, data: Path) -> dict[str, dict[str, Any]]:
    """Variant name -> its settings: the default, one per non-default factor level,
    and with `table6` the two ablations (the default is plain SINE for them)."""
    out = {"default": dict(DEFAULT)}
    if table6:  # first: the ablation is the question the grid's first hour answers
        out["sine-label"] = {**DEFAULT, **TABLE6["sine-label"]}
        out["sine-cate"] = {**DEFAULT, **TABLE6["sine-cate"], "attributes": str(data / ITEM_FILE)}
    for name, (symbol, levels) in FACTORS.items():
        for level in levels:
            if level != DEFAULT[name]:
                out[f"{symbol}={level:g}"] = {**DEFAULT, name: level}
    return out


def status_of(record: dict[str, Any]) -> str:
    """The runner's status, or "capped (epoch limit)" for a run the epoch limit stopped."""
    status = record.get("status", "failed")
    if status != FINISHED:
        return status
    settings = record.get("settings", {})
    limit, patience = settings.get("epochs"), settings.get("patience")
    if limit and patience and record["epochs"] >= limit and record["epochs"] - record["best_epoch"] < patience:
        return "capped (epoch limit)"
    return FINISHED


def factor_of(variant: str) -> list[tuple[str, Any]]:
    """The (factor, level) points a variant gives: the default is on every factor's line."""
    if variant == "default":
        return [(name, DEFAULT[name]) for name in FACTORS]
    for name, (symbol, _) in FACTORS.items():
        if variant.startswith(f"{symbol}="):
            return [(name, float(variant.split("=", 1)[1]))]
    return []


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (dataset, variant): mean and sample spread over the runs that stopped on their own."""
    latest = {r["key"]: r for r in records}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in latest.values():
        groups.setdefault((record["dataset"], record["variant"]), []).append(record)
    rows = []
    for (dataset, variant), group in sorted(groups.items()):
        done = [r for r in group if status_of(r) == FINISHED]
        row: dict[str, Any] = {
            "dataset": dataset, "variant": variant, "seeds": sorted(r["seed"] for r in done),
            "excluded": {r["key"]: status_of(r) for r in group if status_of(r) != FINISHED},
        }
        for protocol in ("test", "test_history_kept"):
            if done:
                row[protocol] = {m: mean_spread([r[protocol][m] for r in done]) for m in METRICS}
        if done:
            row["epochs"] = mean_spread([r["epochs"] for r in done])
            row["best_epoch"] = mean_spread([r["best_epoch"] for r in done])
            row["seconds"] = mean_spread([r["wall_seconds"] for r in done])
        rows.append(row)
    return {"rows": rows, "runs": len(latest),
            "finished": sum(status_of(r) == FINISHED for r in latest.values())}


def fmt(cell: dict[str, float | None] | None, digits: int = 4) -> str:
    if not cell:
        return "-"
    text = f"{cell['mean']:.{digits}f}"
    return text if cell["spread"] is None else f"{text} ± {cell['spread']:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# SINE sensitivity and Table 6 ablation (bench/sensitivity.py)", "",
             f"{summary['finished']} of {summary['runs']} runs stopped on their own; mean ± "
             "sample standard deviation over those seeds (one seed: no spread). Capped, failed "
             "or unstarted runs are listed, never averaged. Settings: " + json.dumps(BASE) + "; "
             f"default K = {DEFAULT['interests']}, L = {DEFAULT['prototypes']}, lambda = "
             f"{DEFAULT['reg_weight']}, one factor varied at a time.", ""]
    for protocol, title in (("test", "history removed (paper protocol)"),
                            ("test_history_kept", "history kept (RecBole protocol)")):
        lines += [f"## Test, {title}", "",
                  "| dataset | variant | seeds | " + " | ".join(METRICS) + " | epochs (best) | s/run | excluded |",
                  "| --- | --- | --- | " + " | ".join("---:" for _ in METRICS) + " | ---: | ---: | --- |"]
        for row in summary["rows"]:
            cells = [fmt(row.get(protocol, {}).get(m)) for m in METRICS]
            excluded = ", ".join(f"{k.rsplit('/', 1)[1]}: {v}" for k, v in row["excluded"].items())
            epochs = (f"{fmt(row.get('epochs'), 1)} ({fmt(row.get('best_epoch'), 1)})"
                      if row.get("epochs") else "-")
            lines.append(f"| {row['dataset']} | {row['variant']} | {','.join(map(str, row['seeds'])) or 'none'} | "
                         + " | ".join(cells) + f" | {epochs} | {fmt(row.get('seconds'), 0)} | {excluded or '-'} |")
        lines.append("")
    return "\n".join(lines)


def table6_markdown(summary: dict[str, Any]) -> list[str]:
    """The paper's Table 6 layout (HR, ours at 20 and 50) for the datasets that ran the ablation,
    with the ordering of the means; a variant without a finished run has no place in it."""
    lines = []
    for dataset in sorted({r["dataset"] for r in summary["rows"] if r["variant"].startswith("sine-")}):
        rows = {r["variant"]: r for r in summary["rows"] if r["dataset"] == dataset}
        lines += [f"## Table 6 layout, {dataset} (test, history removed)", "",
                  "| method | seeds | HR@20 | HR@50 | NDCG@50 |", "| --- | --- | ---: | ---: | ---: |"]
        for name, variant in (("SINE-cate", "sine-cate"), ("SINE-label", "sine-label"), ("SINE", "default")):
            row = rows.get(variant, {})
            cells = [fmt(row.get("test", {}).get(m)) for m in ("hr@20", "hr@50", "ndcg@50")]
            seeds = ",".join(map(str, row.get("seeds", []))) or "none"
            lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
        ranked = sorted((v for v in ("sine-cate", "sine-label", "default") if "test" in rows.get(v, {})),
                        key=lambda v: rows[v]["test"]["hr@50"]["mean"])
        if len(ranked) == 3:
            lines += ["", "Ordering of the mean HR@50, lowest first: " + " < ".join(ranked)
                      + " (the paper's Table 6: sine-cate < sine-label < SINE on both of its datasets)."]
        lines.append("")
    return lines


def stopped_markdown(records: list[dict[str, Any]]) -> list[str]:
    """Runs left out of the means, with what they reached before they were stopped."""
    latest = {r["key"]: r for r in records}
    out = [r for r in latest.values() if status_of(r) != FINISHED]
    if not out:
        return []
    lines = ["## Runs left out of the means", "",
             "| run | status | epochs (best) | test HR@50 at its best epoch so far |", "| --- | --- | ---: | ---: |"]
    for r in sorted(out, key=lambda r: r["key"]):
        hr = f"{r['test']['hr@50']:.4f}" if "test" in r else "-"
        epochs = f"{r['epochs']} ({r['best_epoch']})" if "epochs" in r else "-"
        lines.append(f"| {r['key']} | {status_of(r)} | {epochs} | {hr} |")
    return [*lines, ""]


def plot(summary: dict[str, Any], path: Path) -> None:
    """One panel per factor: test HR@50 (history removed) against the level, one line per
    dataset, as the change from that dataset's default in percent: the datasets' levels
    differ threefold, and on one absolute axis their variation would vanish."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FACTORS), figsize=(4 * len(FACTORS), 3.4), constrained_layout=True)
    defaults = {row["dataset"]: row["test"][PLOT_METRIC]["mean"] for row in summary["rows"]
                if row["variant"] == "default" and "test" in row}
    for ax, (name, (symbol, _levels)) in zip(axes, FACTORS.items(), strict=True):
        for dataset in sorted(defaults):
            points = []
            for row in summary["rows"]:
                if row["dataset"] != dataset or "test" not in row:
                    continue
                for factor, level in factor_of(row["variant"]):
                    if factor == name:
                        cell = row["test"][PLOT_METRIC]
                        points.append((level, 100 * (cell["mean"] / defaults[dataset] - 1),
                                       100 * (cell["spread"] or 0.0) / defaults[dataset],
                                       len(row["seeds"])))
            if points:
                points.sort()
                xs = list(range(len(points))) if name == "prototypes" else [p[0] for p in points]
                ax.errorbar(xs, [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                            capsize=3, label=f"{dataset} (n={min(p[3] for p in points)}-{max(p[3] for p in points)})")
                if name == "prototypes":
                    ax.set_xticks(xs, [f"{p[0]:g}" for p in points])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(symbol + (" (categorical axis)" if name == "prototypes" else ""))
        ax.set_ylabel(f"test {PLOT_METRIC.upper()}, % against default")
        ax.set_title(f"SINE vs {symbol} (history removed)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("bench/sensitivity.py: change from K = 4, L = 500, lambda = 0.5; "
                 "bars: one sd over seeds (none for n=1)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(out: Path) -> str:
    from sine.atomic import atomic_write

    records = read_jsonl(out)
    summary = summarise(records)
    text = "\n".join([markdown(summary), *table6_markdown(summary), *stopped_markdown(records)])
    atomic_write(out.with_suffix(".summary.json"), json.dumps(summary, indent=2))
    atomic_write(out.with_suffix(".md"), text)
    if summary["finished"]:
        plot(summary, out.with_suffix(".png"))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of DATASET.csv.gz files")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="run only these variants")
    parser.add_argument("--table6", action="store_true",
                        help="also run SINE-label and SINE-cate (ml-100k: genres as categories)")
    parser.add_argument("--jobs", type=job_count, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="most epochs per run")
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--run-cap-s", type=float, default=1200.0,
                        help="stop a run after this many seconds (marked capped); 0 = none")
    parser.add_argument("--deadline-s", type=float, default=0.0,
                        help="stop everything this many seconds after the start; 0 = none")
    parser.add_argument("--grace-s", type=float, default=30.0)
    parser.add_argument("--min-start-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sensitivity.jsonl")
    parser.add_argument("--logs", type=Path, default=ROOT / "runs" / "sensitivity_logs")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.summary_only:
        print(write_summary(args.out))
        return
    base = run_settings(BASE, args)
    grid = variants(args.table6, args.data)
    if args.only:
        if unknown := [name for name in args.only if name not in grid]:
            raise SystemExit(f"--only {' '.join(unknown)}: not in the grid, which has "
                             f"{', '.join(grid)}" + ("" if args.table6 else
                                                     " (the sine-* ablations need --table6)"))
        grid = {name: grid[name] for name in args.only}
    done = {r["key"]: r for r in read_jsonl(args.out) if r.get("status") == FINISHED}
    jobs = []
    paths = dataset_paths(args.datasets, args.data)
    for seed in args.seeds:  # seed-major: a grid cut short has every variant at least once
        for dataset, path in paths.items():
            for name, settings in grid.items():
                if name.startswith("sine-") and dataset != "ml-100k":
                    continue  # only ml-100k has category attributes; the ablation pairs them
                jobs.append(Job(dataset, path, name, seed, settings))
    todo = jobs_to_run(done, jobs, base, args.out)
    log.info("%d runs (%d finished already in %s), %d at a time, %d threads each",
             len(todo), len(jobs) - len(todo), args.out, args.jobs, args.threads)
    run_grid(todo, args, base)
    print(write_summary(args.out))


if __name__ == "__main__":
    main()
