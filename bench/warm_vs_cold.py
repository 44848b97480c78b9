"""A warm-started nightly candidate against a cold one trained on the same data (issue 15).

    .venv/bin/python bench/warm_vs_cold.py --dataset beauty --seed 0

A night is simulated on a real log: the last click of a random `--new-share` of users
is held back as the night's new events. The live model is trained cold on the rest (the
base log). The candidates are trained on base + new events with the same settings and
seed: cold (from scratch, the live model's epochs and stopping) and warm (from the live
run, `--warm-recent` most recent training clicks per user plus every new event,
`--warm-epochs` / `--warm-patience`, the untrained start scored as epoch 0), as
`sine retrain --warm-start` trains it. All are scored on the same validation and test
targets (leave-one-out of base + new events). Writes bench/results/warm_vs_cold.json/.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sine.data.logs import ITEM, TIME, USER, read_log  # noqa: E402
from sine.data.split import leave_one_out  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.evaluate import evaluate_split  # noqa: E402
from trainer.recent import recent_only  # noqa: E402
from trainer.run import load_run, train_split  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


# the night's options; reports written before they were recorded used these
WARM_DEFAULTS = {"new_share": 0.2, "warm_recent": 5, "warm_epochs": 5, "warm_patience": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=0, help="only the first this many users (0: all)")
    parser.add_argument("--new-share", type=float, default=WARM_DEFAULTS["new_share"])
    parser.add_argument("--live-run", type=Path,
                        help="use this trained run as the live model (trained on the whole log) and "
                        "make the night's events as bench/retrain_cycle.py records them")
    parser.add_argument("--events", type=int, default=2000, help="with --live-run: events to make")
    parser.add_argument("--warm-recent", type=int, default=WARM_DEFAULTS["warm_recent"])
    parser.add_argument("--warm-epochs", type=int, default=WARM_DEFAULTS["warm_epochs"])
    parser.add_argument("--warm-patience", type=int, default=WARM_DEFAULTS["warm_patience"])
    parser.add_argument("--settings", type=json.loads,
                        default={"dim": 64, "batch_size": 256, "epochs": 30, "patience": 5},
                        help="TrainConfig fields of the live and the cold model (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "warm_vs_cold.json")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="REPORT",
                        help="instead of training: put reports of several seeds (same dataset and "
                        "settings) side by side, with the warm-minus-cold differences, into --out")
    args = parser.parse_args()
    if args.combine:
        combined = combine([read_night(path) for path in args.combine])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(combined, indent=2))
        args.out.with_suffix(".md").write_text(combined_markdown(combined))
        print(combined_markdown(combined))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    frame = read_log(DATA / f"{args.dataset}.csv.gz")
    if args.users:
        frame = frame[frame[USER].isin(frame[USER].unique()[:args.users])].reset_index(drop=True)
    if args.live_run:  # the whole log is the base; the night adds retrain_cycle-like clicks
        events = cycle_events(frame, args.events)
        tagged = pd.concat([frame.assign(_new=False), events.assign(_new=True)], ignore_index=True)
        full = tagged.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
        new = full.pop("_new")
        base = frame
    else:
        rng = np.random.default_rng(args.seed)
        users = frame[USER].unique()
        chosen = set(rng.choice(users, size=int(args.new_share * len(users)), replace=False))
        last = ~frame.duplicated(USER, keep="last")  # sorted by user then time: each user's last click
        new = last & frame[USER].isin(chosen)
        base, full = frame[~new].reset_index(drop=True), frame
    report: dict = {"dataset": args.dataset, "users": frame[USER].nunique(), "seed": args.seed,
                    "new_events": int(new.sum()),
                    "base_clicks": len(base), "settings": args.settings, "threads": args.threads,
                    "new_share": args.new_share, "warm_recent": args.warm_recent,
                    "warm_epochs": args.warm_epochs, "warm_patience": args.warm_patience,
                    "load_average_before": os.getloadavg(), "kind": "fresh runs"}
    cold_config = TrainConfig(seed=args.seed, threads=args.threads, **args.settings)
    data = leave_one_out(full)
    with tempfile.TemporaryDirectory(dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None) as tmp:
        work = Path(tmp)
        source = {"path": f"{args.dataset} (simulated night)"}
        live_dir = args.live_run
        if live_dir is None:
            live_dir = work / "live"
            run("live (cold, base log)", leave_one_out(base), source, live_dir, cold_config, report)
        else:  # as the gate scores it: on the night's split
            live = load_run(live_dir)
            report["live (given run)"] = {
                "run": str(live_dir), "epochs": live.metrics.get("epochs"),
                "best_epoch": live.metrics.get("best_epoch"),
                **{f"valid_{k}": v for k, v in evaluate_split(live.scorer(), leave_one_out(full, live.vocabulary),
                                                               "valid", live.config.max_len).items()
                   if k in ("ndcg@10", "hr@10")}}
        run("cold candidate", data, source, work / "cold", cold_config, report)
        warm_config = TrainConfig(**{**cold_config.to_dict(), "init_from": str(live_dir),
                                     "epochs": args.warm_epochs, "patience": args.warm_patience})
        extra = new.groupby(full[USER]).sum().reindex(data.user_ids, fill_value=0).to_numpy(dtype="int64")
        run("warm candidate", recent_only(data, args.warm_recent, extra), source, work / "warm",
                   warm_config, report)
    report["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def cycle_events(frame: pd.DataFrame, count: int, seed: int = 0) -> pd.DataFrame:
    """The clicks bench/retrain_cycle.py records: known users on popular items, after the log."""
    rng = np.random.default_rng(seed)
    users = rng.choice(frame[USER].unique(), size=max(1, count // 10), replace=False)
    popular = frame[ITEM].value_counts().index[:500].to_numpy()
    start = float(frame[TIME].max()) + 1
    rows = [(str(users[i % len(users)]), str(rng.choice(popular)), start + i) for i in range(count)]
    return pd.DataFrame(rows, columns=[USER, ITEM, TIME])


def run(name: str, data, source: dict, out: Path, config: TrainConfig, report: dict) -> dict:
    print(f"{name}: training", flush=True)
    started = time.perf_counter()
    metrics = train_split(data, source, out, config)
    entry = {"valid_ndcg@10": metrics["valid"]["ndcg@10"], "valid_hr@10": metrics["valid"]["hr@10"],
             "test_ndcg@10": metrics["test"]["ndcg@10"], "epochs": metrics["epochs"],
             "best_epoch": metrics["best_epoch"], "train_examples": metrics["dataset"]["train_examples"],
             "train_seconds": metrics["train_seconds"], "wall_seconds": round(time.perf_counter() - started, 1)}
    report[name] = entry
    print(f"{name}: {json.dumps(entry)}", flush=True)
    return entry


def markdown(report: dict) -> str:
    lines = [f"Warm vs cold on {report['dataset']}, {report['users']:,} users (simulated night: "
             f"{report['new_events']:,} new events, "
             f"seed {report['seed']}, one seed: no spread; {report['threads']} threads, load average "
             f"{report['load_average_before'][0]:.1f} before, {report['load_average_after'][0]:.1f} after; "
             f"settings {json.dumps(report['settings'])}). Fresh runs.", "",
             "| model | valid NDCG@10 | valid HR@10 | test NDCG@10 | epochs (best) | train examples | train s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    if "live (given run)" in report:
        e = report["live (given run)"]
        lines.append(f"| live (given run, trained on the base log) | {e['valid_ndcg@10']:.4f} | "
                     f"{e['valid_hr@10']:.4f} | | {e['epochs']} ({e['best_epoch']}) | | |")
    for name in ("live (cold, base log)", "cold candidate", "warm candidate"):
        if name not in report:
            continue
        e = report[name]
        lines.append(f"| {name} | {e['valid_ndcg@10']:.4f} | {e['valid_hr@10']:.4f} | {e['test_ndcg@10']:.4f} | "
                     f"{e['epochs']} ({e['best_epoch']}) | {e['train_examples']:,} | {e['train_seconds']:.0f} |")
    lines.append("\nA live model trained here is scored on its own split (base log), a given one on the "
                 "night's split (as the gate scores it); the candidates on base + events.")
    return "\n".join(lines) + "\n"


def read_night(path: Path) -> dict:
    """One seed's report, or a clear error naming the file (a combined report included)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"--combine {path}: cannot read it ({error})") from None
    if not isinstance(report, dict) or "seeds" in report:
        raise SystemExit(f"--combine {path}: a combined report, not one seed's; leave it out")
    missing = [k for k in ("dataset", "users", "seed", "settings", "threads", "cold candidate", "warm candidate")
               if k not in report]
    if missing:
        raise SystemExit(f"--combine {path}: not a report of this script (no {', '.join(missing)})")
    return {**report, "file": str(path)}


