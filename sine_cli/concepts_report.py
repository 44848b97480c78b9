"""`sine inspect`: a SINE model's concepts as a readable report and a picture.

The numbers come from `sine.concepts` (the same as GET /model/concepts); this module finds
the concept pool in a bundle or a run directory, names the items when an items file is
given, and lays the result out for a person. Torch is imported only for a run directory
(its weights are a PyTorch checkpoint); matplotlib only for --plot.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sine import attributes as item_attributes
from sine.atomic import atomic_write
from sine.bundle import ATTRIBUTES, MANIFEST, model_variant, read_bundle
from sine.bundle_store import live_bundle_path
from sine.concepts import (
    CAPTURE_RULE,
    NEAREST_MAX,
    ConceptAnalysis,
    NoConceptPool,
    analyse,
    arrays_of,
    label_column_of,
)
from sine.errors import SineError

RUN_CONFIG = "config.json"  # what marks a run directory (trainer.run.CONFIG; no torch import here)
PLOT_MAX_ITEMS = 20000
"""Items drawn in the projection at most (a random sample beyond): the picture stays legible."""
NAME_COLUMNS = ("title", "name")
GENRE_COLUMNS = ("categories", "genres", "genre", "category")


@dataclass
class ConceptSource:
    """A concept pool and the items it is compared with, from a bundle or a run."""

    description: str  # "bundle <version>" or "run <path>"
    model: str  # the variant's name (`sine.bundle.model_variant`): SINE, SINE-label, SINE-cate ...
    prototypes: np.ndarray  # [L, D]
    item_table: np.ndarray  # [M, D], X of eqs. (1)-(2)
    items: list[str]  # raw id of row r
    labels: list[str] | None = None  # SINE-cate: the attribute value prototype l stands for
    labels_from: str | None = None  # ... and that attribute's name (--prototypes-from)
    label_column: item_attributes.Column | None = None  # ... that attribute's labels per item row
    no_label_column: str | None = None  # SINE-cate without label_column: why (said once in the report)


def load_source(path: Path) -> ConceptSource:
    """The concept pool of a bundle (`sine export`; in a bundle store, the live one) or a run
    directory (`sine train`)."""
    if not path.exists():
        raise SineError(f"{path}: no such file or directory (give a bundle written by `sine export` "
                        "or a run directory written by `sine train`)")
    live = live_bundle_path(path) if path.is_dir() and not (path / RUN_CONFIG).is_file() else None
    if live is not None:
        bundle = read_bundle(live)
        prototypes, table = arrays_of(bundle)
        training = bundle.manifest.get("training") or {}
        source = ConceptSource(f"bundle {bundle.version}", model_variant(str(bundle.manifest["model"]), training),
                               prototypes, table, bundle.items, bundle.concept_labels,
                               training.get("prototypes_from"), label_column_of(bundle))
        if source.labels is not None and source.label_column is None:
            source.no_label_column = (
                f"the bundle's {ATTRIBUTES} has no {source.labels_from} column" if bundle.attributes is not None
                else f"the bundle carries no item attributes ({ATTRIBUTES}: `sine export --attributes FILE`)")
        return source
    if (path / RUN_CONFIG).is_file():
        return _run_source(path)
    raise SineError(f"{path}: neither a bundle ({MANIFEST}) nor a run directory ({RUN_CONFIG}); give "
                    "what `sine export` or `sine train` wrote")


def _run_source(path: Path) -> ConceptSource:
    from trainer.export import concept_pool, run_attributes
    from trainer.run import load_run

    run = load_run(path)
    pool = concept_pool(run.encoder) if run.encoder is not None else {}
    if not pool:
        raise NoConceptPool(f"{path}: the {run.config.model} model has no concept pool (only SINE learns one)")
    table = pool.get("concept_items")
    if table is None:  # tied tables: the exported item table is the input table
        table = run.encoder.item_vectors().detach().cpu().numpy()
    training = run.config.to_dict()
    source = ConceptSource(f"run {path}", model_variant(run.config.model, training), pool["concepts"], table,
                           run.vocabulary.ids, run.info.get("categories"), training.get("prototypes_from"))
    if source.labels is not None:
        saved = run_attributes(path, run.vocabulary.ids, None)  # what `sine train --attributes` kept
        if saved is None:
            source.no_label_column = f"the run has no {item_attributes.RUN_FILE} (`sine train --attributes`)"
        else:
            source.label_column = saved.columns.get(str(source.labels_from))
            if source.label_column is None:
                source.no_label_column = f"the run's {item_attributes.RUN_FILE} has no {source.labels_from} column"
    return source


@dataclass
class ItemInfo:
    names: dict[str, str]
    genres: dict[str, list[str]]


def read_items_file(path: Path) -> ItemInfo:
    """Names (and genres, when there is such a column) by item id from a CSV (optionally .gz)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SineError(f"--items-file {path}: no such file") from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise SineError(f"--items-file {path}: not a readable CSV ({exc})") from None
    if "item_id" not in frame.columns:
        raise SineError(f"--items-file {path}: needs an item_id column (it has {', '.join(frame.columns)})")
    ids = frame["item_id"].tolist()
    name_col = next((c for c in NAME_COLUMNS if c in frame.columns), None)
    names = {}
    if name_col:
        labels = frame[name_col]
        if "year" in frame.columns:
            labels = labels + frame["year"].map(lambda y: f" ({y})" if y else "")
        names = dict(zip(ids, labels.tolist(), strict=True))
    genre_col = next((c for c in GENRE_COLUMNS if c in frame.columns), None)
    genres = {}
    if genre_col:
        genres = {i: [g for g in value.split("|") if g] for i, value in zip(ids, frame[genre_col], strict=True)}
    return ItemInfo(names, genres)


