"""`sine demo`: the whole pipeline on a synthetic log, on a laptop, in about a minute.

Generates a log with planted interests, trains the most-popular baseline and SINE on it,
and prints their test metrics side by side. Every artifact lands under `workdir`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sine.data.synthetic import SyntheticSpec, synthetic_log
from sine.metrics import METRIC_NAMES

log = logging.getLogger("sine.demo")


def run_demo(workdir: Path, epochs: int = 20) -> dict[str, dict]:
    from trainer.config import TrainConfig
    from trainer.run import train_run

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "synthetic.csv"
    synthetic_log(SyntheticSpec()).to_csv(log_path, index=False)
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
    print(f"\nruns, metrics and plots: {workdir / 'runs'}")
    return results
