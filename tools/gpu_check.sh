#!/usr/bin/env bash
# The prepared CUDA run (device machine: torch with CUDA, no network):
# the ci profile of the whole suite on CPU and CUDA, --bn-impl against a torch module on
# CUDA, and the sweep's throughput.  Logs go to $OUT (or ./gpu-logs).
#   bash tools/gpu_check.sh
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/env.txt"
import torch, hypothesis, pytest, numpy, platform
print("date", __import__("datetime").date.today())
print("python", platform.python_version(), "torch", torch.__version__, "hypothesis",
      hypothesis.__version__, "pytest", pytest.__version__, "numpy", numpy.__version__)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
PY
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
python3 -m benchmarks.sweep --device cuda --channels 1000000 --rounds 5 2>&1 | tee "$out/sweep.log"
