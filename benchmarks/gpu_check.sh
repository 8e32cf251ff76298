#!/usr/bin/env bash
# The first run on a GPU: measure instead of setting up. Prints every figure; about 3-5 minutes
# on one GPU (sizes below are chosen for that; nothing here has run on a GPU yet).
#
#   benchmarks/gpu_check.sh                 # from the repository root, with the venv's python
#   PYTHON=.venv/bin/python DEVICE=cuda:1 benchmarks/gpu_check.sh
#
# 1. the GPU tests (pytest -m gpu);
# 2. the CV engine on the GPU: a hand-written DataLoader loop, sequential folds and
#    fold-parallel folds, each in fp32, bf16 and fp16 autocast, with mean CV accuracies beside
#    the times (a faster precision that loses accuracy shows it);
# 3. a small study (the quickstart space, 6 trials) on --device cuda, timed end to end.
# Each step's exit status is printed; a failing step does not stop the later ones.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=$(mktemp -d)
status=0
step() {  # name, command...
  local name=$1; shift
  echo; echo "== $name"; echo "\$ $*"
  local t0=$SECONDS
  "$@"; local rc=$?
  echo "-- $name: exit $rc, $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || status=1
}

step "environment" "$PY" -c "
import torch, platform
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda)
print('cuda available:', torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('device 0:', p.name, f'{p.total_memory / 2**30:.1f} GiB', 'bf16:', torch.cuda.is_bf16_supported())
    x = torch.randn(4096, 4096, device='cuda'); torch.cuda.synchronize()
    import time; t = time.perf_counter()
    for _ in range(20): x @ x
    torch.cuda.synchronize(); s = (time.perf_counter() - t) / 20
    print(f'fp32 matmul 4096^3: {2 * 4096**3 / s / 1e12:.1f} TFLOP/s')
"
step "pytest -m gpu" "$PY" -m pytest -q -m gpu tests -p no:cacheprovider
step "CV engine, CNN (digits) and MLP (synthetic 10,000x64): fp32, bf16, fp16" \
  "$PY" benchmarks/bench_cv.py --device "$DEVICE" --repeats 2 --epochs 5 --mlp-samples 10000 \
  --precisions fp32,bf16,fp16
step "CV engine, CNN at batch 256" \
  "$PY" benchmarks/bench_cv.py --device "$DEVICE" --case cnn --repeats 2 --epochs 5 \
  --batch-size 256 --precisions fp32,bf16
step "small study on $DEVICE (quickstart space, 6 trials, probes on)" \
  "$PY" -c "import sys; from nasdepth.cli import main; sys.exit(main())" \
  run studies/quickstart.yaml --device "$DEVICE" --trials 6 --no-progress \
  --storage "$OUT/quickstart.journal" --out "$OUT/report" --name gpu-check
echo
echo "report and journal of the study: $OUT"
echo "gpu_check: $([ $status -eq 0 ] && echo 'every step passed' || echo 'a step failed (see above)')"
exit $status
