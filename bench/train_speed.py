"""Training speed at equal precision: our SINE / SASRec against RecBole 1.2.1's, same run.

    .venv/bin/python bench/train_speed.py --rounds 3
    .venv/bin/python bench/train_speed.py --models sine --datasets beauty --rounds 5 --steps 200

Settings for both: n = 20, D = 64, full softmax (cross-entropy over all items), batch
256, Adam 1e-3, 2 threads. Each round times, each in a fresh process and in an order
that rotates from round to round: RecBole in fp32, ours in fp32 (the headline: the same
arithmetic as RecBole) and ours with bf16 catalog products (separately; its accuracy is
not measured here, see the note the report prints). A measurement is `--steps`
optimisation steps after `--warmup` untimed ones (the same number of examples for both
libraries; pass `--steps 0` to time whole epochs instead). The machine is shared and
noisy, so the report gives per-round ratios, their median, and the load average seen
before each round. RecBole runs from its own virtual environment (see
bench/recbole_reference.py); without it only our figures are written. Each round also
times the floor (function `floor`): the part of every step that no implementation of
these settings can skip, so that the report says how far any speed-up can go.
Writes bench/results/train_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECBOLE_NAMES = {"sine": "SINE", "sasrec": "SASRec"}
SETTINGS = {"dim": 64, "batch_size": 256, "max_len": 20, "loss": "full"}
FLOOR_NOTE = (
    "Floor: the steps' unavoidable part alone (function `floor` of bench/train_speed.py: the catalog "
    "logits product, the cross-entropy, its two backward products and Adam on the dense [N, D] table gradient, the "
    "encoder's cost taken to zero), same threads and batch, in the same round. Both libraries do "
    "it every step, so floor ex/s over RecBole's is the largest fp32 speed-up that any work on "
    "the encoder can buy at these settings.")
BF16_ACCURACY_NOTE = (
    "bf16 accuracy: bench/sine_variants.py's `cosine` and `cosine-bf16` variants (same settings), "
    "in bench/results/sine_variants_cpu.md: beauty (3 seeds each) and video (fp32 3 seeds, bf16 2) "
    "within fp32's seed spread"
)


def ours(dataset: str, model: str, threads: int, precision: str, steps: int, warmup: int) -> dict:
    """Our trainer, timed in this (worker) process."""
    sys.path.insert(0, str(ROOT))
    import torch

    from trainer.config import TrainConfig
    from trainer.fit import fit, seed_everything
    from trainer.models import build_encoder, model_config
    from trainer.run import load_data

    torch.set_num_threads(threads)
    config = TrainConfig(model=model, epochs=1, threads=threads, precision=precision, **SETTINGS)
    data = load_data(DATA / f"{dataset}.csv.gz", config)
    if steps:
        sys.path.insert(0, str(ROOT / "bench"))
        from gpu_check import throughput

        result = throughput(model, data, torch.device("cpu"), precision, False,
                            SETTINGS["batch_size"], steps, warmup, float("inf"),
                            dim=SETTINGS["dim"], max_len=SETTINGS["max_len"], loss="full")
        return {"seconds": result["seconds"], "examples": result["examples"],
                "examples_per_second": result["examples_per_second"], "steps": result["steps"]}
    seed_everything(0)
    encoder = build_encoder(model, model_config(config, data.num_items))
    result = fit(encoder, data, config, torch.device("cpu"))
    examples = int(sum(max(int(n) - 1, 0) for n in data.train_lengths))
    return {"seconds": result.train_seconds, "examples": examples,
            "examples_per_second": examples / result.train_seconds}


def floor(dataset: str, threads: int, steps: int, warmup: int) -> dict:
    """The part of a step no implementation of these settings can skip, timed alone.

    Full softmax over the catalog: the logits product v H^T, the cross-entropy, the two
    backward products (into v and into H) and Adam's update of the dense [N, D] table
    gradient. Both libraries do exactly this every step, whatever their encoder costs;
    so RecBole's step time over this one bounds the speed-up any encoder work can buy at
    equal arithmetic (the encoder's own cost taken to zero).
    """
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT))
    from trainer.config import TrainConfig
    from trainer.run import load_data

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = load_data(DATA / f"{dataset}.csv.gz", TrainConfig(**SETTINGS))
    batch, dim = SETTINGS["batch_size"], SETTINGS["dim"]
    table = torch.nn.Parameter(torch.randn(data.num_items, dim) * 0.02)
    users = torch.nn.Parameter(torch.randn(batch, dim) * 0.02)  # stands for the encoder's output
    optimizer = torch.optim.Adam([table, users], lr=1e-3, fused=True)  # the fastest Adam torch has
    targets = torch.randint(1, data.num_items, (steps + warmup, batch))
    start = 0.0
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(users @ table.T, targets[step]).backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "examples": steps * batch, "examples_per_second": steps * batch / seconds,
            "steps": steps, "items": data.num_items}


def recbole(python: Path, dataset: str, model: str, threads: int, steps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([str(python), str(ROOT / "bench" / "recbole_reference.py"),
                        "--data", str(DATA / f"{dataset}.csv.gz"), "--model", RECBOLE_NAMES[model],
                        "--epochs", "1", "--threads", str(threads), "--steps", str(steps),
                        "--warmup", str(warmup), "--out", str(out)],
                       check=True, capture_output=True, text=True)
        result = json.loads(out.read_text())
    return {"seconds": result["epoch_seconds_median"], "examples": result["timed_examples"],
            "examples_per_second": result["examples_per_second"]}


def worker(dataset: str, model: str, threads: int, precision: str, steps: int, warmup: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", dataset, model, str(threads), precision,
                          str(steps), str(warmup)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty"])
    parser.add_argument("--models", nargs="+", default=["sine", "sasrec"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150, help="timed steps (0: a whole epoch)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--recbole-python", type=Path, default=ROOT / ".venv-recbole" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, model, threads, precision, steps, warmup = args.worker
        if precision == "floor":
            print(json.dumps(floor(dataset, int(threads), int(steps), int(warmup))))
        else:
            print(json.dumps(ours(dataset, model, int(threads), precision, int(steps), int(warmup))))
        return

    have_recbole = args.recbole_python.exists()
    timed = f"{args.steps} steps after {args.warmup} warm-up steps" if args.steps else "one whole epoch"
    report: dict = {"settings": "n=20, D=64, full softmax, batch 256, Adam 1e-3", "threads": args.threads,
                    "timed": timed, "cpu_count": os.cpu_count(), "rounds": []}
    for dataset in args.datasets:
        for model in args.models:
            for round_ in range(args.rounds):
                entry: dict = {"dataset": dataset, "model": model, "round": round_,
                               "load_average_before": os.getloadavg()}
                names = ["ours_fp32", "ours_bf16", "floor_fp32"] + (["recbole_fp32"] if have_recbole else [])
                shift = round_ % len(names)  # rotate the order: no side always runs first
                entry["order"] = names[shift:] + names[:shift]
                for name in entry["order"]:
                    if name == "recbole_fp32":
                        entry[name] = recbole(args.recbole_python, dataset, model, args.threads,
                                              args.steps, args.warmup)
                    elif name == "floor_fp32":
                        entry[name] = worker(dataset, model, args.threads, "floor", args.steps or 100,
                                             args.warmup)
                    else:
                        entry[name] = worker(dataset, model, args.threads, name.split("_")[1],
                                             args.steps, args.warmup)
                if have_recbole:
                    base = entry["recbole_fp32"]["examples_per_second"]
                    entry["speedup_fp32"] = entry["ours_fp32"]["examples_per_second"] / base
                    entry["speedup_bf16"] = entry["ours_bf16"]["examples_per_second"] / base
                    entry["speedup_bound"] = entry["floor_fp32"]["examples_per_second"] / base
                entry["bf16_over_fp32"] = (entry["ours_bf16"]["examples_per_second"]
                                           / entry["ours_fp32"]["examples_per_second"])
                report["rounds"].append(entry)
                print(json.dumps(entry), flush=True)
    report["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"Timed: {report['timed']}, {report['threads']} threads, {report['settings']}; "
             f"{report['cpu_count']} cores. Per-round ratios, then their median; load average "
             "(1 min) before each round in brackets.", "",
             "| dataset | model | rounds | RecBole fp32 ex/s | ours fp32 ex/s | **fp32 speed-up** "
             "(per round) | ours bf16 ex/s | bf16 vs RecBole | bf16 vs our fp32 | floor ex/s | "
             "bound on the fp32 speed-up |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    keys = sorted({(r["dataset"], r["model"]) for r in report["rounds"]})
    for dataset, model in keys:
        rounds = [r for r in report["rounds"] if (r["dataset"], r["model"]) == (dataset, model)]

        def med(name: str, rounds: list[dict] = rounds) -> float:
            return statistics.median(r[name]["examples_per_second"] for r in rounds)

        loads = ", ".join(f"{r['load_average_before'][0]:.1f}" for r in rounds)
        bf16_fp32 = statistics.median(r["bf16_over_fp32"] for r in rounds)
        if "recbole_fp32" in rounds[0]:
            ups = [r["speedup_fp32"] for r in rounds]
            lines.append(
                f"| {dataset} | {model} | {len(rounds)} | {med('recbole_fp32'):,.0f} | {med('ours_fp32'):,.0f} "
                f"| **{statistics.median(ups):.2f}x** ({', '.join(f'{u:.2f}' for u in ups)}; load {loads}) "
                f"| {med('ours_bf16'):,.0f} | {statistics.median(r['speedup_bf16'] for r in rounds):.2f}x "
                f"| {bf16_fp32:.2f}x | {med('floor_fp32'):,.0f} "
                f"| {statistics.median(r['speedup_bound'] for r in rounds):.2f}x |")
        else:
            lines.append(f"| {dataset} | {model} | {len(rounds)} | (not installed) | {med('ours_fp32'):,.0f} "
                         f"| (load {loads}) | {med('ours_bf16'):,.0f} | | {bf16_fp32:.2f}x "
                         f"| {med('floor_fp32'):,.0f} | |")
    notes = "".join(f"\n\n{note}" for note in report.get("notes", []))
    return "\n".join(lines) + "\n\n" + FLOOR_NOTE + "\n\n" + BF16_ACCURACY_NOTE + "." + notes + "\n"


if __name__ == "__main__":
    main()
