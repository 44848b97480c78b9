"""The paper's Table 1 on our data: models x datasets x {HR, NDCG}@{20, 50}, several seeds.

    .venv/bin/python bench/paper_table.py --datasets ml-100k \\
        --models pop gru4rec caser sasrec sine mind mcprn --seeds 0 1 2 --jobs 2 --threads 1
    .venv/bin/python bench/paper_table.py --datasets beauty --models mcprn --seeds 1 \\
        --device cuda --jobs 8                     # add runs to the committed table
    .venv/bin/python bench/paper_table.py --summary-only      # redraw md + png from the JSONL

Rows are models, columns datasets x {HR@20, HR@50, NDCG@20, NDCG@50}, as in Tan et al.
(WSDM 2021) Table 1, once per ranking protocol (../shared/EVALUATION.md): the paper's
(the user's history removed from the ranking) and RecBole's (history kept). Cells are the
mean +- sample standard deviation over the seeds whose run completed; a cell from a
single seed says "n=1" and shows no spread.

Every (dataset, model, seed) is one training run in its own process (the machinery of
bench/sine_variants.py: `--jobs` at a time, `--threads` torch threads each). Settings are
bench/accuracy.py's: D = 64, n = 20, full softmax over all items (fp32 products), batch
256, Adam 1e-3, early stopping on validation NDCG@10 (`--patience`, default 3, at most
`--epochs`, default 30: the committed table's, chosen so that 2 CPU cores could fill a
dataset; bench/accuracy.py trains to patience 10); SINE with K = 4, L = 500. `--set
KEY=VALUE` changes a setting for every run. A second invocation resumes the same file and
refuses to, naming the difference, when the file holds a run of the same model, or a plain
run of another, trained with other settings (where it ran, `--device` and `--threads`, may
differ): another protocol needs another `--out`.

A model is any name `sine train --model` accepts, or NAME:key=value,... for a variant
(`sine-k8:model=sine,interests=8`; `model=` may be left out when NAME is registered).

Capped runs are never averaged in: a run still going at `--deadline-s` (counted from the
start) or past `--run-cap-s` gets SIGINT, stops at its best epoch so far and is recorded
as capped; so is a run that used all `--epochs` while its validation score was still
improving within the last `--patience` epochs (early stopping never decided it).

A second invocation skips the runs the file holds that the protocol ended (complete, or
capped at the epoch limit: the same seed and settings would end there again) and reruns the
others (stopped at a deadline, interrupted, never started, failed); `--dry-run` lists them.

JSONL schema (bench/results/paper_table.jsonl, one line per run as it ends; a later line
for the same key supersedes an earlier one):

    schema             1
    key                "DATASET/MODEL/seedS"
    dataset, model     the dataset name and the model name as given to --models
    seed               int
    settings           every TrainConfig key set for the run (model included)
    status             "finished" | "capped" | "deadline" | "interrupted" | "capped (max
                       epochs)" | "not_started" | "failed" (and "... (killed)")
    complete           true only for "finished": the only runs in means
    capped             true when the run was stopped or never started (not failed)
    valid, test, test_history_kept
                       {"hr@10", "hr@20", "hr@50", "ndcg@10", "ndcg@20", "ndcg@50"}
                       (absent when the run produced no model); "test" is the paper's
                       protocol (history removed), "test_history_kept" RecBole's
    epochs, best_epoch, train_seconds, examples_per_second, wall_seconds, threads,
    device, torch, commit, history (per-epoch validation), error (failed runs only)
    finished_at        UTC time the line was written (ISO 8601)
    load_average       the machine's 1-minute load average then
    cpu                the host's processor model (/proc/cpuinfo): run times are only
                       comparable on the same one
    boot               the first 8 characters of the kernel's boot id (Linux; absent
                       elsewhere): with cpu, the machine a run's time belongs to
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sine_variants import (  # noqa: E402
    FINISHED,
    PROTOCOLS,
    RESUME_IGNORES,
    Job,
    checked_settings,
    config_defaults,
    dataset_paths,
    job_count,
    jobs_to_run,
    other_settings,
    parse_setting,
    read_jsonl,
    refuse_other_settings,
    run_grid,
    spec_value,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATASETS = ("beauty", "toys", "video", "ml-100k")
BASE = {"dim": 64, "batch_size": 256, "max_len": 20, "loss": "full", "precision": "fp32"}
"""Every run's settings (bench/accuracy.py's) before --set and the model's own."""
METRICS = ("hr@20", "hr@50", "ndcg@20", "ndcg@50")
MODEL_ORDER = ("pop", "gru4rec", "caser", "sasrec", "mind", "mcprn", "sine")
"""Table 1's row order (single-embedding models, then multi-interest ones); others follow."""
SCHEMA = 1
HEADER = "# The paper's Table 1 on our data (bench/paper_table.py)"
CAPPED_MAX_EPOCHS = "capped (max epochs)"
"""A run the epoch limit ended while it was still improving: not averaged, and not rerun."""
PROTOCOL = ("dim", "max_len", "loss", "batch_size", "precision", "lr", "epochs", "patience")
"""The settings the table's header states: shared by every run of a file."""
REQUIRED = ("key", "dataset", "model", "seed", "status")

