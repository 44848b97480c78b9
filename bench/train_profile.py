"""Where a training step's time goes, and what a change to it buys (issue 15, part 1).

    .venv/bin/python bench/train_profile.py --dataset beauty --steps 40 --rounds 5

At bench/train_speed.py's settings (n = 20, D = 64, full softmax, batch 256, 2 threads,
fp32): a torch.profiler table of `--steps` SINE training steps (operators by their own
CPU time), then A/B rounds in one process, interleaved, of the loss as it was
(`F.cross_entropy` on the logits) and as it is (`full_softmax_loss`: probabilities kept
from the forward pass). The ratio is per round, then the median; the load average is
recorded because the machine is shared. Writes bench/results/train_profile.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import TrainConfig  # noqa: E402
from trainer.fit import epoch_plan, make_optimizer, seed_everything, train_step  # noqa: E402
from trainer.loss import full_softmax_loss  # noqa: E402
from trainer.models import build_encoder, model_config  # noqa: E402
from trainer.run import load_data  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def cross_entropy_loss(user_vector, table, targets, low_precision=False):
    """The full softmax as it was before: autograd through `F.cross_entropy`."""
    logits = user_vector @ table.T
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--model", default="sine")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_profile.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig(model=args.model, dim=64, batch_size=256, max_len=20, loss="full",
                         precision="fp32")
    data = load_data(DATA / f"{args.dataset}.csv.gz", config)
    seed_everything(0)
    encoder = build_encoder(args.model, model_config(config, data.num_items)).train()
    optimizer = make_optimizer(encoder, config)
    inputs_np, targets_np = data.training_examples(config.max_len)
    inputs, targets = torch.as_tensor(inputs_np), torch.as_tensor(targets_np)
    lengths = torch.as_tensor((inputs_np > 0).sum(axis=1))
    plan = epoch_plan(lengths, config, torch.Generator().manual_seed(0), torch.device("cpu"))

    def steps(likelihood, batches) -> float:
        start = time.perf_counter()
        for batch, width in batches:
            loss = train_step(encoder, optimizer, likelihood, inputs[batch, -width:], targets[batch], False)
        float(loss)
        return time.perf_counter() - start

    steps(full_softmax_loss, plan[:5])  # warm-up
    report: dict = {"dataset": args.dataset, "model": args.model, "threads": args.threads,
                    "steps": args.steps, "load_average_before": os.getloadavg()}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps(full_softmax_loss, plan[5:5 + args.steps])
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    report["profile"] = [{"op": e.key, "share": e.self_cpu_time_total / total, "calls_per_step":
                          e.count / args.steps} for e in events[:15]]
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)

    variants = {"F.cross_entropy (before)": cross_entropy_loss, "kept probabilities (now)": full_softmax_loss}
    times: dict[str, list[float]] = {name: [] for name in variants}
    cursor = 5 + args.steps
    for round_ in range(args.rounds):
        order = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
        for name in order:  # each variant gets different batches of similar mix, in turn
            batches = plan[cursor:cursor + args.steps]
            cursor = (cursor + args.steps) % max(1, len(plan) - args.steps)
            times[name].append(steps(variants[name], batches))
        print(f"round {round_}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in variants), flush=True)
    before, now = times["F.cross_entropy (before)"], times["kept probabilities (now)"]
    report["ab"] = {"seconds": times, "speedup_per_round": [b / n for b, n in zip(before, now, strict=True)]}
    report["ab"]["median_speedup"] = statistics.median(report["ab"]["speedup_per_round"])
    report["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"{report['model']} on {report['dataset']}, fp32, D=64, batch 256, {report['threads']} threads, "
             f"load average {report['load_average_before'][0]:.1f} before / "
             f"{report['load_average_after'][0]:.1f} after (shared machine).", "",
             f"Profile of {report['steps']} steps (own CPU time):", "", "| operator | share | calls/step |",
             "| --- | ---: | ---: |"]
    lines += [f"| {p['op']} | {p['share']:.1%} | {p['calls_per_step']:.0f} |" for p in report["profile"]]
    ups = report["ab"]["speedup_per_round"]
    lines += ["", f"Loss with kept probabilities vs `F.cross_entropy`, whole training steps, "
              f"{len(ups)} interleaved rounds: **{report['ab']['median_speedup']:.2f}x** median "
              f"({', '.join(f'{u:.2f}' for u in ups)})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
