#!/usr/bin/env bash
# bench/gpu.py's whole matrix on a GPU machine that has PyTorch but not diffusers, in one command, within a time
# budget: the lent machines of this project's sessions (their image holds torch, transformers, accelerate and
# safetensors, not diffusers; nothing can be downloaded there). See docs/local-models.md#benchmark.
#
# Here, first:   bench/gpu_device.sh --fetch     (the wheels it needs, into .whl/, kept out of git)
# There:         bash bench/gpu_device.sh        (carry .whl; tables into $OUT, or ./gpu-results)
#
# Each case runs under its own time limit (GPU_BENCH_CASE_S, default 150 s) and a case that fails or runs out
# of time is reported and skipped, so one command always brings back what it measured. GPU_BENCH_PYTHON picks the
# interpreter (default python3), GPU_BENCH_EXTRA adds arguments to every case (for a check on a CPU:
# GPU_BENCH_EXTRA="--scale tiny --size 64 --steps 2 --images 2 --batch 2").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

DIFFUSERS=diffusers==0.42.1  # the version the tests run (its needs there: importlib_metadata; the rest is in the image)
if [[ "${1:-}" == "--fetch" ]]; then
    grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    exec "${GPU_BENCH_PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$DIFFUSERS" importlib_metadata
fi

PY=${GPU_BENCH_PYTHON:-python3}
OUT=${OUT:-gpu-results}
CASE_S=${GPU_BENCH_CASE_S:-150}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/limner-site .whl/*.whl \
        || { echo "could not install the carried wheels" >&2; exit 1; }
    export PYTHONPATH=/tmp/limner-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import sys, torch, diffusers, transformers; print(sys.version.split()[0], "torch", torch.__version__,
  "diffusers", diffusers.__version__, "transformers", transformers.__version__)'; } 2>&1 | tee "$OUT/versions.txt"

failed=0
run_case() {  # name, then bench/gpu.py's arguments
    local name=$1; shift
    echo "== $name: bench/gpu.py $* ${GPU_BENCH_EXTRA:-}"
    # shellcheck disable=SC2086  # GPU_BENCH_EXTRA is a list of arguments
    timeout -k 10 "$CASE_S" "$PY" bench/gpu.py "$@" ${GPU_BENCH_EXTRA:-} > "$OUT/$name.txt" 2>&1
    local rc=$?
    cat "$OUT/$name.txt"
    if [[ $rc -ne 0 ]]; then
        echo "!! $name: exit $rc$([[ $rc -eq 124 || $rc -eq 137 ]] && echo " (over ${CASE_S} s)")"
        failed=$((failed + 1))
    fi
}

run_case flux-1024 --arch flux --size 1024 --batch 4 --images 8
run_case sd-512 --arch sd --size 512 --batch 4 --images 8
run_case flux-1024-compiled --arch flux --size 1024 --batch 4 --images 8 --compile --compiled-only
echo "== $failed case(s) failed; tables in $OUT/"
exit $((failed > 0))
