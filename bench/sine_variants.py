"""SINE variants side by side: eq. (7) as printed or by cosine, eq. (3)'s temperature, bf16.

    python bench/sine_variants.py --data ../shared/data --datasets ml-100k --seeds 0 \\
        --jobs 2 --device cpu --epochs 1                                  # smoke test
    python bench/sine_variants.py --data data --device cuda --jobs 12 --threads 1 \\
        --deadline-s 330                                                  # the GPU grid

Each (dataset, variant, seed) is one training run in its own process (`--jobs` at a
time, each with `--threads` torch threads), so a run can be stopped without losing the
others. A run that passes `--run-cap-s`, and every run still going at `--deadline-s`
(counted from the start), gets SIGINT: training stops at its best epoch so far and the
run is recorded with status "capped" or "deadline"; one that does not exit within
`--grace-s` more is killed. Only runs with status "finished" enter the averages.

Results go to a JSON-lines file, one line per run as it ends (a killed benchmark keeps
every finished run; a second invocation skips the keys already finished), with each
run's per-epoch validation history, so stopping rules can be replayed offline. The
summary (JSON and markdown next to it) gives per dataset and variant the mean +- sample
standard deviation over finished seeds (no spread for a single seed): HR/NDCG@20/50 for
both ranking protocols, epochs (best epoch), the mean top aggregation weight max_k e_k,
the assignment sharpness mean max_k P(k|t) over real clicks, the active prototypes, and
seconds per run.

Needs only torch, numpy, pandas, tqdm and matplotlib (it calls the training function,
not the `sine` CLI, whose typer is not needed). Settings are bench/accuracy.py's (D = 64,
batch 256, n = 20, full softmax, K = 4, L = 500) with fp32 products unless a variant says
otherwise.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATASETS = ("beauty", "video", "toys", "ml-100k")
BASE = {"dim": 64, "batch_size": 256, "max_len": 20, "loss": "full", "precision": "fp32"}
"""Every run's settings (bench/accuracy.py's), before its variant's."""

VARIANTS: dict[str, dict[str, Any]] = {
    # today's model: eq. (7) by cosine / tau, eq. (3) a plain cosine
    "cosine": {"model": "sine", "aggregation": "cosine", "assignment_tau": 1.0},
    # eq. (7) as the paper prints it: C_apt^T phi^k / tau
    "dot": {"model": "sine", "aggregation": "dot", "assignment_tau": 1.0},
    # a temperature on eq. (3)'s cosine, so that P(k|t) can approach one-hot
    "cosine-a0.2": {"model": "sine", "aggregation": "cosine", "assignment_tau": 0.2},
    "dot-a0.2": {"model": "sine", "aggregation": "dot", "assignment_tau": 0.2},
    "cosine-a0.05": {"model": "sine", "aggregation": "cosine", "assignment_tau": 0.05},
    # today's model with bf16 catalog products (softmax and loss in fp32)
    "cosine-bf16": {"model": "sine", "aggregation": "cosine", "assignment_tau": 1.0,
                    "precision": "bf16"},
    "sasrec": {"model": "sasrec"},
}
DEFAULT_VARIANTS = ("cosine", "dot", "cosine-a0.2", "dot-a0.2", "cosine-bf16", "sasrec")
METRICS = ("hr@20", "hr@50", "ndcg@20", "ndcg@50")
PROTOCOLS = {"test_history_kept": "history kept", "test": "history removed"}
FINISHED = "finished"

log = logging.getLogger("sine.bench")


@dataclass
class Job:
    dataset: str
    path: Path
    variant: str
    seed: int
    settings: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.variant}/seed{self.seed}"

    def run_settings(self, base: dict[str, Any]) -> dict[str, Any]:
        """The settings this run trains with and records: the grid's, then the variant's."""
        return {**base, **self.settings}


@dataclass
class Running:
    job: Job
    process: Any  # multiprocessing.Process
    result_file: Path
    started: float
    stop_reason: str | None = None  # "capped" or "deadline" once SIGINT was sent
    stop_sent: float = 0.0
    killed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """A registered name, or NAME:key=value,key=value for an ad-hoc variant."""
    if spec in VARIANTS:
        return spec, dict(VARIANTS[spec])
    name, _, rest = spec.partition(":")
    if not rest:
        raise SystemExit(f"unknown variant {spec!r}: one of {', '.join(VARIANTS)} "
                         "or NAME:key=value,key=value")
    settings: dict[str, Any] = {"model": "sine"}
    settings.update(parse_setting(item) for item in filter(None, rest.split(",")))
    return name, settings


