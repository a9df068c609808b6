#!/usr/bin/env bash
# The short CUDA check after the first CUDA run (docs/gpu.md): the invariant tests and the
# known-deviation replays on CUDA only, and the self-tests that used to assume a CPU-only
# machine. About 3 minutes on a 16-core GPU machine; logs go to $OUT (or ./gpu-logs).
#   bash tools/gpu_verify.sh
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"  # installed as in tools/gpu_check.sh
start=$(date +%s)
# the self-tests alongside (their own processes, 3 workers)
timeout -k 10 150 python3 -m pytest -q -rfEx -p no:cacheprovider -n 3 \
  tests/test_json_report.py::test_report_records_each_invariant_test \
  tests/test_api_cli.py::test_cli_exit_codes_table_and_json \
  tests/test_plugin.py::test_the_projects_strategies_module_is_not_shadowed \
  tests/test_known_deviations.py::test_a_device_fault_replay_runs_in_a_fresh_process_and_fails_only_on_a_fault \
  tests/test_device_faults.py > "$out/self_tests.log" 2>&1 &
self_tests=$!
timeout -k 10 170 python3 -m pytest --hypothesis-profile=ci -q -rfEx -p no:cacheprovider -n 8 \
  --bn-device=cuda -k "cuda" bn_invariants/invariant_tests.py tests/test_known_deviations.py \
  --junitxml="$out/verify.xml" --bn-report="$out/gpu_run.json" > "$out/verify.log" 2>&1
echo "exit $? (124: timed out)" >> "$out/verify.log"
# the GPU's name for the catalogue (docs/gpu.md: copy gpu_run.json to docs/data/)
python3 - "$out/gpu_run.json" <<'PY' || true
import json, sys, torch
doc = json.load(open(sys.argv[1]))
doc["device"] = torch.cuda.get_device_name(0)
json.dump(doc, open(sys.argv[1], "w"), indent=1, ensure_ascii=False)
PY
wait "$self_tests"
echo "exit $? (124: timed out)" >> "$out/self_tests.log"
echo "wall time: $(( $(date +%s) - start )) s" | tee -a "$out/verify.log"
grep -E "^(FAILED|ERROR|XPASS)|passed|failed" "$out/verify.log" | tail -n 40
# a CUDA fault (docs/gpu.md): the case that met it first, once per worker
grep -o "since a device fault in [^\"]*" "$out/verify.log" | sort -u | head -n 8
tail -n 2 "$out/self_tests.log"
