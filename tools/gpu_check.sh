#!/usr/bin/env bash
# The prepared CUDA run (device machine: torch with CUDA, no network):
# the ci profile of the whole suite on CPU and CUDA, --bn-impl against a torch module on
# CUDA, torch.nn.SyncBatchNorm with NCCL where 2 GPUs exist, and the sweep's throughput.
# Logs go to $OUT (or ./gpu-logs).
#   bash tools/gpu_check.sh
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
parallel=""
python3 -c "import xdist" 2>/dev/null && parallel="-n 8"
start=$(date +%s)
python3 -m pytest --hypothesis-profile=ci -q -rsx -p no:cacheprovider $parallel \
  --junitxml="$out/suite.xml" --bn-report="$out/gpu_run.json" 2>&1 | tail -n 400 > "$out/suite.log"
echo "suite wall time: $(( $(date +%s) - start )) s" | tee -a "$out/suite.log"
tail -n 3 "$out/suite.log"
python3 -m pytest --hypothesis-profile=ci -q -p no:cacheprovider --bn-device=cuda \
  --bn-impl=torch.nn:BatchNorm2d bn_invariants/invariant_tests.py 2>&1 | tail -n 200 > "$out/bn_impl.log"
tail -n 3 "$out/bn_impl.log"
# torch's SyncBatchNorm refuses CPU input: the distributed family runs it with NCCL, one GPU
# per rank, where at least 2 GPUs exist (W up to min(4, GPUs)); the suite run above includes
# it too, this log holds it alone
gpus=$(python3 -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$gpus" -ge 2 ]; then
  python3 -m pytest --hypothesis-profile=ci -q -rs -p no:cacheprovider -o bn_builtin=false \
    --bn-dist-impl=torch.nn:SyncBatchNorm --bn-dist-device=cuda bn_invariants/distributed_tests.py \
    2>&1 | tail -n 200 > "$out/sync_bn.log"
else
  echo "torch.nn.SyncBatchNorm with NCCL not run: $gpus GPU(s) here, it needs at least 2" \
    > "$out/sync_bn.log"
fi
tail -n 3 "$out/sync_bn.log"
python3 -m benchmarks.sweep --device cuda --channels 1000000 --rounds 5 2>&1 | tee "$out/sweep.log"