def dataset_paths(names: list[str], data: Path) -> dict[str, Path]:
    """Each --datasets entry's log: NAME is data/NAME.csv.gz, and a path to a log is itself
    (named by its file). A missing one stops the grid before any run, naming what is there."""
    paths = {}
    for name in names:
        is_path = name.endswith((".gz", ".csv", ".parquet", ".tsv"))
        path = Path(name) if is_path else data / f"{name}.csv.gz"
        if not path.is_file():
            found = sorted(p.name.removesuffix(".csv.gz") for p in data.glob("*.csv.gz"))
            raise SystemExit(f"{path}: dataset not found; --datasets takes names of "
                             "DATASET.csv.gz files in --data, or paths to logs, and " + (
                                 f"{data} holds {', '.join(found)}" if found
                                 else f"{data} holds none" if data.is_dir()
                                 else f"{data} is not a folder"))
        key = path.name.removesuffix(".gz").rsplit(".", 1)[0] if is_path else name
        if key in paths:
            raise SystemExit(f"{name}: --datasets names {key} twice ({paths[key]} and {path})")
        paths[key] = path
    return paths


def checked_settings(variants: list[tuple[str, dict[str, Any]]], base: dict[str, Any]
                     ) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """Every run's settings as TrainConfig takes them, before any run starts: a typo or a
    value of the wrong type stops the grid by name (it would fail each run after its data
    loaded), and records, resume comparisons and training all see the same values ("64"
    and 64 are one setting)."""
    from sine.errors import SineError
    from trainer.config import TrainConfig, typed_values

    if "seed" in base or any("seed" in own for _, own in variants):
        raise SystemExit("seed: each run's seed comes from --seeds (it names the run's key)")
    try:
        base = typed_values(base)
    except SineError as exc:  # only --set can give a wrong key or type here
        raise SystemExit(f"the settings of every run (--set): {exc}") from None
    typed = []
    for name, own in variants:
        try:
            own = typed_values(own)
            TrainConfig.from_dict({**base, **own})
        except SineError as exc:
            raise SystemExit(f"{name}: {exc}") from None
        typed.append((name, own))
    return typed, base


def job_count(text: str) -> int:
    """--jobs: processes at a time; 0 would queue every run and start none, forever."""
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError("at least 1 (runs at a time)")
    return jobs


def parse_setting(item: str) -> tuple[str, Any]:
    """KEY=VALUE of a variant spec or of --set: the value as JSON (64, 0.5, true, null), or
    the string itself (full, sine); TrainConfig.from_dict checks the types."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"{item!r}: expected KEY=VALUE (e.g. dim=64)")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def worker(job: Job, base: dict[str, Any], result_file: Path, log_file: Path) -> None:
    """One training run in a child process; writes its record to `result_file`."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("sine")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    sys.stderr = open(log_file, "a", buffering=1)  # noqa: SIM115 (tqdm, warnings)
    started = time.perf_counter()
    record: dict[str, Any] = {"key": job.key, "dataset": job.dataset, "variant": job.variant,
                              "seed": job.seed, "settings": job.run_settings(base)}
    try:
        from trainer.config import TrainConfig
        from trainer.run import load_data, train_split

        config = TrainConfig.from_dict({**job.run_settings(base), "seed": job.seed})
        data = load_data(job.path, config)
        with tempfile.TemporaryDirectory(prefix="sine-variant-") as tmp:
            metrics = train_split(data, {"path": str(job.path)}, Path(tmp) / "run", config)
        record.update({
            "status": "interrupted" if metrics.get("interrupted") else FINISHED,
            **{k: metrics[k] for k in ("valid", "test", "test_history_kept", "epochs",
                                       "best_epoch", "train_seconds", "examples_per_second",
                                       "bf16_products", "device", "threads", "torch",
                                       "commit", "history")},
            "concepts": {k: v for k, v in metrics.get("concepts", {}).items()
                         if k != "concept_counts"},
        })
    except KeyboardInterrupt:  # stopped before or after training proper: no metrics
        record["status"] = "interrupted"
    except Exception as exc:  # recorded, and the grid goes on
        logger.exception("run failed")
        record.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    record["seconds"] = round(time.perf_counter() - started, 2)
    tmp_file = result_file.with_suffix(".tmp")
    tmp_file.write_text(json.dumps(record))
    os.replace(tmp_file, result_file)


RESUME_IGNORES = ("device", "threads")
"""Settings a resumed grid may change: where and on how many threads a run ran, not what it was."""


