"""The training path on a GPU, against the CPU of the same machine (issue 15, part 4).

    bash bench/gpu_check.sh .gpu-data/video.csv.gz      # OUT=dir to write elsewhere
    PYTHONPATH=. python3 bench/gpu_check.py --data ../shared/data/video.csv.gz --device cpu

Needs only torch, numpy, pandas, tqdm, matplotlib, onnx and onnxruntime (no service
packages, no network), so it runs on a bare GPU host with whatever torch build it has.
Each part is timed and printed as it goes; the whole stays under ~5 minutes on an H100
host (a budget check skips the optional parts past --budget seconds).

1. **Throughput, same steps**: SINE and SASRec train the same fixed number of steps
   (same seed, hence the same batches) after a few warm-up steps, through the trainer's
   own `epoch_plan` / `train_step`: on the GPU in fp32, with bf16 catalog products
   (what `--precision auto` picks on a bf16 GPU) and with bf16 plus the encoder under
   autocast, then on the CPU (all its cores) in fp32 and, where the CPU has native bf16,
   with bf16 products. A CPU measurement stops early after --cpu-seconds (marked
   capped). The GPU also runs batch 1024, to show where it is limited by launches.
2. **One epoch, the real path**: `trainer.run.train_split` (what `sine train --device
   cuda --epochs 1` runs: training, validation, test, the run directory) for both models.
3. **Export**: the GPU-trained SINE run through `trainer.export.export_bundle`
   (onnxruntime vs PyTorch on the run's validation users, refused above 1e-4), and the
   largest difference between the CUDA encoder and onnxruntime on the same users.

Without CUDA (or with --device cpu) the GPU parts are skipped and the report says so.
Writes gpu_check.json and gpu_check.md into --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.config import TrainConfig  # noqa: E402
from trainer.fit import (  # noqa: E402
    epoch_plan,
    make_likelihood,
    make_optimizer,
    native_bf16,
    seed_everything,
    train_step,
)
from trainer.models import build_encoder, model_config  # noqa: E402
from trainer.run import load_data  # noqa: E402

MODELS = ("sine", "sasrec")
STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f}s] {message}", flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(model: str, data, device: torch.device, precision: str, autocast: bool,
               batch_size: int, steps: int, warmup: int, max_seconds: float,
               compile: bool = False, **settings: Any) -> dict[str, Any]:
    """Examples/s over `steps` optimisation steps after `warmup` untimed ones (the same
    batches whatever the device: seed 0); `settings` are further TrainConfig fields."""
    config = TrainConfig(model=model, precision=precision, batch_size=batch_size, seed=0, **settings)
    seed_everything(0)
    encoder = build_encoder(model, model_config(config, data.num_items)).to(device).train()
    if compile:  # fused kernels, shapes left dynamic (widths vary with length buckets)
        encoder = torch.compile(encoder, dynamic=True)
    generator = torch.Generator().manual_seed(0)
    inputs_np, targets_np = data.training_examples(config.max_len)
    inputs = torch.as_tensor(inputs_np, device=device)
    targets = torch.as_tensor(targets_np, device=device)
    lengths = torch.as_tensor((inputs_np > 0).sum(axis=1))
    plan = epoch_plan(lengths, config, generator, device)
    if len(plan) < warmup + steps:
        raise SystemExit(f"the log gives {len(plan)} batches of {batch_size}, fewer than "
                         f"{warmup + steps} steps: lower --steps")
    likelihood = make_likelihood(config, data, generator)
    optimizer = make_optimizer(encoder, config)
    bf16 = precision == "bf16"
    warm = time.perf_counter()
    for batch, width in plan[:warmup]:
        train_step(encoder, optimizer, likelihood, inputs[batch, -width:], targets[batch], bf16,
                   autocast)
    synchronize(device)
    warmup_seconds = time.perf_counter() - warm
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    done = examples = 0
    start = time.perf_counter()
    for batch, width in plan[warmup:warmup + steps]:
        loss = train_step(encoder, optimizer, likelihood, inputs[batch, -width:], targets[batch],
                          bf16, autocast)
        done += 1
        examples += len(batch)
        if device.type == "cpu" and time.perf_counter() - start > max_seconds:
            break
    last_loss = float(loss)  # waits for the last step
    seconds = time.perf_counter() - start
    result = {
        "model": model, "device": str(device), "precision": precision, "autocast": autocast,
        "compiled": compile, "warmup_seconds": round(warmup_seconds, 2), "batch_size": batch_size,
        "steps": done, "steps_asked": steps, "warmup_steps": warmup,
        "capped": done < steps, "examples": examples, "seconds": round(seconds, 3),
        "examples_per_second": round(examples / seconds, 1),
        "ms_per_step": round(1000 * seconds / done, 3), "last_loss": round(last_loss, 4),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
    }
    if device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def full_epoch(model: str, data, source: dict, device: str, work: Path) -> dict[str, Any]:
    """One epoch through `train_split`, the function `sine train` runs."""
    from trainer.run import train_split

    config = TrainConfig(model=model, epochs=1, device=device, seed=0)
    started = time.perf_counter()
    metrics = train_split(data, source, work / f"{model}-{device.replace(':', '')}", config)
    keep = ("epochs", "train_seconds", "examples_per_second", "wall_seconds", "loss",
            "bf16_products", "device", "threads")
    return {"model": model, **{k: metrics[k] for k in keep},
            "eval_and_write_seconds": round(time.perf_counter() - started - metrics["train_seconds"], 2),
            "valid_ndcg@10": round(metrics["valid"]["ndcg@10"], 4),
            "test_ndcg@10": round(metrics["test"]["ndcg@10"], 4),
            "run": str(work / f"{model}-{device.replace(':', '')}")}


def export_check(run_dir: Path, work: Path, device: torch.device) -> dict[str, Any]:
    """`export_bundle` (refuses above 1e-4) and the CUDA encoder against onnxruntime."""
    import importlib.util

    from sine.bundle import ENCODER_INPUT, ENCODER_OUTPUT
    from trainer.export import export_bundle, onnx_session, parity
    from trainer.run import load_run

    started = time.perf_counter()
    bundle = export_bundle(run_dir, work / "bundle")
    seconds = time.perf_counter() - started
    run = load_run(run_dir)
    queries = run.sample_queries
    onnx_bytes = bundle.encoder_path.read_bytes()
    cpu_worst = parity(run.encoder, onnx_bytes, queries)
    result = {
        "exporter": "dynamo" if importlib.util.find_spec("onnxscript") else "torchscript (no onnxscript)",
        "export_seconds": round(seconds, 2), "users": len(queries),
        "max_abs_diff_torch_cpu_vs_onnxruntime": cpu_worst,
        "bundle_items": bundle.num_items, "dim": bundle.dim,
    }
    if device.type == "cuda":
        session = onnx_session(onnx_bytes)
        encoder = run.encoder.to(device).eval()
        worst = 0.0
        with torch.no_grad():
            for start in range(0, len(queries), 1024):
                batch = queries[start:start + 1024]
                expected = encoder(torch.as_tensor(batch, device=device)).user_vector.float().cpu().numpy()
                got = session.run([ENCODER_OUTPUT], {ENCODER_INPUT: batch})[0]
                worst = max(worst, float(np.abs(expected - got).max()))
        result["max_abs_diff_torch_cuda_vs_onnxruntime"] = worst
    return result


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cpu_native_bf16": native_bf16(torch.device("cpu")),
        "load_average": os.getloadavg(),
    }
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   gpu_bf16=torch.cuda.is_bf16_supported(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the log (video.csv.gz)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu (CPU half only) or auto")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--cpu-seconds", type=float, default=40.0,
                        help="a CPU measurement stops after this long (marked capped)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--cpu-users", type=int, default=2000,
                        help="CPU mode: the export check trains on this many users' clicks")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile part")
    parser.add_argument("--budget", type=float, default=330.0,
                        help="seconds after which optional parts are skipped")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    from trainer.fit import resolve_device

    device = resolve_device(args.device) if args.device != "auto" else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    gpu = device.type == "cuda"
    report: dict[str, Any] = {"data": str(args.data), "environment": environment(device),
                              "gpu": gpu, "throughput": [], "epochs": [], "notes": []}
    if not gpu:
        note = ("no CUDA device (or --device cpu): the GPU half is skipped; only the CPU "
                "throughput and a CPU export check ran")
        report["notes"].append(note)
        say(note)
    say(f"environment: {json.dumps(report['environment'])}")
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        """Written after every part: a run stopped by the time limit keeps what it measured."""
        report["seconds"] = round(time.perf_counter() - STARTED, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        (args.out / "gpu_check.md").write_text(markdown(report))

    say(f"reading {args.data}")
    config = TrainConfig()
    data = load_data(args.data, config)
    source = {"path": str(args.data), "sep": None,
              "columns": {"user": "user_id", "item": "item_id", "timestamp": "timestamp"}}
    report["dataset"] = {"users": len(data.user_ids), "items": data.num_items,
                         "clicks": len(data.items),
                         "train_examples": int(np.maximum(data.train_lengths - 1, 0).sum())}
    say(f"dataset: {report['dataset']}")

    # 1. the same fixed steps on each device and precision
    cpu = torch.device("cpu")
    cpu_precisions = ["fp32"] + (["bf16"] if native_bf16(cpu) else [])
    runs: list[tuple[str, torch.device, str, bool, int]] = []
    for model in MODELS:
        if gpu:
            runs += [(model, device, "fp32", False, 128), (model, device, "bf16", False, 128),
                     (model, device, "bf16", True, 128), (model, device, "fp32", False, 1024),
                     (model, device, "bf16", False, 1024)]
        runs += [(model, cpu, precision, False, 128) for precision in cpu_precisions]
    for model, dev, precision, autocast, batch in runs:
        if time.perf_counter() - STARTED > args.budget:
            report["notes"].append(f"skipped throughput {model} {dev} {precision} batch {batch}: budget")
            continue
        label = f"{model} {dev} {precision}{' +autocast' if autocast else ''} batch {batch}"
        say(f"throughput {label}: {args.warmup} warm-up + {args.steps} steps")
        try:
            result = throughput(model, data, dev, precision, autocast, batch, args.steps,
                                args.warmup, args.cpu_seconds)
        except Exception as exc:  # one failing variant must not lose the others
            result = {"model": model, "device": str(dev), "precision": precision,
                      "autocast": autocast, "batch_size": batch, "error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
        report["throughput"].append(result)
        save()
        say(f"  -> {result.get('examples_per_second', result.get('error'))} ex/s"
            f"{' (capped at ' + str(result['steps']) + ' steps)' if result.get('capped') else ''}")

    # 2. one epoch through the real training path, 3. export of the GPU-trained SINE
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        epoch_device = str(device)
        for model in MODELS:
            if not gpu and model != "sine":
                continue  # CPU mode: one SINE epoch suffices for the export check
            if time.perf_counter() - STARTED > args.budget:
                report["notes"].append(f"skipped the {model} epoch on {epoch_device}: budget")
                continue
            say(f"one epoch of {model} on {epoch_device} through train_split")
            try:
                if not gpu:
                    # a whole CPU epoch of video is slow on a small machine: the export
                    # check only needs a trained run, so train on the first users only
                    small = _first_users(args.data, args.cpu_users, work)
                    part = load_data(small, config)
                    entry = full_epoch(model, part, {**source, "path": str(small)}, epoch_device, work)
                    entry["note"] = f"CPU mode: the first {args.cpu_users:,} users only"
                else:
                    entry = full_epoch(model, data, source, epoch_device, work)
            except Exception as exc:
                entry = {"model": model, "error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            report["epochs"].append(entry)
            save()
            say(f"  -> {json.dumps(entry)}")
        sine_run = next((e["run"] for e in report["epochs"] if e.get("model") == "sine" and "run" in e), None)
        if sine_run is not None:
            say(f"export of the {epoch_device}-trained SINE run to ONNX, parity check")
            try:
                report["export"] = export_check(Path(sine_run), work, device)
            except Exception as exc:
                report["export"] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            say(f"  -> {json.dumps(report['export'])}")
        for entry in report["epochs"]:
            entry.pop("run", None)

        save()

    # 4. last, being the part most likely to fail or to take long: the GPU steps with
    # torch.compile (fused kernels; compilation counted in warm-up, not in ex/s)
    if gpu and not args.no_compile:
        for model in MODELS:
            if time.perf_counter() - STARTED > args.budget:
                report["notes"].append(f"skipped torch.compile for {model}: budget")
                continue
            say(f"throughput {model} {device} fp32 + torch.compile batch 128 (compiling in warm-up)")
            try:
                result = throughput(model, data, device, "fp32", False, 128, args.steps,
                                    args.warmup, args.cpu_seconds, compile=True)
            except Exception as exc:
                result = {"model": model, "device": str(device), "precision": "fp32",
                          "autocast": False, "compiled": True, "batch_size": 128,
                          "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                traceback.print_exc()
            report["throughput"].append(result)
            save()
            say(f"  -> {result.get('examples_per_second', result.get('error'))} ex/s")

    save()
    print(markdown(report))
    say(f"wrote {args.out / 'gpu_check.json'} and gpu_check.md")


def _first_users(path: Path, users: int, work: Path) -> Path:
    import pandas as pd

    frame = pd.read_csv(path)
    keep = frame["user_id"].drop_duplicates().iloc[:users]
    small = work / "first-users.csv"
    frame[frame["user_id"].isin(keep)].to_csv(small, index=False)
    return small


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    where = env.get("gpu", "no GPU")
    lines = [f"GPU check on {where}, {env['cpu_count']} CPU cores, torch {env['torch']} "
             f"(CUDA {env['cuda_runtime']}), Python {env['python']}; {report['data']}; "
             f"{report['seconds']} s in all.", ""]
    lines += [f"- {note}" for note in report["notes"]]
    lines += ["", "Throughput: the same timed steps (after warm-up) on each device; examples/s.", "",
              "| model | device | precision | batch | steps | ex/s | ms/step | vs CPU fp32 |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["throughput"]:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['device']} | {row['precision']}"
                         f"{' + compile' if row.get('compiled') else ''} | {row['batch_size']} "
                         f"| | failed: {row['error'][:80]} | | |")
            continue
        base = [r for r in report["throughput"] if r["model"] == row["model"] and r["device"] == "cpu"
                and r["precision"] == "fp32" and "error" not in r]
        ratio = f"{row['examples_per_second'] / base[0]['examples_per_second']:.1f}x" if base else ""
        precision = row["precision"] + (" + autocast" if row["autocast"] else "") + \
            (" + compile" if row.get("compiled") else "")
        steps = f"{row['steps']}{' (capped)' if row['capped'] else ''}"
        lines.append(f"| {row['model']} | {row['device']} | {precision} | {row['batch_size']} | {steps} | "
                     f"{row['examples_per_second']:,.0f} | {row['ms_per_step']} | {ratio} |")
    if report["epochs"]:
        lines += ["", "One epoch through `train_split` (the `sine train` path), default precision:", "",
                  "| model | device | bf16 products | train s | ex/s | eval+write s | valid NDCG@10 |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        for e in report["epochs"]:
            if "error" in e:
                lines.append(f"| {e['model']} | failed: {e['error'][:100]} | | | | | |")
            else:
                lines.append(f"| {e['model']} | {e['device']} | {e['bf16_products']} | {e['train_seconds']} | "
                             f"{e['examples_per_second']:,.0f} | {e['eval_and_write_seconds']} | "
                             f"{e['valid_ndcg@10']} |")
    if "export" in report:
        lines += ["", f"Export: `{json.dumps(report['export'])}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

