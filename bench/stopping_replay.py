"""Stopping rules replayed on recorded validation curves (issue 15, part 2).

    .venv/bin/python bench/stopping_replay.py runs/ /work/main/bench/results/sine_variants.jsonl

Reads every per-epoch validation history it finds: `metrics.json` of run directories
(searched below the directories given) and JSON-lines files of bench/sine_variants.py
(runs with status "finished" only). A curve is replayed as far as it was recorded (a run
that stopped by its own patience, a decline rule or its epoch limit): a rule is replayed
by cutting the curve where the rule would have stopped, and the model it keeps is the
best epoch before the cut. A rule that would train past the end of a recorded curve
cannot be replayed on it (the curve counts as "censored" for that rule and its figures
are left out). A path that does not exist or holds no curve is an error.

For each rule: epochs trained in all, epochs per curve, and what it loses: curves whose
kept epoch differs from the full run's, and the largest and mean relative loss of
validation NDCG@10. These are replays of recorded curves, not fresh runs.
Writes bench/results/stopping.json and .md; the curves are kept in the JSON, so a new run
is added to the earlier ones with

    .venv/bin/python bench/stopping_replay.py runs/new-run --previous bench/results/stopping.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.stopping import StoppingRule  # noqa: E402

METRIC = "ndcg@10"
BASELINE = "patience 10 (before)"
RULES = {
    "patience 10 (before)": StoppingRule(patience=10),
    "patience 5": StoppingRule(patience=5),
    "patience 3": StoppingRule(patience=3),
    **{f"decline {d:.0%} x{k}, patience 10": StoppingRule(patience=10, decline=d, decline_epochs=k)
       for d in (0.02, 0.03, 0.05) for k in (1, 2, 3)},
}


def curves_from(paths: list[Path]) -> list[dict[str, Any]]:
    """The curves below each path; a path that does not exist or holds none is an error
    (a mistyped run must not leave a report that looks complete)."""
    found: list[dict[str, Any]] = []
    for path in paths:
        if not path.exists():
            raise SystemExit(f"{path}: no such file or directory")
        curves = [c for c in _curves_at(path.resolve()) if c["scores"]]
        if not curves:
            raise SystemExit(f"{path}: no recorded validation curve found (expected a run directory with "
                             "metrics.json, a metrics.json, or a JSON-lines file of bench/sine_variants.py)")
        found += curves
    return found


def _curves_at(path: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if path.is_dir():
        for metrics in sorted(path.rglob("metrics.json")):
            found += _from_metrics(metrics)
    elif path.suffix == ".jsonl":
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if record.get("status") == "finished" and record.get("history"):
                found.append(_curve(f"{path.name}:{record.get('key')}", record.get("dataset"),
                                    record.get("variant", "sine"), record.get("seed"),
                                    record["history"], record.get("patience", 10),
                                    record.get("max_epochs")))
    elif path.name == "metrics.json":
        found += _from_metrics(path)
    return found


def curves_from_report(path: Path) -> list[dict[str, Any]]:
    """The curves an earlier report of this script replayed (its JSON keeps their scores).

    Reports written before the epoch limit was kept with each curve get it back from the
    report itself: a curve ran out of epochs exactly when patience 10 was replayed on it
    without patience 10 deciding to stop (the only other way a replay is not censored).
    """
    try:
        report = json.loads(path.read_text())
        baseline = report["rules"][BASELINE]["per_curve"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--previous {path}: not a report of this script ({type(error).__name__}: "
                         f"{error}); expected a stopping.json it wrote") from None
    curves = []
    for curve in report["curves"]:
        if "max_epochs" not in curve:
            ran_out = curve["name"] in baseline and not RULES[BASELINE].should_stop(curve["scores"])
            curve = {**curve, "max_epochs": len(curve["scores"]) if ran_out else None}
        curves.append({"patience": None, **curve})
    return curves


def _from_metrics(path: Path) -> list[dict[str, Any]]:
    metrics = json.loads(path.read_text())
    if metrics.get("interrupted") or not metrics.get("history"):
        return []
    config = metrics.get("config", {})
    dataset = Path(str(metrics.get("dataset", {}).get("path", "?"))).name.split(".")[0]
    return [_curve(str(path.parent), dataset, metrics.get("model"), metrics.get("seed"),
                   metrics["history"], config.get("patience", 10), config.get("epochs"))]


def _curve(name: str, dataset: str | None, model: str | None, seed: Any, history: list[dict],
           patience: int, max_epochs: int | None) -> dict[str, Any]:
    scores = [h["valid"][METRIC] for h in history if h.get("epoch", 1) >= 1]
    return {"name": name, "dataset": dataset, "model": model, "seed": seed, "scores": scores,
            "patience": patience, "max_epochs": max_epochs}


def replay(curve: dict[str, Any], rule: StoppingRule) -> dict[str, Any] | None:
    scores = curve["scores"]
    stop = rule.stop_epoch(scores)
    ran_out = curve["max_epochs"] is not None and len(scores) >= curve["max_epochs"]
    if not rule.should_stop(scores[:stop]) and not ran_out:
        return None  # the rule would have trained past what was recorded
    kept = max(range(stop), key=lambda i: (scores[i], -i))
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return {"epochs": stop, "kept_epoch": kept + 1, "best_epoch": best + 1,
            "kept": scores[kept], "best": scores[best],
            "relative_loss": (scores[best] - scores[kept]) / scores[best] if scores[best] else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--previous", type=Path, help="an earlier stopping.json: replay its curves too")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stopping.json",
                        help="the report's JSON (the markdown beside it); default: %(default)s")
    args = parser.parse_args()
    curves = curves_from(args.paths)
    if args.previous:
        new_names = {c["name"] for c in curves}
        curves = [c for c in curves_from_report(args.previous) if c["name"] not in new_names] + curves
    if not curves:
        raise SystemExit("no recorded validation curves found")
    report: dict[str, Any] = {"kind": "replay of recorded curves", "metric": f"valid {METRIC}",
                              "curves": [{k: c[k] for k in ("name", "dataset", "model", "seed", "scores",
                                                           "patience", "max_epochs")}
                                         for c in curves], "rules": {}}
    baseline = RULES[BASELINE]
    for label, rule in RULES.items():
        rows = [(c, replay(c, rule), replay(c, baseline)) for c in curves]
        done = [(c, r) for c, r, _ in rows if r is not None]
        paired = [(c, r, b) for c, r, b in rows if r is not None and b is not None]
        report["rules"][label] = {
            "rule": asdict(rule),
            "replayed": len(done), "censored": len(rows) - len(done),
            # on the curves both this rule and patience 10 can be replayed on
            "paired": len(paired),
            "epochs": sum(r["epochs"] for _, r, _ in paired),
            "baseline_epochs": sum(b["epochs"] for _, _, b in paired),
            "changed": [c["name"] for c, r, b in paired if r["kept_epoch"] != b["kept_epoch"]],
            "max_relative_loss": max(((b["kept"] - r["kept"]) / b["kept"] for _, r, b in paired), default=0.0),
            "mean_relative_loss": statistics.fmean((b["kept"] - r["kept"]) / b["kept"] for _, r, b in paired)
            if paired else 0.0,
            "per_curve": {c["name"]: r for c, r in done},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    args.out.with_suffix(".md").write_text(markdown(report, curves))
    print(markdown(report, curves))


def markdown(report: dict[str, Any], curves: list[dict[str, Any]]) -> str:
    groups = sorted({(c["dataset"], c["model"]) for c in curves}, key=str)
    lines = [f"Stopping rules replayed on {len(curves)} recorded curves (valid {METRIC}; a replay, "
             "not fresh runs): " + ", ".join(
                 f"{d}/{m} x{sum(1 for c in curves if (c['dataset'], c['model']) == (d, m))}"
                 for d, m in groups), "",
             f"Each rule against {BASELINE} on the curves both can be replayed on (a curve recorded "
             "with a shorter patience cannot show what patience 10 would have done). Loss: how much "
             "lower the kept epoch's validation NDCG@10 is than patience 10's.", "",
             "| rule | curves paired | epochs | patience-10 epochs | ratio | kept epoch changed | max loss "
             "| mean loss |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, r in report["rules"].items():
        ratio = f"{r['epochs'] / r['baseline_epochs']:.2f}" if r["baseline_epochs"] else ""
        lines.append(f"| {label} | {r['paired']} | {r['epochs']} | {r['baseline_epochs']} | {ratio} "
                     f"| {len(r['changed'])} | {r['max_relative_loss']:.2%} | {r['mean_relative_loss']:.2%} |")
    gone = "" if not any(c["name"].startswith("/tmp/") for c in curves) else (
        " Run folders under /tmp were not kept, but every curve is in the JSON beside this "
        "file, which `--previous` replays.")
    lines += ["", "Per curve: epochs run / epoch kept (censored: the rule would train past the record). "
              "\"Recorded in\" names the run folder or results line the curve was read from." + gone, "",
              "| curve | recorded in | valid NDCG@10 by epoch | " + " | ".join(report["rules"]) + " |",
              "| --- | --- | --- |" + " ---: |" * len(report["rules"])]
    for c in curves:
        cells = []
        for r in report["rules"].values():
            x = r["per_curve"].get(c["name"])
            cells.append(f"{x['epochs']}/{x['kept_epoch']}" if x else "censored")
        curve = " ".join(f"{s:.4f}" for s in c["scores"])
        lines.append(f"| {c['dataset']}/{c['model']}/seed {c['seed']} | {c['name']} | {curve} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