def _percentiles(sizes: np.ndarray) -> str:
    q = np.percentile(sizes, [0, 25, 50, 75, 100])
    return ", ".join(f"{name} {value:g}" for name, value in zip(("min", "25%", "median", "75%", "max"), q,
                                                                  strict=True))


def report(source: ConceptSource, analysis: ConceptAnalysis, top: int, nearest: int,
           info: ItemInfo | None = None) -> str:
    """The text report: summary, then the `top` largest concepts with their `nearest` items."""
    s = analysis.summary()
    L, M = s["prototypes"], s["items"]
    active = analysis.counts[analysis.counts > 0]
    lines = [
        f"concepts of {source.description} ({source.model}: L={L} prototypes, D={source.prototypes.shape[1]}, "
        f"{M:,} items)",
        f"capture rule: {CAPTURE_RULE}",
        *([f"prototypes: the mean embedding of the items of one {source.labels_from} label each "
           "(SINE-cate); [label] after each concept"] if source.labels is not None else []),
        *_label_lines(source, analysis),
        f"active prototypes: {s['active_prototypes']} of {L} ({s['active_prototypes'] / L:.1%}); entropy "
        f"{s['entropy']:.3f} nats = {s['entropy_normalized']:.3f} of log L = {s['effective_concepts']:.1f} "
        f"equally sized concepts; largest captures {s['largest_share']:.1%} of the items",
        f"items per active prototype: {_percentiles(active)}" if len(active) else "no prototype captures an item",
        "(active here: capturing at least one catalog item; the training log's \"concepts used\" counts "
        "another thing, the prototypes among validation users' top-K activations)",
        "",
        f"top {min(top, L)} concepts by items captured; nearest items by cosine, * = captured by the concept:",
    ]
    for concept_id in analysis.ranked()[:top].tolist():
        count = int(analysis.counts[concept_id])
        label = f" [{source.labels_from}={source.labels[concept_id]}]" if source.labels is not None else ""
        head = f"concept {concept_id}{label}: {count:,} items ({count / M:.1%}), "
        if analysis.agreement is not None:
            labelled = int(analysis.agreement.labelled[concept_id])
            both = int(analysis.agreement.captured_labelled[concept_id])
            head += f"labelled {labelled:,}, captured and labelled {both:,}, "
        head += f"|C| {analysis.prototype_norms[concept_id]:.3f}"
        if info and info.genres and count:
            head += "; genres of its items: " + _genre_mix(analysis, concept_id, source.items, info)
        lines.append(head)
        rows = analysis.nearest_rows[concept_id, :nearest].tolist()
        cosines = analysis.nearest_cosine[concept_id, :nearest].tolist()
        for row, cosine in zip(rows, cosines, strict=True):
            item = source.items[row]
            mark = "*" if analysis.assignment[row] == concept_id else " "
            line = f"  {mark} {cosine:6.3f}  {item}"
            if info and item in info.names:
                line += f"  {info.names[item]}"
            if info and info.genres.get(item):
                line += f"  [{'|'.join(info.genres[item])}]"
            lines.append(line)
    return "\n".join(lines)


