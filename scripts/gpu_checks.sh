#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md in one go (about 10 minutes on one GPU); run from the repository root:
#
#     bash scripts/gpu_checks.sh [OUTDIR]          # OUTDIR default: $OUT, else ./gpu-results
#     GPU_CHECKS_DRY=1 bash scripts/gpu_checks.sh  # tiny sizes on the CPU: checks the script itself
#
# 1. the CUDA tests (pytest -m cuda);
# 2. the IF layer: native vs spikingjelly (its CUDA kernels) vs torch.compile(native), T 8;
# 3. VGG-11 on CIFAR-10-shaped synthetic inputs (3x32x32, T 8, batch 64): seconds per step and per 50k-image
#    epoch of vanilla, SR and SR*, float32 and bf16 autocast.
# Goals (issue 13): SR <= 2.4x and SR* <= 6.5x vanilla; vanilla under 20 s per 50k-image epoch.
# Every step writes its own file under OUTDIR and has its own time limit, so one failure does not stop the
# rest; summary.txt lists each step's exit status. Needs python with CUDA torch, numpy, numba, zarr, typer;
# pytest and spikingjelly are used when installed. Works offline: the package is imported from this checkout
# through a folder of symlinks (the installed layout), nothing is pip-installed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-${OUT:-$ROOT/gpu-results}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir "$SHIM/evrobust"
for f in "$ROOT"/evrobust/*; do ln -s "$f" "$SHIM/evrobust/"; done
for d in preprocess datasets pipelines; do ln -s "$ROOT/$d" "$SHIM/evrobust/$d"; done
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"

if [ "${GPU_CHECKS_DRY:-0}" = 1 ]; then
    DEV=cpu; SHAPES="4,8,256"; MODEL="vgg_small"; SIZE=16; BATCH=4; T=2; ROUNDS=1; STEPS=1; REPEATS=2
else
    DEV=cuda; SHAPES="8,64,64,16,16 8,64,128,8,8 8,64,4096"; MODEL="vgg11"; SIZE=32; BATCH=64; T=8
    ROUNDS=5; STEPS=3; REPEATS=20
fi
: > "$OUTDIR/summary.txt"
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name: $*" > "$OUTDIR/$name.txt"
    (cd "$ROOT" && timeout "$limit" "$@") >> "$OUTDIR/$name.txt" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$OUTDIR/summary.txt"
}

step device 60 bash -c "nvidia-smi || true; $PY -c 'import torch, platform; print(torch.__version__, torch.version.cuda, \
torch.cuda.is_available() and torch.cuda.get_device_name(0), platform.python_version())'"
if [ "$DEV" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device visible to $PY; stopping" | tee -a "$OUTDIR/summary.txt"
    exit 1
fi
step cuda_tests 150 bash -c "cd tests && $PY -m pytest -p no:cacheprovider -q -m cuda ."
# shellcheck disable=SC2086
step if_layer 120 "$PY" scripts/bench_neurons.py --device "$DEV" --shapes $SHAPES --specs triangle:1 \
    --repeats "$REPEATS" --warmup 3 --compile
for AMP in "" "--amp"; do
    # shellcheck disable=SC2086
    step "train${AMP:+_bf16}" 150 "$PY" scripts/bench_train.py --model "$MODEL" --size "$SIZE" --batch "$BATCH" \
        --T "$T" --device "$DEV" --defenses vanilla sr sr_star --rounds "$ROUNDS" --steps "$STEPS" $AMP
    [ "$DEV" = cpu ] && break  # bf16 autocast is a CUDA setting
done
echo "results in $OUTDIR"
