"""The `sine` command line: one subcommand per pipeline stage.

Each subcommand is a thin shell over a library function that the tests call directly.
Heavy dependencies are imported inside the commands, so `sine serve` never loads torch
and `sine --help` is instant. Errors a user can fix are printed as one line (exit 2);
tracebacks are reserved for bugs.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from sine.errors import SineError
from sine.launch import speaks_for_launch

app = typer.Typer(
    name="sine",
    help="SINE recommendation service: train, export, index and serve a sparse-interest model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("sine")


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("sine")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `SineError` or a file-system refusal as one line and exit 2; Ctrl-C exits 130.

    A file that cannot be read (a bundle mounted into a container whose user may not
    read it, a full disk) is the user's to fix, not a bug: one line that names the path
    and the user, no traceback. Under torchrun every rank meets the same bad option, so
    only the first process of each node prints the line (`sine.launch.speaks_for_launch`);
    the others exit with the same code in silence.
    """

    def say(message: str) -> None:
        if speaks_for_launch():
            typer.secho(message, fg=typer.colors.RED, err=True)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SineError as exc:
            say(f"error: {exc}")
            raise typer.Exit(2) from None
        except OSError as exc:
            if exc.errno is None:  # not the file system's or the network's answer
                raise
            where = f": {exc.filename}" if exc.filename else ""
            hint = (f" (this process runs as uid {os.getuid()}: make it readable to that user)"
                    if isinstance(exc, PermissionError) else "")
            say(f"error: {exc.strerror}{where}{hint}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            if speaks_for_launch():
                typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    setup_logging(verbose, quiet)


# --------------------------------------------------------------------------- train


def _train_config_parameters() -> list[inspect.Parameter]:
    """One CLI option per TrainConfig field: help and default text come from the field."""
    from trainer.config import TrainConfig, field_types

    params = []
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        base = field_types()[f.name][0]
        choices = f.metadata.get("choices")
        help_text = f.metadata["help"]
        if choices:
            help_text += f" Choices: {', '.join(choices)}."
        if default is not None:
            help_text += f" [default: {str(default).lower() if base is bool else default}]"
        decls = [f"{flag}/--no-{flag[2:]}"] if base is bool else [flag]
        # plain text: rich would read a bracketed part such as [default: X] as a markup tag and drop it
        option = typer.Option(None, *decls, help=escape(help_text), show_default=False,
                              rich_help_panel="Training options")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=option, annotation=Optional[base]))  # noqa: UP045
    return params


def _collect_config(config_file: Path | None, overrides: dict[str, Any]):
    from trainer.config import TrainConfig, load_config_file

    values = load_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)


def train(
    data: Path,
    out: Path,
    config_file: Path | None,
    user_col: str,
    item_col: str,
    time_col: str,
    sep: str | None,
    **overrides: Any,
) -> None:
    from sine.attributes import read_attribute_file
    from sine.data.logs import LogColumns
    from sine.launch import launched_rank
    from trainer.run import train_run

    config = _collect_config(config_file, overrides)
    # a bad file fails before training (--attributes is a TrainConfig key: SINE-cate reads it)
    table = read_attribute_file(config.attributes) if config.attributes else None
    metrics = train_run(data, out, config, LogColumns(user_col, item_col, time_col), sep)
    if launched_rank() != 0:  # under torchrun: rank 0 wrote the run and reports it
        return
    if table is not None:
        _save_run_attributes(out, table)
    _print_metrics(metrics)


def _save_run_attributes(run_dir: Path, table) -> None:
    """The attributes, aligned with the run's items, beside the run (`sine export` reads them)."""
    from sine import attributes
    from sine.atomic import atomic_write
    from sine.data.vocabulary import ItemVocabulary

    items = ItemVocabulary.load(run_dir / "vocabulary.json").ids
    atomic_write(run_dir / attributes.RUN_FILE, attributes.to_json(attributes.align(table, items)))