def combine(reports: list[dict]) -> dict:
    """Seeds of one comparison: per seed, warm minus cold, and their mean and sample sd."""
    def setup(r: dict) -> str:  # what must match; reports before the warm fields hold the defaults
        return json.dumps({"dataset": r["dataset"], "users": r["users"], "settings": r["settings"],
                           "threads": r["threads"], "new_events": r.get("new_events"),
                           **{k: r.get(k, default) for k, default in WARM_DEFAULTS.items()}}, sort_keys=True)

    if len({setup(r) for r in reports}) != 1:
        found = "; ".join(f"{r.get('file', 'report')}: {setup(r)}" for r in reports)
        raise SystemExit(f"--combine needs reports of one setup (dataset, users, settings, threads, "
                         f"events, warm options); got {found}")
    seeds = [r["seed"] for r in reports]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--combine got a seed twice: {seeds}")
    rows = []
    for r in sorted(reports, key=lambda r: r["seed"]):
        cold, warm = r["cold candidate"], r["warm candidate"]
        rows.append({"seed": r["seed"], "cold_valid_ndcg@10": cold["valid_ndcg@10"],
                     "warm_valid_ndcg@10": warm["valid_ndcg@10"],
                     "difference": warm["valid_ndcg@10"] - cold["valid_ndcg@10"],
                     "cold_test_ndcg@10": cold["test_ndcg@10"], "warm_test_ndcg@10": warm["test_ndcg@10"],
                     "cold_epochs": cold["epochs"], "warm_epochs": warm["epochs"],
                     "cold_train_seconds": cold["train_seconds"], "warm_train_seconds": warm["train_seconds"],
                     "load_average_before": r["load_average_before"][0]})
    differences = [row["difference"] for row in rows]
    return {"dataset": reports[0]["dataset"], "users": reports[0]["users"],
            "settings": reports[0]["settings"], "threads": reports[0]["threads"], "seeds": rows,
            "difference_mean": statistics.fmean(differences),
            "difference_sd": statistics.stdev(differences) if len(differences) > 1 else None,
            "warm_at_least_cold": sum(d >= 0 for d in differences)}