def jobs_to_run(skipped: dict[str, dict[str, Any]], jobs: list[Job], base: dict[str, Any],
                out: Path) -> list[Job]:
    """The jobs a resumed grid still has to run; refuses a file trained with other settings.

    A second invocation skips the keys already done (`skipped`: key -> its record). Were a
    job's settings different from those of a run in its cell (the same dataset and variant:
    the same key or another seed; another patience, say), the file would end up averaging
    two protocols in one cell without a word; so the first difference is an error that says
    what the file holds and what the command asked for. (Cells of other datasets may differ:
    the sine_variants file trained ml-100k to patience 5.)
    """
    twice = sorted(key for key, n in Counter(job.key for job in jobs).items() if n > 1)
    if twice:  # both runs would write one key: the later record supersedes the earlier
        raise SystemExit(f"{', '.join(twice)}: asked for twice; give each model or variant, "
                         "dataset and seed once (variants need names of their own)")
    cells: dict[str, list[dict[str, Any]]] = {}
    for key, record in skipped.items():
        if "settings" in record:
            cells.setdefault(key.rsplit("/", 1)[0], []).append(record)
    for job in jobs:
        wanted = job.run_settings(base)
        for record in cells.get(job.key.rsplit("/", 1)[0], []):
            refuse_other_settings(out, record, job.key, wanted, "Give the recorded settings "
                                  "to extend that file, or --out for a new one.")
    return [job for job in jobs if job.key not in skipped]


def refuse_other_settings(out: Path, record: dict[str, Any], asked: str, wanted: dict[str, Any],
                          advice: str, skip: frozenset[str] = frozenset()) -> None:
    """Stop, naming each setting (but those in `skip` and RESUME_IGNORES) in which `wanted`,
    what this command asks `asked` to train with, differs from the `record` in `out`."""
    have = record["settings"]
    if differ := other_settings(have, wanted, skip):
        raise SystemExit(
            f"{out} holds {record['key']}, trained with "
            + ", ".join(setting_text(have, k) for k in differ)
            + f"; this command asks for {asked} with "
            + ", ".join(setting_text(wanted, k) for k in differ) + f". {advice}")


@functools.cache
def config_defaults() -> dict[str, Any]:
    """TrainConfig's defaults, built once: every resume comparison reads them."""
    from trainer.config import TrainConfig

    return TrainConfig().to_dict()


def other_settings(have: dict[str, Any], wanted: dict[str, Any],
                   skip: frozenset[str] = frozenset()) -> list[str]:
    """The settings (but those in `skip` and RESUME_IGNORES) in which `wanted` differs from
    `have`, a setting left unset being TrainConfig's default."""
    default = config_defaults()
    return sorted(k for k in set(have) | set(wanted)
                  if k not in skip and k not in RESUME_IGNORES
                  and have.get(k, default.get(k)) != wanted.get(k, default.get(k)))


def spec_value(value: Any) -> str:
    """A value as a variant spec or --set reads it back: a string as it is, else JSON
    (true, null; not Python's True, None)."""
    return value if isinstance(value, str) else json.dumps(value)


