#!/usr/bin/env bash
# Soak: the ci profile's settings (30 examples, no database, no deadline) under N different
# seeds, on torch's own batch norms on the CPU.  Usage: bash tools/soak.sh [N] [FIRST]
# Each seed's whole output is appended to $SOAK_LOG (default soak.log): failures keep
# their replay lines.
set -uo pipefail
case "${1:-}" in -h|--help) sed -n '2,5p' "$0" | cut -c3-; exit 0 ;; esac
runs=${1:-20}
first=${2:-1}
log=${SOAK_LOG:-soak.log}
failed=0
for seed in $(seq "$first" $((first + runs - 1))); do
  out=$(python3 -m pytest -q -p no:cacheprovider bn_invariants/invariant_tests.py \
          --hypothesis-profile=ci-seeded --hypothesis-seed="$seed" --bn-device=cpu \
          -k "not reference" ${SOAK_XDIST:-} 2>&1)
  { echo "===== seed $seed"; echo "$out"; } >> "$log"
  line=$(echo "$out" | tail -n 1)
  echo "seed $seed: $line"
  case "$line" in *failed*|*error*) failed=1 ;; esac
done
if [ "$failed" = 0 ]; then echo "soak: $runs seeds, no failure"; else echo "soak: $runs seeds, failures above (whole output in $log)"; fi
exit $failed