log = logging.getLogger("sine.bench")


def parse_model(spec: str) -> tuple[str, dict[str, Any]]:
    """A registered model name, or NAME:key=value,key=value."""
    from trainer.config import MODELS

    name, _, rest = spec.partition(":")
    settings: dict[str, Any] = {"model": name} if name in MODELS else {}
    settings.update(parse_setting(item) for item in filter(None, rest.split(",")))
    if settings.get("model") not in MODELS:
        raise SystemExit(f"unknown model {spec!r}: one of {', '.join(MODELS)}, "
                         "or NAME:model=MODEL,key=value")
    return name, settings


def decorate(record: dict[str, Any], epochs: int, patience: int) -> dict[str, Any]:
    """Add the schema's fields to a record of bench/sine_variants.py's worker."""
    record = {"schema": SCHEMA, **record}
    record["model"] = record.pop("variant", record.get("model"))
    settings = record.get("settings", {})
    max_epochs = settings.get("epochs", epochs)
    still_improving = record.get("best_epoch", 0) > record.get("epochs", 0) - settings.get(
        "patience", patience)
    if (record.get("status") == FINISHED and settings.get("model") != "pop"
            and record.get("epochs", 0) >= max_epochs and still_improving):
        record["status"] = CAPPED_MAX_EPOCHS
    record["complete"] = record.get("status") == FINISHED
    record["capped"] = not record["complete"] and record.get("status") != "failed"
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record["load_average"] = round(os.getloadavg()[0], 2)
    record["cpu"] = cpu_model()
    if boot := boot_id():
        record["boot"] = boot
    return record


def boot_id() -> str | None:
    """The running kernel's boot id, shortened: it names one machine instance (one VM, one
    boot), which the processor label does not. None where the kernel does not expose it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8] or None
    except OSError:
        return None


def cpu_model() -> str:
    """The processor's model name: with boot_id, what the time table groups run times by
    (its header gives the measured spreads between hosts that made this necessary)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(record: dict[str, Any]) -> str:
    """Where a run's time was measured: its processor and boot, and the accelerator when not
    the CPU."""
    where = record.get("cpu", "not recorded")
    if "boot" in record:
        where = f"{where}, boot {record['boot']}"
    device = record.get("device", "cpu")
    return where if device == "cpu" else f"{device} (host {where})"


def latest_runs(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record["key"]] = record
    return latest


def settled(record: dict[str, Any]) -> bool:
    """Ended by the protocol (early stopping or the epoch limit): a resumed grid skips it."""
    return bool(record.get("complete")) or record.get("status") == CAPPED_MAX_EPOCHS


