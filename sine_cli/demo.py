"""`sine demo`: the whole pipeline on a synthetic log, on a laptop, in about a minute.

Generates a log with planted interests, trains the most-popular baseline and SINE on it,
prints their test metrics side by side, then exports SINE as a bundle, indexes it, and
answers one user's recommendation request through the serving code path (ONNX encoder +
faiss), showing that the recommended items come from that user's interest groups.
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
    print(f"\nruns, metrics and plots: {workdir / 'runs'}; bundle: {bundle_dir}")
    print(f"serve it: sine serve --bundle {bundle_dir}")
    return results