def _label_lines(source: ConceptSource, analysis: ConceptAnalysis) -> list[str]:
    """SINE-cate: what captured and labelled mean, and how often they agree (or why not shown)."""
    if source.labels is None:
        return []
    agreement = analysis.agreement
    if agreement is None:
        return [f"labelled counts not shown: {source.no_label_column or 'no item attributes'}"]
    s = agreement.summary()
    share = s["captured_by_own_label"]
    return [
        "items = captured: the capture rule above (an inner product, so a prototype with a larger norm |C| "
        "wins more items whatever its direction); labelled: items "
        f"carrying the concept's {source.labels_from} label (the category's size); captured and labelled: both",
        f"captured by a prototype of one of their own labels: {share:.1%} of the "
        f"{s['labelled_items']:,} labelled items" if share is not None
        else f"no catalog item carries one of the pool's {source.labels_from} labels",
    ]


def _genre_mix(analysis: ConceptAnalysis, concept_id: int, items: list[str], info: ItemInfo, shown: int = 3) -> str:
    """The most frequent genres among the concept's items: share of its items carrying each."""
    members = np.flatnonzero(analysis.assignment == concept_id)
    counts = Counter(g for row in members for g in info.genres.get(items[row], []))
    if not counts:
        return "none known"
    return ", ".join(f"{g} {n / len(members):.0%}" for g, n in counts.most_common(shown))


def plot(source: ConceptSource, analysis: ConceptAnalysis, path: Path, highlight: int = 10) -> None:
    """Sizes of all concepts, most items first, and the items projected on their first two
    principal components, coloured by concept for the `highlight` largest ones."""
    try:
        import matplotlib
    except ImportError:
        raise SineError("--plot needs matplotlib (pip install 'sine-rec[train]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = analysis.summary()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    counts = np.sort(analysis.counts)[::-1]
    left.bar(np.arange(len(counts)), counts, width=1.0)
    left.set_yscale("symlog")
    left.set_xlabel("prototype (most items first)")
    left.set_ylabel("items captured")
    left.set_title(f"{s['active_prototypes']} of {s['prototypes']} prototypes capture items; "
                   f"{s['effective_concepts']:.0f} effective", fontsize=9)
    left.grid(alpha=0.3)

    rng = np.random.default_rng(0)
    rows = np.arange(analysis.num_items)
    if len(rows) > PLOT_MAX_ITEMS:
        rows = np.sort(rng.choice(rows, PLOT_MAX_ITEMS, replace=False))
    table = np.asarray(source.item_table, dtype=np.float64)[rows]
    centred = table - table.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    labels = analysis.assignment[rows]
    right.scatter(xy[:, 0], xy[:, 1], s=4, c="lightgrey", lw=0)
    colours = plt.get_cmap("tab10")
    for n, concept_id in enumerate(analysis.ranked()[:highlight].tolist()):
        mine = labels == concept_id
        if not mine.any():
            continue
        right.scatter(xy[mine, 0], xy[mine, 1], s=7, color=colours(n % 10), lw=0, label=f"concept {concept_id}")
        cx, cy = xy[mine].mean(axis=0)
        right.annotate(str(concept_id), (cx, cy), fontsize=8, weight="bold", ha="center")
    right.set_xlabel("principal component 1 of the item vectors")
    right.set_ylabel("principal component 2")
    right.set_title(f"items by concept (the {highlight} largest coloured, others grey)", fontsize=9)
    right.legend(fontsize=7, markerscale=2, loc="best")
    fig.suptitle(f"SINE concepts of {source.description}", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def inspect_concepts(path: Path, top: int, nearest: int, items_file: Path | None = None,
                     plot_path: Path | None = None) -> str:
    """Load, analyse and report (and plot); the CLI prints what this returns."""
    if not 1 <= nearest <= NEAREST_MAX:
        raise SineError(f"--nearest must be between 1 and {NEAREST_MAX}")
    if top < 1:
        raise SineError("--top must be at least 1")
    if plot_path is not None and plot_path.suffix.lower() != ".png":
        raise SineError(f"--plot {plot_path}: give a .png file name")
    info = read_items_file(items_file) if items_file else None
    source = load_source(path)
    analysis = analyse(source.prototypes, source.item_table, nearest=nearest, labels=source.labels,
                       label_column=source.label_column)
    text = report(source, analysis, top, nearest, info)
    if plot_path is not None:
        plot(source, analysis, plot_path)
        text += f"\n\nplot -> {plot_path}"
    return text