def load_runs(out: Path) -> list[dict[str, Any]]:
    """The run records of `out`; a file that is not this script's JSONL is an error, so that
    --summary-only never overwrites a table with an empty one."""
    if out.suffix != ".jsonl":
        raise SystemExit(f"--out {out}: name the .jsonl file of runs (the .md table and .png "
                         "figure are written beside it)")
    records = read_jsonl(out)
    for number, record in enumerate(records, 1):
        missing = [k for k in REQUIRED if not isinstance(record, dict) or k not in record]
        if missing:
            raise SystemExit(f"{out}: record {number} of {len(records)} is not a run of "
                             f"bench/paper_table.py (no {', '.join(missing)})")
    return records


def plain(record: dict[str, Any]) -> bool:
    """A run of a registered model at the grid's settings, not a NAME:key=value variant."""
    return record.get("settings", {}).get("model") == record["model"]


def check_protocol(held: dict[str, dict[str, Any]], models: list[tuple[str, dict[str, Any]]],
                   base: dict[str, Any], out: Path) -> None:
    """Refuse a run whose settings differ from those of a run of the same model in `out`,
    on any dataset, or from the grid's settings of the plain runs `out` holds.

    One file is one table under one header: bench/sine_variants.py's jobs_to_run compares
    a job with its own cell only, so a new dataset, or a new model at another D, would
    still have joined the old runs. A variant's own settings (`mind-k1:interests=1`) are
    its own business, but one name stands for one set of them.
    """
    from trainer.config import MODELS

    for record in held.values():
        if "settings" not in record:
            continue
        for name, own in models:
            advice = ("One file holds one protocol: give the recorded settings to extend it, "
                      "or --out for a new one.")
            if record["model"] == name:
                wanted, skip = {**base, **own}, frozenset()
                extra = set(own) - {"model"}  # sine:interests=8 beside a plain sine run
                if name in MODELS and extra and extra & set(
                        other_settings(record["settings"], wanted)):
                    advice += f" A variant needs a name of its own: {variant_spec(name, own)}."
            elif plain(record):
                wanted, skip = base, frozenset({"model", *own})
            else:
                continue
            refuse_other_settings(out, record, name, wanted, advice, skip)


def variant_spec(name: str, own: dict[str, Any]) -> str:
    """A NAME:key=value spec that parse_model reads back as `own` (JSON values: true, null)."""
    return f"{name}-x:model={own['model']}," + ",".join(
        f"{k}={spec_value(v)}" for k, v in own.items() if k != "model")