def setting_text(settings: dict[str, Any], key: str) -> str:
    """key=value as a variant spec or --set takes it back, or what an unset key defaults to."""
    if key in settings:
        return f"{key}={spec_value(settings[key])}"
    default = config_defaults().get(key)
    return f"{key} unset (default {spec_value(default) if default is not None else 'none'})"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line cut short by a kill
                continue
    return records


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def run_grid(jobs: list[Job], args: argparse.Namespace, base: dict[str, Any],
             on_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Run `jobs`, at most args.jobs at a time, until done or past the deadline.

    `on_record` may complete each record before it is written (bench/paper_table.py adds
    its own fields there).
    """
    from tqdm import tqdm

    # runs are stopped by SIGINT (each keeps its best epoch so far); a process started in a
    # shell's background inherits SIGINT ignored, and so would the spawned runs: restore it
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def write(record: dict[str, Any]) -> None:
        append_jsonl(args.out, on_record(record) if on_record else record)

    context = mp.get_context("spawn")  # no inherited torch/CUDA state in the children
    scratch_dir = tempfile.TemporaryDirectory(prefix="sine-variants-")  # the workers' results
    scratch = Path(scratch_dir.name)
    logs = args.logs
    logs.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + args.deadline_s if args.deadline_s else float("inf")
    pending = list(jobs)
    running: list[Running] = []
    bar = tqdm(total=len(jobs), desc="runs", unit="run", file=sys.stdout)
    stopping = False
    try:
        while pending or running:
            now = time.monotonic()
            if now >= deadline and not stopping:
                stopping = True
                log.warning("deadline: stopping %d running, %d not started",
                            len(running), len(pending))
            for r in running:
                reason = "deadline" if stopping else (
                    "capped" if args.run_cap_s and now - r.started > args.run_cap_s else None)
                if reason and r.stop_reason is None:
                    r.stop_reason, r.stop_sent = reason, now
                    os.kill(r.process.pid, signal.SIGINT)
                elif r.stop_reason and not r.killed and now - r.stop_sent > args.grace_s:
                    r.process.kill()
                    r.killed = True
            for r in [r for r in running if not r.process.is_alive()]:
                r.process.join()
                running.remove(r)
                record = finish_record(r, time.monotonic())
                write(record)
                bar.update(1)
                bar.write(summary_line(record))
            if stopping:
                for job in pending:
                    write({"key": job.key, "dataset": job.dataset, "variant": job.variant,
                           "seed": job.seed, "settings": job.run_settings(base),
                           "status": "not_started"})
                    bar.update(1)
                pending = []
            too_late = deadline - time.monotonic() < args.min_start_s
            while pending and len(running) < args.jobs and not stopping and not too_late:
                job = pending.pop(0)
                result_file = scratch / (job.key.replace("/", "__") + ".json")
                log_file = logs / (job.key.replace("/", "__") + ".log")
                process = context.Process(target=worker, args=(job, base, result_file, log_file),
                                          daemon=False)
                process.start()
                running.append(Running(job, process, result_file, time.monotonic()))
            if pending and too_late and not running:
                stopping = True
                continue
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C reached the children too: collect what they write
        log.warning("interrupted: collecting %d running runs", len(running))
        for r in running:
            r.stop_reason = r.stop_reason or "interrupted"
            r.process.join(args.grace_s)
            if r.process.is_alive():
                r.process.kill()
                r.killed = True
                r.process.join()
            write(finish_record(r, time.monotonic()))
    finally:
        bar.close()
        scratch_dir.cleanup()


def finish_record(r: Running, now: float) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if r.result_file.exists():
        record = json.loads(r.result_file.read_text())
        r.result_file.unlink()
    else:
        record = {"key": r.job.key, "dataset": r.job.dataset, "variant": r.job.variant,
                  "seed": r.job.seed, "status": "failed",
                  "error": f"worker exited with code {r.process.exitcode} and no result"}
    if r.stop_reason:  # stopped by us: never averaged in, whatever the worker said
        record["status"] = r.stop_reason if not r.killed else f"{r.stop_reason} (killed)"
    record["wall_seconds"] = round(now - r.started, 2)
    return record


def summary_line(record: dict[str, Any]) -> str:
    line = f"{record['key']}: {record['status']} in {record.get('wall_seconds', 0):.0f} s"
    if "test_history_kept" in record:
        kept = record["test_history_kept"]
        line += (f", hr@50 {kept['hr@50']:.4f} (history kept), epochs {record['epochs']} "
                 f"(best {record['best_epoch']})")
    if record.get("error"):
        line += f": {record['error']}"
    return line


def mean_spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.mean(values),
            "spread": statistics.stdev(values) if len(values) > 1 else None}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (dataset, variant): mean and spread over the finished seeds (latest record of each)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record["key"]] = record
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in latest.values():
        groups.setdefault((record["dataset"], record["variant"]), []).append(record)
    rows = []
    for (dataset, variant), group in sorted(groups.items()):
        done = [r for r in group if r["status"] == FINISHED]
        row: dict[str, Any] = {
            "dataset": dataset, "variant": variant,
            "settings": (done or group)[0].get("settings"),
            "seeds": sorted(r["seed"] for r in done),
            "excluded": {r["key"]: r["status"] for r in group if r["status"] != FINISHED},
        }
        if done:
            for protocol in PROTOCOLS:
                row[protocol] = {m: mean_spread([r[protocol][m] for r in done]) for m in METRICS}
            row["epochs"] = mean_spread([r["epochs"] for r in done])
            row["best_epoch"] = mean_spread([r["best_epoch"] for r in done])
            row["seconds"] = mean_spread([r["wall_seconds"] for r in done])
            for name in ("top_interest_weight", "assignment_sharpness", "distinct_concepts"):
                values = [r["concepts"][name] for r in done if name in r.get("concepts", {})]
                if values:
                    row[name] = mean_spread(values)
        rows.append(row)
    return {"rows": rows, "runs": len(latest),
            "finished": sum(r["status"] == FINISHED for r in latest.values())}


def fmt(cell: dict[str, float | None] | None, digits: int = 4) -> str:
    if not cell:
        return "-"
    text = f"{cell['mean']:.{digits}f}"
    return text if cell["spread"] is None else f"{text} ± {cell['spread']:.{digits}f}"


def markdown(summary: dict[str, Any], header: str) -> str:
    lines = [header, "",
             f"{summary['finished']} of {summary['runs']} runs finished; mean ± sample standard "
             "deviation over finished seeds (a single seed shows no spread). Runs that were "
             "capped, stopped at the deadline, failed or never started are listed, not averaged.",
             ""]
    for protocol, title in PROTOCOLS.items():
        lines += [f"### Test, {title}", "",
                  "| dataset | variant | seeds | " + " | ".join(METRICS) + " |",
                  "| --- | --- | --- | " + " | ".join("---:" for _ in METRICS) + " |"]
        for row in summary["rows"]:
            cells = [fmt(row.get(protocol, {}).get(m)) for m in METRICS]
            seeds = ",".join(map(str, row["seeds"])) or "none"
            lines.append(f"| {row['dataset']} | {row['variant']} | {seeds} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Interests and cost", "",
              "| dataset | variant | epochs | best epoch | top aggregation weight | "
              "assignment sharpness | active prototypes | seconds per run | excluded runs |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in summary["rows"]:
        excluded = ", ".join(f"{k.rsplit('/', 1)[1]}: {v}" for k, v in row["excluded"].items())
        lines.append(
            f"| {row['dataset']} | {row['variant']} | {fmt(row.get('epochs'), 1)} | "
            f"{fmt(row.get('best_epoch'), 1)} | {fmt(row.get('top_interest_weight'), 3)} | "
            f"{fmt(row.get('assignment_sharpness'), 3)} | "
            f"{fmt(row.get('distinct_concepts'), 0)} | {fmt(row.get('seconds'), 0)} | "
            f"{excluded or '-'} |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, header: str) -> str:
    from sine.atomic import atomic_write

    summary = summarise(read_jsonl(out))
    text = markdown(summary, header)
    atomic_write(out.with_suffix(".summary.json"), json.dumps(summary, indent=2))
    atomic_write(out.with_suffix(".md"), text)
    return text


def run_settings(base: dict, args: argparse.Namespace) -> dict:
    """`base` with the command line's device and threads, and its --epochs / --patience
    where given (0: keep the base's); shared by the runners built on this module."""
    settings = dict(base, device=args.device, threads=args.threads)
    for name in ("epochs", "patience"):
        if getattr(args, name):
            settings[name] = getattr(args, name)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of DATASET.csv.gz files")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        help="names in --data, or paths to logs")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        help=f"of {', '.join(VARIANTS)}, or NAME:key=value,key=value")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=job_count, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=None, help="most epochs per run")
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    parser.add_argument("--run-cap-s", type=float, default=0.0,
                        help="stop a run after this many seconds (status capped); 0 = none")
    parser.add_argument("--deadline-s", type=float, default=0.0,
                        help="stop everything this many seconds after the start; 0 = none")
    parser.add_argument("--grace-s", type=float, default=30.0,
                        help="seconds a stopped run gets to write its record before a kill")
    parser.add_argument("--min-start-s", type=float, default=30.0,
                        help="start no run with less than this left before the deadline")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sine_variants.jsonl")
    parser.add_argument("--logs", type=Path, default=ROOT / "runs" / "sine_variants_logs",
                        help="folder for each run's training log")
    parser.add_argument("--summary-only", action="store_true",
                        help="only rewrite the summary of --out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    header = "# SINE variants (bench/sine_variants.py)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.summary_only:
        print(write_summary(args.out, header))
        return

    variants, base = checked_settings([parse_variant(v) for v in args.variants],
                                      run_settings(BASE, args))
    paths = dataset_paths(args.datasets, args.data)
    done = {r["key"]: r for r in read_jsonl(args.out) if r.get("status") == FINISHED}
    # seed-major order: a grid cut short by the deadline has every variant on every dataset
    jobs = [Job(dataset, path, name, seed, settings)
            for seed in args.seeds for dataset, path in paths.items()
            for name, settings in variants]
    todo = jobs_to_run(done, jobs, base, args.out)
    log.info("%d runs (%d finished already in %s), %d at a time on %s, %d threads each",
             len(todo), len(jobs) - len(todo), args.out, args.jobs, args.device, args.threads)
    run_grid(todo, args, base)
    print(write_summary(args.out, header))


if __name__ == "__main__":
    main()
