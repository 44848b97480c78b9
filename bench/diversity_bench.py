"""Category diversity against accuracy on ml-100k: intra-list genre diversity of the top-20
and HR@20 as curves over the penalty (ComiRec's greedy rule) and the cap.

    .venv/bin/sine train --data ../shared/data/ml-100k.csv.gz --out runs/ml100k --dim 64 \
        --attributes ../shared/data/ml-100k.items.csv.gz
    .venv/bin/sine export runs/ml100k --out bundles/ml100k
    .venv/bin/python bench/diversity_bench.py --bundle bundles/ml100k --data ../shared/data/ml-100k.csv.gz

Every test user of the leave-one-out split (the paper's protocol: the target is the last
click, every earlier click is removed from the ranking) is answered as the service
answers (`service.recommender.LoadedModel.recommend`, exact search over the item table,
diversity from the best 4 x 20 candidates). Diversity is `sine.diversity.intra_list_distance`
over the genres (`categories`): the mean, over the pairs of the top-20, of the Jaccard
distance of their genre sets (ComiRec's Diversity@N, which counts a pair of different
categories as 1, for multi-genre films). The penalty lambda is in the model's score units;
it is swept as multiples of the mean gap between the 1st and the 20th score of the plain
ranking, so the grid means the same for another model. Writes bench/results/diversity.json,
diversity.md and diversity.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.recommender import LoadedModel, Query  # noqa: E402
from sine.data.logs import filter_min_counts, read_log  # noqa: E402
from sine.data.split import leave_one_out  # noqa: E402
from sine.data.vocabulary import ItemVocabulary  # noqa: E402
from sine.diversity import DiversityRule, intra_list_distance  # noqa: E402

TOP_N = 20
PENALTIES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0)  # x the mean score gap @1 - @20
CAPS = (8, 6, 5, 4, 3, 2, 1)


def test_users(model: LoadedModel, data_path: Path) -> tuple[list[list[str]], list[str]]:
    training = model.bundle.manifest.get("training", {})
    frame = filter_min_counts(read_log(data_path), int(training.get("min_item_count", 1)),
                              int(training.get("min_user_count", 1)))
    data = leave_one_out(frame, ItemVocabulary(model.item_list))
    evalset = data.evaluation_set("test", model.max_len)
    histories, targets = [], []
    for u in range(len(evalset)):
        history = evalset.history[evalset.history_offsets[u]:evalset.history_offsets[u + 1]]
        histories.append([model.item_list[i - 1] for i in history.tolist()])
        targets.append(model.item_list[int(evalset.targets[u]) - 1])
    return histories, targets


def evaluate(model: LoadedModel, histories, targets, rule: DiversityRule | None, column) -> dict:
    hits, distances, genres, lengths, gaps = 0, [], [], [], []
    for start in range(0, len(histories), 256):
        queries = [Query(h, TOP_N, diversity=rule) for h in histories[start:start + 256]]
        for answer, target in zip(model.recommend(queries), targets[start:start + 256], strict=True):
            hits += target in answer.item_ids
            rows = [model.row_of[i] for i in answer.item_ids]
            distances.append(intra_list_distance(column, rows))
            genres.append(len({label for r in rows for label in column.labels(r)}))
            lengths.append(len(rows))
            gaps.append(answer.scores[0] - answer.scores[-1])
    return {"hr@20": hits / len(targets), "diversity@20": float(np.mean(distances)),
            "genres_in_top20": float(np.mean(genres)), "mean_length": float(np.mean(lengths)),
            "score_gap_1_20": float(np.mean(gaps))}


def run(bundle: Path, data: Path, attribute: str) -> dict:
    model = LoadedModel.load(bundle, onnx_threads=1, faiss_threads=1, gpu="off")
    if model.attributes is None or attribute not in model.attributes.columns:
        raise SystemExit(f"{bundle} has no attribute {attribute!r}: export it with --attributes "
                         "../shared/data/ml-100k.items.csv.gz")
    column = model.attributes.columns[attribute]
    histories, targets = test_users(model, data)
    plain = evaluate(model, histories, targets, None, column)
    gap = plain["score_gap_1_20"]
    rows = [{"rule": "none", "setting": "-", **plain}]
    for multiple in PENALTIES[1:]:
        rule = DiversityRule(column, penalty=multiple * gap)
        rows.append({"rule": "penalty", "setting": f"{multiple:g} x gap = {multiple * gap:.3f}",
                     "lambda": multiple * gap, "lambda_over_gap": multiple,
                     **evaluate(model, histories, targets, rule, column)})
    for cap in CAPS:
        rows.append({"rule": "cap", "setting": str(cap), "cap": cap,
                     **evaluate(model, histories, targets, DiversityRule(column, cap=cap), column)})
    return {"bundle": str(bundle), "data": str(data), "attribute": attribute, "users": len(targets),
            "items": model.num_items, "model": model.bundle.manifest.get("model"),
            "training": {k: model.bundle.manifest.get("training", {}).get(k)
                         for k in ("dim", "epochs", "seed", "max_len")},
            "best_epoch": (model.bundle.manifest.get("run") or {}).get("best_epoch"),
            "score_gap_1_20": gap, "rows": rows,
            "trainer_test_hr@20": (model.bundle.manifest.get("metrics", {}).get("test") or {}).get("hr@20"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    plain = report["rows"][0]
    for rule, marker in (("penalty", "o"), ("cap", "s")):
        points = [plain] + [r for r in report["rows"] if r["rule"] == rule]
        ax.plot([p["diversity@20"] for p in points], [p["hr@20"] for p in points], marker=marker, label=rule)
        for p in points[1:]:
            label = f"{p['lambda_over_gap']:g}" if rule == "penalty" else f"c={p['cap']}"
            ax.annotate(label, (p["diversity@20"], p["hr@20"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.scatter([plain["diversity@20"]], [plain["hr@20"]], color="black", zorder=3, label="no rule")
    ax.set_xlabel("intra-list genre diversity of the top-20 (mean pairwise Jaccard distance)")
    ax.set_ylabel("HR@20 (test, history removed)")
    ax.set_title(f"ml-100k, {report['model']}: penalty (x score gap @1-@20) and cap")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = [
        f"Category diversity on ml-100k: {report['users']} test users (leave-one-out, history removed), "
        f"{report['items']:,} items, {report['model']} {report['training']} (best epoch "
        f"{report['best_epoch']}), one seed: no spread. Diversity@20 = mean pairwise Jaccard distance of the "
        f"genre sets in the top-20; lambda swept as multiples of the mean score gap between rank 1 and rank "
        f"20 of the plain list ({report['score_gap_1_20']:.3f}). The plain row is the service's answer; "
        f"`sine train` measured test HR@20 {report['trainer_test_hr@20']:.4f} for the same model. Curve: "
        "diversity.png.",
        "",
        "| rule | setting | HR@20 | diversity@20 | genres in top-20 | list length |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['rule']} | {r['setting']} | {r['hr@20']:.4f} | {r['diversity@20']:.4f} "
                     f"| {r['genres_in_top20']:.2f} | {r['mean_length']:.1f} |")
    return "\n".join(lines) + "\n\n![diversity vs HR@20](diversity.png)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--attribute", default="categories")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, args.data, args.attribute)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diversity.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "diversity.png")
    (args.out / "diversity.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