def model_rank(name: str) -> tuple[int, str]:
    base = name.split(":")[0]
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), name)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dataset and model: mean and spread of each metric over the complete runs."""
    latest = latest_runs(records)
    datasets = sorted({r["dataset"] for r in latest.values()},
                      key=lambda d: (DATASETS.index(d) if d in DATASETS else len(DATASETS), d))
    models = sorted({r["model"] for r in latest.values()}, key=model_rank)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    excluded = []
    for record in latest.values():
        if not record.get("complete"):
            excluded.append({k: record.get(k) for k in ("key", "status", "epochs", "best_epoch",
                                                         "error", "test", "test_history_kept")})
    for dataset in datasets:
        for model in models:
            done = [r for r in latest.values()
                    if r["dataset"] == dataset and r["model"] == model and r.get("complete")]
            if not done:
                continue
            cell: dict[str, Any] = {"n": len(done), "seeds": sorted(r["seed"] for r in done)}
            for protocol in PROTOCOLS:
                cell[protocol] = {}
                for metric in METRICS:
                    values = [r[protocol][metric] for r in done]
                    cell[protocol][metric] = {
                        "mean": statistics.mean(values),
                        "sd": statistics.stdev(values) if len(values) > 1 else None}
            cell["epochs"] = statistics.mean(r["epochs"] for r in done)
            cell["best_epoch"] = statistics.mean(r["best_epoch"] for r in done)
            cell["timing"] = timing(done)
            cells.setdefault(dataset, {})[model] = cell
    protocol = {k: sorted({r["settings"][k] for r in latest.values()
                           if plain(r) and k in r.get("settings", {})}, key=str) for k in PROTOCOL}
    variants = {  # what a variant changes: its model and its own keys
        r["model"]: {k: v for k, v in r["settings"].items() if k == "model" or (
            k not in RESUME_IGNORES and v not in protocol.get(k, ()))}
        for r in latest.values() if r.get("settings") and not plain(r)}
    return {"datasets": datasets, "models": models, "cells": cells,
            "protocol": protocol, "variants": dict(sorted(variants.items())),
            "excluded": sorted(excluded, key=lambda e: e["key"]),
            "runs": len(latest), "complete": sum(bool(r.get("complete")) for r in latest.values())}


def timing(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run time per machine: a mean over runs from two hosts would describe neither."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in done:
        groups.setdefault(machine(record), []).append(record)
    rows = []
    for where, runs in sorted(groups.items()):
        loads = [r["load_average"] for r in runs if r.get("load_average") is not None]
        rows.append({"machine": where, "seeds": sorted(r["seed"] for r in runs),
                     "wall_seconds": statistics.mean(r.get("wall_seconds", 0) for r in runs),
                     "load_average": [min(loads), max(loads)] if loads else None})
    return rows


def fmt(value: dict[str, Any] | None) -> str:
    if value is None:
        return "-"
    if value["sd"] is None:
        return f"{value['mean']:.4f}"
    return f"{value['mean']:.4f} ± {value['sd']:.4f}"


def load_band(band: list[float] | None) -> str:
    """'2.0' when every run ended under the same load, '2.0-22.2' otherwise, '-' if unrecorded."""
    if not band:
        return "-"
    low, high = band
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"


def settings_text(summary: dict[str, Any]) -> str:
    """The protocol as the plain runs recorded it, and what each variant changes."""
    defaults = config_defaults()
    values = {k: " / ".join(map(str, v)) or str(defaults[k])
              for k, v in summary["protocol"].items()}
    text = (f"Settings: D = {values['dim']}, n = {values['max_len']}, {values['loss']} softmax, "
            f"batch {values['batch_size']}, {values['precision']}, Adam {values['lr']}, early "
            f"stopping on validation NDCG@10 with patience {values['patience']}, at most "
            f"{values['epochs']} epochs (a run still improving then is capped).")
    for name, own in summary["variants"].items():
        text += f" `{name}`: " + ", ".join(f"{k}={v}" for k, v in own.items()) + "."
    return text


def markdown(summary: dict[str, Any]) -> str:
    lines = [HEADER, "",
             f"{summary['complete']} of {summary['runs']} recorded runs complete. Cells: mean ± "
             "sample standard deviation over the complete seeds; `n` is how many (n=1: a single "
             "run, no spread measured). Capped, interrupted, failed or never-started runs are "
             "listed below and never averaged in. " + settings_text(summary), ""]
    datasets, models = summary["datasets"], summary["models"]
    for protocol, title in (("test", "history removed from the ranking (the paper's protocol)"),
                            ("test_history_kept", "history kept in the ranking (RecBole's)")):
        header = ["model"]
        for dataset in datasets:
            header += [f"{dataset} n"] + [f"{dataset} {m.upper()}" for m in METRICS]
        lines += [f"### Test, {title}", "", "| " + " | ".join(header) + " |",
                  "| --- | " + " | ".join("---:" for _ in header[1:]) + " |"]
        for model in models:
            row = [model]
            for dataset in datasets:
                cell = summary["cells"].get(dataset, {}).get(model)
                row.append(str(cell["n"]) if cell else "0")
                row += [fmt(cell[protocol][m]) if cell else "-" for m in METRICS]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["### Epochs and time (complete runs)", "",
              "Epochs over all complete seeds; seconds (wall-clock per run) per machine the "
              "runs were timed on, with the 1-minute load average as they ended (lowest-highest"
              "). A machine is a processor and, where recorded, the boot it ran in (one VM "
              "instance): compare times on the same machine only. Jobs ran up to 3.1x faster on "
              "one 2-core host than on another at a similar load, and 1.4-4.8x apart per epoch "
              "on VMs with the same processor label (the slowest with other work on the cores). "
              "Runs from before the processor was recorded say \"not "
              "recorded\".", "",
              "| dataset | model | n | seeds | epochs (best) | machine | seeds timed there | "
              "seconds per run | load |",
              "| --- | --- | ---: | --- | ---: | --- | --- | ---: | ---: |"]
    for dataset in datasets:
        for model in models:
            cell = summary["cells"].get(dataset, {}).get(model)
            if not cell:
                continue
            lead = (f"| {dataset} | {model} | {cell['n']} | {','.join(map(str, cell['seeds']))}"
                    f" | {cell['epochs']:.0f} ({cell['best_epoch']:.0f}) |")
            for row in cell["timing"]:
                lines.append(f"{lead} {row['machine']} | {','.join(map(str, row['seeds']))} | "
                             f"{row['wall_seconds']:.0f} | {load_band(row['load_average'])} |")
                lead = "| | | | | |"
    lines += ["", "### Runs not averaged in", "",
              "Their figures (best epoch before the stop) are shown for what they are: runs that "
              "early stopping had not ended, so not comparable with the complete ones above.", ""]
    if summary["excluded"]:
        lines += ["| run | status | epochs (best) | test HR@50 | test NDCG@50 | history kept HR@50 |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for e in summary["excluded"]:
            test, kept = e.get("test"), e.get("test_history_kept")
            figures = (f"{test['hr@50']:.4f} | {test['ndcg@50']:.4f} | {kept['hr@50']:.4f}"
                       if test and kept else "- | - | -")
            if e.get("best_epoch") == 0:  # stopped before its first epoch ended
                figures = "untrained | - | -"
            epochs = f"{e['epochs']} ({e['best_epoch']})" if e.get("epochs") is not None else "-"
            status = e["status"] + (f": {e['error']}" if e.get("error") else "")
            lines.append(f"| {e['key']} | {status} | {epochs} | {figures} |")
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


def figure(summary: dict[str, Any], path: Path) -> None:
    """Grouped bars, one panel per (protocol, dataset); error bars = sd; hatched = n=1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets, models = summary["datasets"], summary["models"]
    if not datasets:
        return
    fig, axes = plt.subplots(len(PROTOCOLS), len(datasets), squeeze=False,
                             figsize=(max(4.2 * len(datasets), 6.5), 3.4 * len(PROTOCOLS)))
    width = 0.8 / max(len(models), 1)
    colors = plt.get_cmap("tab10")
    for row, (protocol, title) in enumerate((("test", "history removed"),
                                             ("test_history_kept", "history kept"))):
        for col, dataset in enumerate(datasets):
            ax = axes[row][col]
            x = np.arange(len(METRICS))
            for i, model in enumerate(models):
                cell = summary["cells"].get(dataset, {}).get(model)
                if not cell:
                    continue
                values = [cell[protocol][m] for m in METRICS]
                ax.bar(x + (i - (len(models) - 1) / 2) * width, [v["mean"] for v in values],
                       width, yerr=[v["sd"] or 0.0 for v in values], capsize=2,
                       color=colors(i % 10), hatch="//" if cell["n"] == 1 else None,
                       label=f"{model} (n={cell['n']})")
            ax.set_xticks(x, [m.upper() for m in METRICS], fontsize=8)
            ax.set_title(f"{dataset}: test, {title}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            ax.set_ylim(top=ax.get_ylim()[1] * 1.45)  # headroom: the legend must not hide bars
            if ax.get_legend_handles_labels()[0]:  # no complete run of this dataset: no bars
                ax.legend(fontsize=6, loc="upper left", ncol=2)
    fig.suptitle("bench/paper_table.py: mean ± sd over complete seeds (hatched: n=1);\n"
                 "capped runs are not drawn", fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_summary(out: Path) -> str:
    from sine.atomic import atomic_write

    records = load_runs(out)
    if not records:
        raise SystemExit(f"{out}: no runs recorded yet, so no table to write")
    summary = summarise(records)
    text = markdown(summary)
    atomic_write(out.with_suffix(".md"), text)
    figure(summary, out.with_suffix(".png"))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of DATASET.csv.gz files (default: %(default)s)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=["pop", "sasrec", "sine"],
                        help="registered model names, or NAME:key=value,... (default: "
                             "%(default)s; the committed table has pop gru4rec caser sasrec "
                             "mind mcprn sine)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30,
                        help="most epochs per run (the committed table's)")
    parser.add_argument("--patience", type=int, default=3,
                        help="early-stopping patience (the committed table's)")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="extra TrainConfig settings for every run (repeatable)")
    parser.add_argument("--jobs", type=job_count, default=2, help="runs at a time (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--deadline-s", type=float, default=0.0,
                        help="stop everything this many seconds after the start; runs still "
                             "going are recorded as capped; 0 = none")
    parser.add_argument("--run-cap-s", type=float, default=0.0,
                        help="stop a run after this many seconds (recorded as capped); 0 = none")
    parser.add_argument("--grace-s", type=float, default=300.0,
                        help="seconds a stopped run gets to evaluate and write its record before "
                             "a kill (60 s was too short on a machine at load 26: both runs lost)")
    parser.add_argument("--min-start-s", type=float, default=60.0,
                        help="start no run with less than this left before the deadline")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "paper_table.jsonl",
                        help="the .jsonl file of runs, added to as they end; the .md table and "
                             ".png figure are written beside it (default: %(default)s)")
    parser.add_argument("--logs", type=Path, default=ROOT / "runs" / "paper_table_logs",
                        help="folder for each run's training log")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--summary-only", action="store_true",
                      help="only rewrite the markdown and figure from --out")
    what.add_argument("--dry-run", action="store_true",
                      help="list the runs this command would start, and start none")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.summary_only:
        if not args.out.is_file():
            raise SystemExit(f"--out {args.out}: no such file (name the .jsonl file of runs)")
        print(write_summary(args.out))
        return

    base: dict[str, Any] = dict(BASE, device=args.device, threads=args.threads,
                                epochs=args.epochs, patience=args.patience)
    base.update(parse_setting(item) for item in args.set)
    models, base = checked_settings([parse_model(spec) for spec in args.models], base)
    paths = dataset_paths(args.datasets, args.data)
    held = {k: r for k, r in latest_runs(load_runs(args.out)).items() if settled(r)}
    check_protocol(held, models, base, args.out)
    # seed-major: a grid cut short by the deadline has every model on every dataset
    jobs = [Job(dataset, path, name, seed, settings)
            for seed in args.seeds for dataset, path in paths.items()
            for name, settings in models]
    todo = jobs_to_run(held, jobs, base, args.out)
    log.info("%d runs (%d held already in %s: complete, or capped at the epoch limit), "
             "%d at a time, %d threads each",
             len(todo), len(jobs) - len(todo), args.out, args.jobs, args.threads)
    if args.dry_run:
        print("\n".join(job.key for job in todo) or "nothing to run")
        return

    args.out.parent.mkdir(parents=True, exist_ok=True)
    ended: list[dict[str, Any]] = []

    def record(run: dict[str, Any]) -> dict[str, Any]:
        ended.append(decorate(run, args.epochs, args.patience))
        return ended[-1]

    run_grid(todo, args, base, record)
    print(write_summary(args.out))
    failed = [r["key"] for r in ended if r.get("status", "").startswith("failed")]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(ended)} runs failed ({', '.join(failed)}): "
                         f"their errors are in the table above, their logs in {args.logs}")


if __name__ == "__main__":
    main()