def _train_command() -> Callable[..., Any]:
    def command(**kwargs: Any) -> None:
        train(**kwargs)

    base = [
        inspect.Parameter("data", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(..., "--data", "-d", help="Interaction log: CSV, TSV (optionally .gz) or Parquet with user, item and timestamp columns.", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(..., "--out", "-o", help="Run directory to write (replaced atomically when training completes).", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
                          default=typer.Option(None, "--config", "-c", help="JSON or TOML file of training options; flags override it.", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("user_col", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("user_id", "--user-col", help="Name of the user id column.", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("item_col", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("item_id", "--item-col", help="Name of the item id column.", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("time_col", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("timestamp", "--time-col", help="Name of the timestamp column (numbers or dates).", rich_help_panel="Data")),  # noqa: E501
        inspect.Parameter("sep", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                          default=typer.Option(None, "--sep", help="Field separator (default: from the file name, ',' or tab).", rich_help_panel="Data")),  # noqa: E501
    ]
    params = base + _train_config_parameters()
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = (
        "Train SINE (or a baseline) on an interaction log and evaluate it.\n\n"
        "Splits the log leave-one-out (last click per user = test, second to last = "
        "validation), trains with early stopping on validation NDCG@10, and writes the "
        "checkpoint, vocabulary, config, metrics.json and plots to --out."
    )
    return user_errors(command)


app.command("train", no_args_is_help=True)(_train_command())


# ------------------------------------------------------------------------ evaluate


@app.command("evaluate", no_args_is_help=True)
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory written by `sine train`."),
    data: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--data", "-d",
        help="Log to evaluate on (default: the run's training log). Split the same way; "
        "clicks on items the model does not know are dropped.",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the metrics as JSON here."),  # noqa: UP045
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
) -> None:
    """Evaluate a trained run: HR and NDCG at 10/20/50, history removed and kept."""
    from sine.atomic import atomic_write
    from sine.bundle import model_variant
    from sine.data.logs import LogColumns
    from trainer.fit import resolve_device
    from trainer.run import evaluate_all, load_data, load_run

    dev = resolve_device(device)
    run = load_run(run_dir, dev)
    source = data or Path(run.info["data"]["path"])
    cols = run.info["data"]["columns"]
    split = load_data(source, run.config, LogColumns(cols["user"], cols["item"], cols["timestamp"]),
                      run.info["data"].get("sep"), vocabulary=run.vocabulary)
    metrics: dict[str, Any] = {"model": run.config.model,
                               "variant": model_variant(run.config.model, run.config.to_dict()),
                               "run": str(run_dir),
                               "dataset": {"path": str(source), "fingerprint": split.fingerprint}}
    metrics.update(evaluate_all(run.scorer(), split, run.config.max_len, dev))
    _print_metrics(metrics)
    if out:
        atomic_write(out, json.dumps(metrics, indent=2))


def _print_metrics(metrics: dict[str, Any]) -> None:
    from sine.metrics import METRIC_NAMES

    header = f"{'':20s}" + "".join(f"{name:>9s}" for name in METRIC_NAMES)
    model, variant = metrics.get("model"), metrics.get("variant")
    lines = [f"model: {model}" + (f" ({variant})" if variant and variant.lower() != model else ""), header]
    for key in ("valid", "test", "test_history_kept"):
        if key in metrics:
            lines.append(f"{key:20s}" + "".join(f"{metrics[key][m]:9.4f}" for m in METRIC_NAMES))
    if "best_epoch" in metrics:
        lines.append(
            f"best epoch {metrics['best_epoch']} of {metrics['epochs']}, "
            f"{metrics['train_seconds']:.1f} s training, "
            f"{metrics['examples_per_second']:,.0f} examples/s"
        )
    typer.echo("\n".join(lines))


# -------------------------------------------------------------------------- export


@app.command("export", no_args_is_help=True)
@user_errors
def export(
    run_dir: Path = typer.Argument(..., help="Run directory written by `sine train` (a neural model, not pop)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write (atomically)."),
    attributes: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--attributes", help="Item attribute file (CSV/Parquet: item_id plus attribute columns); "
        "default: the one given to `sine train`, if any."),
) -> None:
    """Export a trained run as a model bundle: ONNX user encoder, item table, manifest."""
    from trainer.export import export_bundle

    bundle = export_bundle(run_dir, out, attributes=attributes)
    typer.echo(f"bundle {bundle.version}: {bundle.num_items:,} items, D={bundle.dim} -> {out}")


# ------------------------------------------------------------------------- inspect


@app.command("inspect", no_args_is_help=True)
@user_errors
def inspect_command(
    path: Path = typer.Argument(..., metavar="RUN_OR_BUNDLE",
                                help="A SINE bundle (`sine export`) or run directory (`sine train`)."),
    top: int = typer.Option(10, help="Concepts to list, most items captured first."),
    nearest: int = typer.Option(8, help="Nearest items per concept (cosine; the paper shows 8)."),
    items_file: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="CSV with item_id and optionally title/name, year and categories/genres "
        "('|'-separated) columns, e.g. ../shared/data/ml-100k.items.csv.gz."),
    plot: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--plot", help="Also draw the concept sizes and a 2-D projection of the items to this PNG."),
) -> None:
    """Report SINE's learned concepts: items each prototype captures and its nearest items.

    An item is captured by the prototype with the largest inner product with its
    embedding: the concept it activates first when it is the whole sequence (eq. 2).
    """
    from sine_cli.concepts_report import inspect_concepts

    typer.echo(inspect_concepts(path, top, nearest, items_file, plot))


# --------------------------------------------------------------------- build-index


@app.command("build-index", no_args_is_help=True)
@user_errors
def build_index(
    bundle_dir: Path = typer.Argument(..., help="Bundle directory written by `sine export`."),
    index_type: str = typer.Option(
        "auto", "--type", help="auto, flat (exact), hnsw, ivf, ivfpq or ivfsq8 (IVF-SQ8 + exact "
                               "re-ranking); auto picks by catalog size and publishes exact search "
                               "where its pick (on the CPU HNSW, then ivfsq8) is not faster than it or "
                               "cannot be tuned to the target recall."),
    gpu: str = typer.Option("auto", help="Build and search on a GPU: auto (when faiss has one), on, off."),
    target_recall: float = typer.Option(
        0.99, help="Raise efSearch / nprobe until recall@50 against exact search reaches this."),
    recall_floor: float = typer.Option(
        0.95, help="Refuse to publish an index whose recall@50 is below this."),
    force: bool = typer.Option(False, help="Publish even below the recall floor."),
    out: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--out", "-o", help="Write the indexed bundle here instead of replacing BUNDLE_DIR."),
    threads: int = typer.Option(0, help="faiss threads (0: all cores)."),
) -> None:
    """Add a faiss index to a bundle, with recall and latency measured against exact search."""
    from index_builder.build import build_for_bundle

    if not 0 < recall_floor <= 1 or not 0 < target_recall <= 1:
        raise SineError("--target-recall and --recall-floor must be in (0, 1]")
    bundle = build_for_bundle(bundle_dir, index_type, gpu, target_recall, recall_floor, force, out,
                              threads)
    index = bundle.manifest["index"]
    recall = ", ".join(f"{k} {v:.4f}" for k, v in index["recall"].items())
    typer.echo(f"{index['type']} index on {index['built_on']}: {recall}; "
               f"{index['latency']['batch1_p50_ms']:.3f} ms per query "
               f"(exact: {index['exact_latency']['batch1_p50_ms']:.3f} ms) -> {bundle.path}")


# --------------------------------------------------------------------------- serve


@app.command("serve")
@user_errors
def serve(
    bundle: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--bundle", "-b", help="Bundle directory or bundle store [env SINE_BUNDLE]."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
    redis_url: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Redis for histories and events [env SINE_REDIS_URL]; default: in-process store."),
) -> None:
    """Serve POST /recommend and the operations endpoints (settings: SINE_* variables)."""
    import uvicorn

    from service.core.config import Settings
    from sine.bundle import read_bundle
    from sine.bundle_store import is_bundle

    if bundle is not None:
        os.environ["SINE_BUNDLE"] = str(bundle)
    if redis_url is not None:
        os.environ["SINE_REDIS_URL"] = redis_url
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: a SINE_* variable is wrong
        raise SineError(f"bad setting: {exc}") from None
    if settings.bundle is None and settings.redis_url is None:
        raise SineError("no bundle: pass --bundle DIR (or set SINE_BUNDLE)")
    if settings.bundle is not None:
        if is_bundle(settings.bundle):
            read_bundle(settings.bundle)  # a single bundle: refuse a bad one before starting
        elif not settings.bundle.is_dir():
            raise SineError(f"--bundle {settings.bundle}: no such directory (a bundle, or a bundle "
                            "store that the retrain publishes into)")
        # a store with nothing published yet is fine: /readyz says so until the first publish
    uvicorn.run("service.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, timeout_graceful_shutdown=30,
                limit_concurrency=settings.limit_concurrency)


# ------------------------------------------------------------ retrain / rollback


@app.command("retrain")
@user_errors
def retrain(
    data_dir: Path = typer.Option(..., envvar="SINE_DATA_DIR",
                                  help="Event store, runs, refused candidates and reports."),
    store: Path = typer.Option(..., envvar="SINE_STORE",
                               help="Bundle store: one directory per version and a CURRENT pointer."),
    base_log: Optional[Path] = typer.Option(  # noqa: UP045
        None, envvar="SINE_BASE_LOG", help="The original interaction log the events add to."),
    redis_url: Optional[str] = typer.Option(  # noqa: UP045
        None, envvar="SINE_REDIS_URL", help="Redis with the event stream and the live-model pointer."),
    redis_prefix: str = typer.Option("sine:", envvar="SINE_REDIS_PREFIX", help="Redis key prefix."),
    metric: str = typer.Option("ndcg@10", help="Validation metric the gate compares."),
    margin: float = typer.Option(0.001, help="Promote unless the candidate is worse than the live "
                                 "model by more than this (absolute)."),
    keep: int = typer.Option(5, help="Bundle versions to keep for rollback."),
    warm_start: bool = typer.Option(False, help="Initialise from the live model's run (items by id)."),
    warm_recent: int = typer.Option(5, help="Warm start: train on each user's last this many clicks "
                                    "plus every stored event (0: the whole log)."),
    warm_epochs: int = typer.Option(5, help="Warm start: the most epochs."),
    warm_patience: int = typer.Option(1, help="Warm start: epochs without a better validation "
                                      "NDCG@10 before stopping (the untrained start counts)."),
    config_file: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--config", "-c", help="Training options (default: the live model's)."),
    epochs: Optional[int] = typer.Option(None, help="Override the most epochs."),  # noqa: UP045
    index_type: str = typer.Option("auto", "--index-type", help="Index type (see build-index)."),
    gpu: str = typer.Option("auto", help="Index on a GPU: auto, on, off."),
    recall_floor: float = typer.Option(0.95, help="Refuse an index below this recall@50."),
    attributes: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--attributes", envvar="SINE_ITEM_ATTRIBUTES",
        help="Item attribute file for the new bundle; default: the live bundle's, by item id."),
) -> None:
    """The nightly cycle: export events, retrain, gate against the live model, publish, swap.

    Exit codes: 0 promoted, 3 refused by the gate, 1 failed, 4 another retrain is running.
    """
    from deploy.retrain import RetrainSettings, run_retrain
    from sine.data.logs import LogColumns
    from sine.metrics import METRIC_NAMES

    if metric not in METRIC_NAMES:
        raise SineError(f"--metric must be one of {', '.join(METRIC_NAMES)}")
    if warm_recent < 0 or warm_epochs < 1 or warm_patience < 1:
        raise SineError("--warm-recent must be 0 or more, --warm-epochs and --warm-patience 1 or more")
    overrides = {"epochs": epochs} if epochs else {}
    settings = RetrainSettings(
        data_dir=data_dir, store=store, base_log=base_log, columns=LogColumns(), redis_url=redis_url,
        redis_prefix=redis_prefix, metric=metric, margin=margin, keep=keep, warm_start=warm_start,
        warm_recent=warm_recent, warm_epochs=warm_epochs, warm_patience=warm_patience,
        config_file=config_file, overrides=overrides, index_type=index_type, gpu=gpu,
        recall_floor=recall_floor, attributes=attributes,
    )
    report = run_retrain(settings)
    summary = {k: report.get(k) for k in ("status", "exit_code", "version", "reason", "error",
                                          "live_version_before", "live_version_after",
                                          "total_seconds", "report_path")}
    typer.echo(json.dumps({k: v for k, v in summary.items() if v is not None}, indent=2))
    raise typer.Exit(report["exit_code"])


@app.command("rollback")
@user_errors
def rollback_command(
    store: Path = typer.Option(..., envvar="SINE_STORE", help="Bundle store to roll back."),
    redis_url: Optional[str] = typer.Option(  # noqa: UP045
        None, envvar="SINE_REDIS_URL", help="Also move the Redis pointer and announce the swap."),
    redis_prefix: str = typer.Option("sine:", envvar="SINE_REDIS_PREFIX", help="Redis key prefix."),
) -> None:
    """Make the previous bundle version live again (store pointer, Redis pointer, reload message)."""
    from sine.bundle_store import rollback_everywhere

    typer.echo(f"live version: {rollback_everywhere(store, redis_url, redis_prefix)}")


@app.command("schedule", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def schedule(
    ctx: typer.Context,
    cron: str = typer.Option(..., envvar="SINE_RETRAIN_CRON", help="Cron expression, e.g. '0 3 * * *'."),
    run_now: bool = typer.Option(False, help="Also run once at start."),
) -> None:
    """Run the command after `--` on a cron schedule.

    Example: sine schedule --cron '0 3 * * *' -- sine retrain
    """
    from deploy.scheduler import next_run, run_schedule

    if not ctx.args:
        raise SineError("give the command to run after --, e.g. -- sine retrain")
    from datetime import datetime

    next_run(cron, datetime.now())  # validates the expression
    run_schedule(cron, ctx.args, run_now)


# --------------------------------------------------------------------------- synth


@app.command("synth")
@user_errors
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="CSV file to write (.csv or .csv.gz); "
                             "with --shape industrial, a directory for the Parquet dataset."),
    users: int = typer.Option(2000, help="Number of users (demo shape)."),
    items: int = typer.Option(None, help="Number of items (default: 1,000 demo, 1,000,000 "
                              "industrial)."),
    groups: int = typer.Option(None, help="Latent item groups, the planted interests (default: "
                               "20 demo; industrial 2,000, or items / 50 when that is fewer)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same log."),
    shape: str = typer.Option("demo", help="demo: a small CSV log; industrial: Zipf items in "
                              "clusters, multi-interest users in sessions, partitioned Parquet "
                              "(sine/data/industrial.py)."),
    clicks: int = typer.Option(10_000_000, help="Clicks to generate (industrial shape)."),
    zipf: float = typer.Option(None, help="Item popularity exponent (industrial shape; "
                               "default: the spec's)."),
) -> None:
    """Write a synthetic interaction log with planted user interests, and its item categories."""
    from sine.data.synthetic import SyntheticSpec, synthetic_items, synthetic_log

    if shape == "industrial":
        from sine.data.industrial import IndustrialSpec, item_attributes, write_parquet_dataset

        items = items if items is not None else IndustrialSpec.num_items
        # 2,000 clusters at the default million items; a small catalog gets ~50 items a cluster
        groups = groups if groups is not None else min(IndustrialSpec.num_clusters, max(1, items // 50))
        if not 1 <= groups <= items:
            raise SineError(f"--groups {groups:,} must be between 1 and --items ({items:,})")
        try:
            spec = IndustrialSpec(num_items=items, num_clicks=clicks, num_clusters=groups, seed=seed,
                                  **({"zipf": zipf} if zipf is not None else {}))
        except ValueError as exc:
            raise SineError(str(exc)) from None
        if out.exists() and any(out.iterdir()):
            raise SineError(f"{out}: exists and is not empty; choose a new directory")
        written = write_parquet_dataset(spec, out)
        catalog = items_file_of(out)  # beside the dataset: the reader takes every file inside it
        item_attributes(spec).to_csv(catalog, index=False)
        typer.echo(f"wrote {written:,} clicks on {items:,} items in {groups:,} clusters to {out} "
                   "(day= partitions; the cluster of each click's item in column category), every "
                   f"item's cluster to {catalog} (sine train --attributes, --prototypes-from category)")
        return
    if shape != "demo":
        raise SineError(f"--shape must be demo or industrial, not {shape!r}")
    items = items if items is not None else SyntheticSpec.num_items
    groups = groups if groups is not None else SyntheticSpec.num_groups
    if users < 1 or items < groups or groups < 1:
        raise SineError("need users >= 1, groups >= 1 and items >= groups")
    spec = SyntheticSpec(num_users=users, num_items=items, num_groups=groups, seed=seed)
    frame = synthetic_log(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    catalog = items_file_of(out)
    synthetic_items(spec).to_csv(catalog, index=False)
    typer.echo(f"wrote {len(frame):,} clicks of {users:,} users on {items:,} items to {out}, "
               f"their categories (the planted groups) to {catalog} (sine train --attributes)")


def items_file_of(log: Path) -> Path:
    """`clicks.csv` -> `clicks.items.csv` (`.csv.gz` -> `.items.csv.gz`), as ml-100k's files."""
    name = log.name
    for suffix in (".csv.gz", ".csv", ".tsv.gz", ".tsv"):
        if name.endswith(suffix):
            return log.with_name(name[: -len(suffix)] + ".items" + suffix)
    return log.with_name(name + ".items.csv")


# ---------------------------------------------------------------------------- demo


@app.command("demo")
@user_errors
def demo(
    workdir: Path = typer.Option(Path("demo"), "--workdir", "-w",
                                 help="Directory for the synthetic log and the runs."),
    epochs: int = typer.Option(20, help="Most epochs for SINE."),
) -> None:
    """The local demo: a synthetic log, most-popular vs SINE, side by side."""
    from sine_cli.demo import run_demo

    run_demo(workdir, epochs)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
