#!/usr/bin/env bash
# Soak: the ci profile's settings (30 examples, no database, no deadline) under N different
# seeds, on torch's own batch norms on the CPU.  Usage: bash tools/soak.sh [N]
set -uo pipefail
case "${1:-}" in -h|--help) sed -n '2,3p' "$0" | cut -c3-; exit 0 ;; esac
runs=${1:-20}
failed=0
for seed in $(seq 1 "$runs"); do
  line=$(python3 -m pytest -q -p no:cacheprovider bn_invariants/invariant_tests.py \
           --hypothesis-profile=ci-seeded --hypothesis-seed="$seed" --bn-device=cpu \
           -k "not reference" ${SOAK_XDIST:-} 2>&1 | tail -n 1)
  echo "seed $seed: $line"
  case "$line" in *failed*|*error*) failed=1 ;; esac
done
if [ "$failed" = 0 ]; then echo "soak: $runs seeds, no failure"; else echo "soak: $runs seeds, failures above"; fi
exit $failed
