"""`sine demo`: the whole pipeline on a synthetic log, on a laptop, in about a minute.

Generates a log with planted interests, trains the most-popular baseline and SINE on it,
prints their test metrics side by side, then exports SINE as a bundle, indexes it, and
answers one user's recommendation request through the serving code path (ONNX encoder +
faiss), showing that the recommended items come from that user's interest groups. Then a
planted multi-interest user (1, 2 and 7 clicks in three groups) is answered with both
retrieval modes, "aggregate" (the paper's inference) and "interests" (one search per
interest, the list divided among them), with the groups each list draws from and the user's
interests as the explanation gives them.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from sine.data.synthetic import SyntheticSpec, synthetic_log
from sine.metrics import METRIC_NAMES

log = logging.getLogger("sine.demo")


def run_demo(workdir: Path, epochs: int = 20) -> dict[str, dict]:
    from index_builder.build import build_for_bundle
    from service.recommender import LoadedModel, Query
    from trainer.config import TrainConfig
    from trainer.export import export_bundle
    from trainer.run import train_run

    workdir.mkdir(parents=True, exist_ok=True)
    frame = synthetic_log(SyntheticSpec())
    log_path = workdir / "synthetic.csv"
    frame.to_csv(log_path, index=False)
    log.info("demo log: %s", log_path)

    results = {}
    settings = {"dim": 64, "prototypes": 50, "interests": 4, "epochs": epochs, "patience": 5}
    for model in ("pop", "sine"):
        config = TrainConfig(model=model, **settings)
        results[model] = train_run(log_path, workdir / "runs" / model, config)

    print("\ntest metrics (history removed), synthetic log of "
          f"{results['sine']['dataset']['users']:,} users:")
    print(f"{'model':8s}" + "".join(f"{m:>9s}" for m in METRIC_NAMES))
    for model, metrics in results.items():
        print(f"{model:8s}" + "".join(f"{metrics['test'][m]:9.4f}" for m in METRIC_NAMES))

    bundle_dir = workdir / "bundle"
    export_bundle(workdir / "runs" / "sine", bundle_dir)
    build_for_bundle(bundle_dir)
    model = LoadedModel.load(bundle_dir)
    group = dict(zip(frame["item_id"], frame["category"], strict=True))
    user = frame["user_id"].iloc[0]
    clicks = frame[frame["user_id"] == user]["item_id"].tolist()[-20:]
    (answer,) = model.recommend([Query(clicks, top_n=10)])
    print(f"\nuser {user} clicked groups {dict(Counter(group[i] for i in clicks))}")
    print(f"recommended (bundle {model.version}, {model.index_spec.type} index): "
          f"{dict(Counter(group[i] for i in answer.item_ids))}")
    show_multi_interest_user(model, frame, group)
    print(f"\nruns, metrics and plots: {workdir / 'runs'}; bundle: {bundle_dir}")
    print(f"serve it: sine serve --bundle {bundle_dir}")
    return results


def planted_user(frame, group: dict[str, str], sizes: tuple[int, ...] = (1, 2, 7)) -> list[str]:
    """Clicks on the most popular items of the most clicked groups: `sizes[i]` in the i-th
    group, oldest first (the largest group last, as the most recent run of clicks)."""
    popular = frame["item_id"].value_counts().index
    groups = list(frame["category"].value_counts().index[: len(sizes)])
    return [item for g, size in zip(groups, sizes, strict=True)
            for item in [i for i in popular if group[i] == g][:size]]


def show_multi_interest_user(model, frame, group: dict[str, str], top_n: int = 10) -> None:
    """The planted user under both retrieval modes, and what its interests are."""
    import numpy as np

    from service.recommender import Query
    from sine.bundle import INTEREST_VECTORS
    from sine.encoder import prepare_clicks

    clicks = planted_user(frame, group)
    print(f"\nplanted multi-interest user: clicked groups {dict(Counter(group[i] for i in clicks))}")
    for retrieval in ("aggregate", "interests"):
        (answer,) = model.recommend([Query(clicks, top_n=top_n, retrieval=retrieval, explain=True)])
        print(f"  retrieval {retrieval!r:12s} recommended groups "
              f"{dict(Counter(group[i] for i in answer.item_ids))}")
    for interest in answer.explanation.interests:
        print(f"  interest {interest.index} (concept {interest.concept_id}, weight {interest.weight:.2f}): "
              f"clicks in groups {dict(Counter(group[i] for i in interest.clicks))}")
    batch = prepare_clicks([[model.row_of[i] + 1 for i in clicks]], model.max_len)
    phi = model.encoder.encode_all(batch)[INTEREST_VECTORS][0]
    phi = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    cosine = float((phi @ phi.T)[np.triu_indices(len(phi), 1)].mean())
    print(f"  mean cosine between its {len(phi)} interest vectors: {cosine:.2f} (near 1: the model "
          "did not separate them, and no merge of their searches can diversify the list)")
