#!/usr/bin/env bash
# The GPU check, as one prepared script (< 8 minutes on one GPU): the gpu-marked tests, then the
# throughput benchmark (plain loop, StudioGAN-style loop, latentflow eager / compiled / CUDA graph / bf16)
# on the SN-GAN CIFAR-10 architectures (xyfJASON SimpleCNN, StudioGAN ResNet) and the 2-D model at
# batch 1,024 and 8,192, the 50k x 1,000 estimate, the 50k-chain batch_size="auto" check and the
# compiled-vs-eager check; writes results/gpu/*.json and results/gpu/README.md (the table, with the
# device name), and on CUDA the section of docs/gpu.md between the gpu-table markers.
#
#   benchmarks/gpu_check.sh                    # on the GPU machine
#   DEVICE=cpu SMALL=1 benchmarks/gpu_check.sh # its CPU parts at small sizes (what CI can run)
#
# Environment: PYTHON (default python), DEVICE (cuda), SMALL=1 (CI sizes), OUT (results/gpu),
# BUDGET_S (seconds for the throughput part, default 300), TESTS_S (seconds for pytest, default 100).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-results/gpu}"
BUDGET_S="${BUDGET_S:-300}"
TESTS_S="${TESTS_S:-100}"
mkdir -p "$OUT"
t0=$(date +%s)
status=0

echo "== 1/3 pytest -m gpu (limit ${TESTS_S} s)"
timeout "$TESTS_S" "$PY" -m pytest -q -p no:cacheprovider -m gpu --junitxml="$OUT/pytest_gpu.xml" tests \
  > "$OUT/pytest_gpu.txt" 2>&1
rc=$?
tail -n 5 "$OUT/pytest_gpu.txt"
# 5 = nothing collected; on a machine without CUDA the gpu tests are collected and skipped (rc 0)
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
"$PY" benchmarks/gpu_table.py junit "$OUT/pytest_gpu.xml" "$OUT/pytest_gpu.json" "$rc" || status=1

echo "== 2/3 throughput (budget ${BUDGET_S} s)"
if [ "${SMALL:-0}" = "1" ]; then
  SIZES=(--quick --batches 8,16 --auto-n 64)
  SPEED=(--autocast bf16)
else
  SIZES=(--batches 1024,8192 --sngan-steps 10 --mlp-chains 8192 --mlp-steps 40 --repeats 3)
  SPEED=(--compile --autocast bf16 --cuda-graph)
fi
timeout $((BUDGET_S + 60)) "$PY" benchmarks/throughput.py --device "$DEVICE" --models mlp,simplecnn,studiogan \
  "${SIZES[@]}" "${SPEED[@]}" --estimate-50k --auto-50k --check-compile --time-budget "$BUDGET_S" \
  --out "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1 || status=1
tail -n 12 "$OUT/throughput.txt"

echo "== 3/3 table"
README_ARGS=()
if [ "$DEVICE" != "cpu" ]; then README_ARGS=(--readme docs/gpu.md); fi
"$PY" benchmarks/gpu_table.py render "$OUT/throughput.json" "$OUT/pytest_gpu.json" "$OUT/README.md" \
  "${README_ARGS[@]}" || status=1
echo "gpu_check: $(( $(date +%s) - t0 )) s, status $status (results in $OUT)"
exit $status
