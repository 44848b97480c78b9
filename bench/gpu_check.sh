#!/usr/bin/env bash
# The training path on a GPU host (issue 15): see bench/gpu_check.py for what it measures.
#
#   bash bench/gpu_check.sh [LOG]        # LOG default: $SINE_GPU_DATA or .gpu-data/video.csv.gz
#   OUT=/some/dir bash bench/gpu_check.sh .gpu-data/video.csv.gz
#   bash bench/gpu_check.sh LOG --device cpu     # no GPU: the CPU half only
#
# Runs with the host's own python3 and torch (PYTHON=... to choose another), imports the
# project from this checkout (no install, no downloads) and stops itself after 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-${SINE_GPU_DATA:-.gpu-data/video.csv.gz}}
shift || true
OUT=${OUT:-bench/results}
PYTHON=${PYTHON:-python3}
if [ ! -f "$LOG" ]; then
    echo "gpu_check: $LOG not found (give the log as the first argument or in SINE_GPU_DATA)" >&2
    exit 2
fi
mkdir -p "$OUT"
echo "gpu_check: $LOG -> $OUT ($("$PYTHON" --version 2>&1), $(nproc) cores)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
PYTHONPATH=. timeout -k 10 480 "$PYTHON" -u bench/gpu_check.py --data "$LOG" --out "$OUT" "$@" \
    2>&1 | tee "$OUT/gpu_check.log" || status=$?
[ "$status" -eq 124 ] && echo "gpu_check: stopped after 8 minutes (partial: see $OUT/gpu_check.log)" >&2
# several GPUs: one epoch of data-parallel training over all of them (NCCL, torchrun)
GPUS=$(command -v nvidia-smi >/dev/null && nvidia-smi -L | grep -c '^GPU' || echo 0)
if [ "$status" -eq 0 ] && [ "$GPUS" -gt 1 ]; then
    PYTHONPATH=. timeout -k 10 300 "$PYTHON" -m torch.distributed.run --standalone \
        --nproc_per_node "$GPUS" bench/ddp_check.py "$LOG" "$(mktemp -d)/run" \
        2>&1 | tee "$OUT/ddp_check.log" || status=$?
fi
exit "$status"
