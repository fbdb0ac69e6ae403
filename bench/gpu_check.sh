#!/usr/bin/env bash
# The GPU check on the GPU machine (docs/speed.md): install the wheels that travelled in .whl/ (made here
# by bench/gpu_wheels.sh) into a folder of their own, then run bench/gpu_check.py on CUDA with its output
# also in $OUT/gpu_check.log. Arguments go to gpu_check.py (e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
site=${CLIPLIT_WHEEL_SITE:-/tmp/cliplit-wheels}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 bench/gpu_check.py --device cuda --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
