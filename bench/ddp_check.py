"""One epoch of SINE under torchrun on every GPU of this host (bench/gpu_check.sh runs it
when the host has more than one): the NCCL path end to end, without the CLI's packages.

    python3 -m torch.distributed.run --standalone --nproc_per_node 2 bench/ddp_check.py LOG OUT

Rank 0 writes the run to OUT and prints its world size, throughput and validation NDCG@10.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import TrainConfig
from trainer.run import train_run


def main() -> None:
    log, out = sys.argv[1], sys.argv[2]
    metrics = train_run(log, out, TrainConfig(model="sine", epochs=1, device="cuda"))
    if os.environ.get("RANK", "0") == "0":
        print(f"ddp_check: world_size {metrics['world_size']} on {metrics['device']}, "
              f"{metrics['examples_per_second']:,.0f} ex/s, "
              f"valid ndcg@10 {metrics['valid']['ndcg@10']:.4f} -> {out}")


if __name__ == "__main__":
    main()
