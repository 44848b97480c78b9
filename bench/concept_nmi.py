"""Do SINE's learned concepts agree with the MovieLens genres? NMI against a chance level.

    .venv/bin/sine train -d ../shared/data/ml-100k.csv.gz -o runs/ml-100k-sine
    .venv/bin/sine export runs/ml-100k-sine -o bundles/ml-100k-sine
    .venv/bin/python bench/concept_nmi.py bundles/ml-100k-sine

The paper's Table 5 analogue (it compares its concepts with Alibaba's category levels;
ml-100k has genres only). Every item is assigned to the concept that captures it
(`sine.concepts`: the prototype with the largest inner product with its embedding, the
concept it activates first alone), and that partition is compared with three labelings
of the items built from ``ml-100k.items.csv.gz`` (column ``categories``, '|'-separated,
listed in MovieLens' fixed genre order, which is alphabetical):

- ``first_genre``: the first listed genre (so Action before Drama); every item with a genre.
- ``single_genre``: items with exactly one genre only, labelled by it (half the catalog;
  the only labeling that needs no choice among an item's genres).
- ``genre_set``: the whole combination as one label (216 classes on 1,682 items).

Items whose genre is "unknown" are left out. Two labelings that are not genres are
measured the same way, as context for what the concepts do capture:

- ``release_year``: the year column of the items file (items without one left out).
- ``popularity_decile``: ten equally large bins of the items by training clicks.
 NMI is I(A;B) / ((H(A) + H(B)) / 2)
(`sine.concepts.normalized_mutual_information`; scikit-learn's default normalisation).
NMI grows with the number of clusters by itself, and the model has hundreds of small
concepts, so each figure is reported beside its chance level: the NMI of random
assignments with exactly the same cluster sizes (the concept labels shuffled over the
items), over --draws draws, mean +- standard deviation. Several sources (e.g. seeds) are
summarised as mean +- standard deviation over sources; a single source prints no spread.

Writes bench/results/concept_nmi.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sine.bundle import read_bundle  # noqa: E402
from sine.concepts import analyse, normalized_mutual_information, shuffled_nmi  # noqa: E402
from sine_cli.concepts_report import load_source, read_items_file  # noqa: E402

DEFAULT_ITEMS = ROOT.parent / "shared" / "data" / "ml-100k.items.csv.gz"
PAPER_TABLE_5 = {"level-1": 0.09, "level-2": 0.37, "leaf": 0.29}  # ULarge, Alibaba categories
LABELINGS = ("first_genre", "single_genre", "genre_set")
CONTEXT_LABELINGS = ("release_year", "popularity_decile")


def labeling(name: str, genres: list[str]) -> str | None:
    """The label of an item with `genres` under labeling `name` (None: the item is left out)."""
    known = [g for g in genres if g != "unknown"]
    if not known:
        return None
    if name == "first_genre":
        return known[0]
    if name == "single_genre":
        return known[0] if len(known) == 1 else None
    return "|".join(known)


def popularity_of(path: Path) -> np.ndarray:
    """Training clicks per item row, from a bundle or a run directory."""
    if (path / "manifest.json").is_file():
        return read_bundle(path).popularity
    return np.load(path / "popularity.npy", allow_pickle=False)[1:]  # run: row 0 is padding


def context_labels(name: str, items: list[str], years: dict[str, str], popularity: np.ndarray) -> list[str | None]:
    if name == "release_year":
        return [years[item] if years.get(item, "").isdigit() else None for item in items]
    ranks = np.empty(len(items), dtype=np.int64)
    ranks[np.argsort(popularity, kind="stable")] = np.arange(len(items))
    return [f"decile {r * 10 // len(items)}" for r in ranks.tolist()]


def measure(path: Path, genres: dict[str, list[str]], years: dict[str, str], draws: int,
            seed: int) -> dict[str, Any]:
    source = load_source(path)
    analysis = analyse(source.prototypes, source.item_table, nearest=1)
    result: dict[str, Any] = {"source": str(path), "description": source.description,
                              "concepts": analysis.summary(), "labelings": {}}
    popularity = popularity_of(path)
    for name in LABELINGS + CONTEXT_LABELINGS:
        if name in LABELINGS:
            every = [labeling(name, genres.get(item, [])) for item in source.items]
        else:
            every = context_labels(name, source.items, years, popularity)
        rows = [row for row, label in enumerate(every) if label is not None]
        labels = [every[row] for row in rows]
        assignment = analysis.assignment[rows]
        chance = shuffled_nmi(assignment, np.array(labels), draws, seed)
        nmi = normalized_mutual_information(assignment, np.array(labels))
        result["labelings"][name] = {
            "items": len(rows), "classes": len(set(labels)), "clusters": len(set(assignment.tolist())),
            "nmi": round(nmi, 4), "chance_mean": round(float(chance.mean()), 4),
            "chance_std": round(float(chance.std(ddof=1)), 4) if draws > 1 else None, "draws": draws,
            "excess": round(nmi - float(chance.mean()), 4),
        }
    return result


def model_facts(path: Path) -> dict[str, Any]:
    """Configuration and test metrics of a bundle or run, for the record."""
    manifest, metrics = path / "manifest.json", path / "metrics.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        return {"version": data["version"], "training": data.get("training", {}),
                "test_hr@50": data.get("metrics", {}).get("test", {}).get("hr@50")}
    data = json.loads(metrics.read_text()) if metrics.is_file() else {}
    return {"training": data.get("config", {}), "test_hr@50": data.get("test", {}).get("hr@50"),
            "interrupted": data.get("interrupted")}


def spread(values: list[float]) -> str:
    digits = 0 if all(isinstance(v, int) for v in values) else 4
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits + 1}f} ± {statistics.stdev(values):.{digits + 1}f}"


def markdown(report: dict[str, Any]) -> str:
    sources = report["sources"]
    lines = [
        "# Concept NMI against the ml-100k genres",
        "",
        f"{len(sources)} model(s); concepts: each item to the prototype with the largest inner product "
        "with its embedding (eq. 2, the item alone). Chance: the same cluster sizes shuffled over the items, "
        f"{report['draws']} draws, mean ± std. "
        + ("Spread over models: mean ± std." if len(sources) > 1 else "One model: no spread over seeds."),
        "",
        "| labeling | items | classes | concepts used | NMI | chance NMI | NMI - chance | excess / chance std |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in LABELINGS + CONTEXT_LABELINGS:
        rows = [s["labelings"][name] for s in sources]
        chance = rows[0]
        chance_text = (f"{chance['chance_mean']:.4f} ± {chance['chance_std']:.4f}" if len(rows) == 1
                       and chance["chance_std"] is not None else spread([r["chance_mean"] for r in rows]))
        lines.append(f"| {name} | {rows[0]['items']} | {rows[0]['classes']} | "
                     f"{spread([r['clusters'] for r in rows])} | {spread([r['nmi'] for r in rows])} | "
                     f"{chance_text} | {spread([r['excess'] for r in rows])} | "
                     f"{statistics.mean(r['excess'] / r['chance_std'] for r in rows if r['chance_std']):.1f} |")
    lines += ["", "| model | active prototypes | effective concepts | largest concept | test HR@50 |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for s in sources:
        c, hr = s["concepts"], s["model"].get("test_hr@50")
        lines.append(f"| {s['description']} | {c['active_prototypes']} of {c['prototypes']} | "
                     f"{c['effective_concepts']:.1f} | {c['largest_share']:.1%} | "
                     f"{'' if hr is None else f'{hr:.4f}'} |")
    lines += ["", f"Paper, Table 5 (ULarge, Alibaba category levels, not comparable data): "
              f"NMI {PAPER_TABLE_5['level-1']} level-1, {PAPER_TABLE_5['level-2']} level-2, "
              f"{PAPER_TABLE_5['leaf']} leaf; it reports no chance level.",
              f"Run {report['created_at']}, load average {report['load_average']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="SINE bundles or run directories trained on ml-100k.")
    parser.add_argument("--items-file", type=Path, default=DEFAULT_ITEMS)
    parser.add_argument("--draws", type=int, default=50, help="Random assignments for the chance level.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "concept_nmi.json")
    args = parser.parse_args()
    genres = read_items_file(args.items_file).genres
    frame = pd.read_csv(args.items_file, dtype=str, keep_default_na=False)
    years = dict(zip(frame["item_id"], frame["year"], strict=True)) if "year" in frame.columns else {}
    sources = []
    for path in args.sources:
        facts = model_facts(path)
        if facts.get("interrupted"):
            print(f"skipping {path}: its training was interrupted", file=sys.stderr)
            continue
        result = measure(path, genres, years, args.draws, args.seed)
        result["model"] = facts
        sources.append(result)
        print(json.dumps({k: result[k] for k in ("description", "labelings")}, indent=1))
    if not sources:
        sys.exit("no complete model to measure")
    report = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "draws": args.draws,
              "seed": args.seed, "items_file": str(args.items_file), "python": platform.python_version(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "sources": sources}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
