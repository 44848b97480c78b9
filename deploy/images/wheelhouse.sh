#!/usr/bin/env bash
# Fill deploy/wheelhouse/ with every wheel the images install, on the host, from
# requirements/lock.txt: image builds then install with `pip --no-index` and need neither
# a network nor a package index inside the build (air-gapped sites, this project's CI).
# The wheelhouse is rebuilt beside the old one, reusing its files, and swapped in: wheels
# the lock no longer names are dropped, so it never grows past one lock's worth.
#
# Usage: bash deploy/images/wheelhouse.sh [--gpu]
#   --gpu   also fetch the CUDA wheels of VARIANT=gpu (onnxruntime-gpu, faiss-gpu-cu12, the
#           CUDA build of torch: several GB) into deploy/wheelhouse/gpu/
# Settings: SINE_WHEEL_PYTHON (default 3.11, the images' Python), SINE_WHEEL_ARCH (default:
# this machine's), SINE_TORCH_INDEX (where the CPU build of torch comes from when pip does
# not already find it locally; default https://download.pytorch.org/whl/cpu).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=deploy/wheelhouse
PY=${SINE_WHEEL_PYTHON:-3.11}
ARCH=${SINE_WHEEL_ARCH:-$(uname -m)}
TORCH_INDEX=${SINE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
TORCH=$(grep -E '^torch==' requirements/lock.txt)
PIP=(python3 -m pip --disable-pip-version-check)
GPU=0
[ "${1:-}" = "--gpu" ] && GPU=1

die() { echo "wheelhouse.sh: $*" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || die "python3 with pip is needed on the host"
mkdir -p "$OUT"
NEW="$OUT.new"
rm -rf "$NEW"
mkdir -p "$NEW"
trap 'rm -rf "$NEW"' EXIT
# pip's notes about index locations it cannot read are noise here.
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }

# Wheels for the images' interpreter and platform, whatever Python runs this script.
target=(--only-binary=:all: --python-version "$PY" --implementation cp --abi "cp${PY/./}")
for glibc in 2_17 2_24 2_27 2_28 2_31 2_34 2_35 2_36; do target+=(--platform "manylinux_${glibc}_${ARCH}"); done
target+=(--platform "manylinux2014_${ARCH}" --platform "linux_${ARCH}")

# The requirements: the project's dependencies with the extras the images install, read
# from pyproject.toml, constrained to the lock file's exact versions.
mapfile -t reqs < <(python3 deploy/images/requirements.py train index serve)

echo "1/2 torch ($TORCH, CPU build) ..."
# Already here, or on a local find-links path of pip's configuration, or from the index.
if ! quiet "${PIP[@]}" download -q --no-deps "${target[@]}" --no-index --find-links "$OUT" -d "$NEW" "$TORCH" 2>/dev/null \
   && ! quiet "${PIP[@]}" download -q --no-deps "${target[@]}" --no-index -d "$NEW" "$TORCH" 2>/dev/null; then
  quiet "${PIP[@]}" download -q --no-deps "${target[@]}" --index-url "$TORCH_INDEX" -d "$NEW" "$TORCH" \
    || die "could not fetch $TORCH (CPU build): set SINE_TORCH_INDEX to an index that has it"
fi
ls "$NEW"/torch-*.whl | grep -q '+cpu' || die "pip found a torch wheel that is not a CPU build: set SINE_TORCH_INDEX"

echo "2/2 ${#reqs[@]} direct requirements and what they need (pinned by requirements/lock.txt) ..."
quiet "${PIP[@]}" download -q "${target[@]}" --find-links "$NEW" --find-links "$OUT" -c requirements/lock.txt \
  -d "$NEW" "${reqs[@]}" setuptools wheel
# pip evaluates `python_full_version` markers with this interpreter, not the target one:
# what a 3.11.0-3.11.2 interpreter (Debian bookworm's 3.11.2) needs besides.
quiet "${PIP[@]}" download -q "${target[@]}" --find-links "$NEW" -d "$NEW" "async-timeout>=4.0.3"

if [ "$GPU" = 1 ]; then
  echo "GPU wheels (onnxruntime-gpu, faiss-gpu-cu12, CUDA torch and its CUDA libraries) into $OUT/gpu ..."
  mkdir -p "$NEW/gpu"
  # Not the CPU build that pip's own find-links may hold: PyPI's torch is the CUDA one.
  PIP_FIND_LINKS="" quiet "${PIP[@]}" download -q "${target[@]}" -d "$NEW/gpu" -c requirements/lock.txt \
    "$TORCH" -r requirements/gpu.txt
  ls "$NEW"/gpu/torch-*.whl | grep -vq '+cpu' || die "pip fetched the CPU build of torch for --gpu"
elif [ -d "$OUT/gpu" ]; then
  mv "$OUT/gpu" "$NEW/gpu"
fi
# What each image installs, next to the wheels: the Dockerfile reads these lists, not
# pyproject.toml, so an edit of pyproject.toml that leaves the dependencies alone keeps
# the images' dependency layers cached.
python3 deploy/images/requirements.py serve > "$NEW/api.txt"
python3 deploy/images/requirements.py train index > "$NEW/trainer.txt"
sha256sum requirements/lock.txt requirements/gpu.txt pyproject.toml deploy/images/wheelhouse.sh \
  deploy/images/requirements.py > "$OUT.sha256.new"
rm -rf "$OUT.old"
mv "$OUT" "$OUT.old" && mv "$NEW" "$OUT" && rm -rf "$OUT.old" && mv "$OUT.sha256.new" "$OUT.sha256"
echo "$OUT: $(find "$OUT" -name '*.whl' | wc -l) wheels, $(du -sh "$OUT" | cut -f1)"