def combined_markdown(combined: dict) -> str:
    sd = combined["difference_sd"]
    lines = [f"Warm vs cold on {combined['dataset']}, {combined['users']:,} users, "
             f"{len(combined['seeds'])} seeds (settings {json.dumps(combined['settings'])}, "
             f"{combined['threads']} thread(s)); fresh runs, one report per seed.", "",
             "| seed | cold valid NDCG@10 | warm valid NDCG@10 | warm - cold | cold test NDCG@10 | "
             "warm test NDCG@10 | epochs cold / warm | train s cold / warm | load before |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in combined["seeds"]:
        lines.append(f"| {row['seed']} | {row['cold_valid_ndcg@10']:.4f} | {row['warm_valid_ndcg@10']:.4f} | "
                     f"{row['difference']:+.4f} | {row['cold_test_ndcg@10']:.4f} | {row['warm_test_ndcg@10']:.4f} | "
                     f"{row['cold_epochs']} / {row['warm_epochs']} | {row['cold_train_seconds']:.0f} / "
                     f"{row['warm_train_seconds']:.0f} | {row['load_average_before']:.1f} |")
    lines += ["", f"warm - cold, validation NDCG@10: {combined['difference_mean']:+.4f}"
              + (f" ± {sd:.4f} (sample sd)" if sd is not None else " (one seed: no spread)")
              + f"; warm at least cold on {combined['warm_at_least_cold']} of {len(combined['seeds'])} seeds."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
