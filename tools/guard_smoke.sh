#!/usr/bin/env bash
# The guard as another project uses it, from a built wheel in a fresh virtual environment:
#   1. build the wheel; 2. install it (not editable) with torch into a new venv;
#   3. make a small project with its own strategies.py, conftest.py and tests/;
#   4. plain `pytest` there runs only the project's own tests;
#   5. the plugin exits 0 on a correct batch norm and 1 on a detached-mean one, with the
#      counterexample; 6. the Python API and the command line agree.
# Usage: bash tools/guard_smoke.sh [WORKDIR]   (run by .ci/run; prints each step)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "guard smoke: FAILED: $*" >&2; exit 1; }

step "1. build the wheel"
# from a clean copy of the source: a build/ folder left by an earlier build would put
# modules that no longer exist into the wheel
mkdir -p "$work/src"
(cd "$repo" && tar --exclude=./.git --exclude=./build --exclude=./dist --exclude='*.egg-info' \
  --exclude=__pycache__ -cf - .) | tar -xf - -C "$work/src"
python3 -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" "$work/src" 2>&1 | grep -v WARNING || true
wheel=$(ls "$work"/dist/bn_invariants-*.whl)
echo "$wheel"

cd "$work"
step "2. install it with torch into a fresh virtual environment"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet "torch==2.13.0" 2>&1 | grep -v WARNING || true
"$py" -m pip install --quiet "$wheel" 2>&1 | grep -v WARNING || true
"$py" -c "import bn_invariants, sys; print('bn_invariants', bn_invariants.__version__, 'from', bn_invariants.__file__)"
"$py" -c "import bn_invariants.plugin, sys; assert 'torch' not in sys.modules, 'plugin load imported torch'" \
  || fail "loading the plugin imported torch"

step "3. a project with its own strategies.py, conftest.py and tests/"
proj="$work/project"
mkdir -p "$proj/mypkg" "$proj/tests"
cat > "$proj/mypkg/__init__.py" <<'EOF'
EOF
cat > "$proj/pyproject.toml" <<'EOF'
[project]
name = "mypkg"
version = "0.0.1"
[tool.setuptools]
packages = ["mypkg"]
EOF
cat > "$proj/mypkg/norm.py" <<'EOF'
"""The project's batch norms: a correct one, and one with the paper's naive rule."""
from bn_invariants.zoo import DetachedMeanBatchNorm as DetachedBN  # noqa: F401
from bn_invariants.zoo import ZooBatchNorm as FusedBN  # noqa: F401
EOF
cat > "$proj/strategies.py" <<'EOF'
"""The project's own Hypothesis strategies (a name the guard must not shadow)."""
from hypothesis import strategies as st

small_ints = st.integers(0, 10)
EOF
cat > "$proj/conftest.py" <<'EOF'
import pytest


@pytest.fixture
def answer():
    return 42
EOF
cat > "$proj/tests/test_own.py" <<'EOF'
from hypothesis import given

from strategies import small_ints


@given(small_ints)
def test_small(n):
    assert 0 <= n <= 10


def test_fixture(answer):
    assert answer == 42
EOF
cd "$proj"
"$py" -m pip install --quiet -e . 2>&1 | grep -v WARNING || true   # the workflow's `pip install -e .`

step "4. plain pytest runs only the project's own tests"
out=$("$py" -m pytest -q -p no:cacheprovider 2>&1) || { echo "$out"; fail "plain pytest failed"; }
echo "$out" | tail -n 3
echo "$out" | grep -q "^2 passed" || fail "plain pytest should run exactly the project's 2 tests"
if echo "$out" | grep -qi "batch-norm\|bn-invariants"; then fail "plain pytest printed the guard's output"; fi

step "5. the plugin: 0 for the correct batch norm, 1 with a counterexample for the naive rule"
"$py" -m pytest --collect-only -q -p no:cacheprovider --bn-impl=mypkg.norm:FusedBN > "$work/collect.log" 2>&1 \
  || { tail -n 20 "$work/collect.log"; fail "collection with --bn-impl failed"; }
grep -q "tests/test_own.py::test_small" "$work/collect.log" || fail "--bn-impl should keep the project's own tests"
grep -q "::test_invariant\[zero-bias-gradient-mypkg.norm:FusedBN-cpu\]" "$work/collect.log" \
  || fail "--bn-impl should add the invariant tests"
echo "collected: $(grep -c '::test_invariant\[' "$work/collect.log") invariant tests and the project's own"
# the documented workflow's own check line (docs/examples/bn-invariants.yml), as CI=true runs it
workflow_check=$(sed -n 's/^ *- run: pytest /pytest /p' "$repo/docs/examples/bn-invariants.yml")
[ -n "$workflow_check" ] || fail "no '- run: pytest' line in docs/examples/bn-invariants.yml"
echo "workflow: $workflow_check"
CI=true "$py" -m $workflow_check -p no:cacheprovider > "$work/plugin_ok.log" 2>&1 \
  || { tail -n 40 "$work/plugin_ok.log"; fail "the workflow's check on FusedBN should exit 0"; }
tail -n 2 "$work/plugin_ok.log"
set +e
"$py" -m pytest -q -p no:cacheprovider --hypothesis-profile=ci --bn-impl=mypkg.norm:DetachedBN \
  -k "zero-bias-gradient or no-bias-drift" > "$work/plugin_bad.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { tail -n 40 "$work/plugin_bad.log"; fail "plugin on DetachedBN should exit 1, got $rc"; }
grep -q "dl/db\[0\]=" "$work/plugin_bad.log" || fail "no dl/db counterexample in the plugin's output"
# the defect's replay line, run as a user would, must fail the same way
grep -q "detached-mean (semantic)" "$work/plugin_bad.log" \
  || { tail -n 40 "$work/plugin_bad.log"; fail "the plugin did not name the detached-mean defect"; }
replay=$(grep -m1 -o "replay: bn-invariants replay zero-bias-gradient .*" "$work/plugin_bad.log" \
  | sed 's/^replay: bn-invariants //')
[ -n "$replay" ] || { tail -n 40 "$work/plugin_bad.log"; fail "no replay line for zero-bias-gradient"; }
echo "replay: bn-invariants $replay"
set +e
eval "\"$work/venv/bin/bn-invariants\" $replay" > "$work/replay.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/replay.log"; fail "the printed replay should exit 1, got $rc"; }
grep -q "dl/db\[0\]=" "$work/replay.log" \
  || { tail -n 20 "$work/replay.log"; fail "the printed replay failed otherwise than the test"; }
echo "the printed replay, run on its own, fails the same way: $(grep -m1 -o 'dl/db\[0\]=[^,]*' "$work/replay.log")"
grep -m1 "dl/db\[0\]=" "$work/plugin_bad.log"

step "6. the Python API and the command line say the same"
cat > "$proj/tests/test_guard.py" <<'EOF'
import pytest

from bn_invariants import check_batch_norm
from mypkg.norm import DetachedBN, FusedBN


def test_fused_bn_holds_every_invariant():
    report = check_batch_norm(FusedBN, devices=["cpu"], settings="ci")
    assert report.ok and report.counts()["pass"] > 0


def test_detached_mean_is_caught_with_its_reproduction():
    with pytest.raises(AssertionError, match=r"(?s)zero-bias-gradient on cpu: .*reproduce: Case\("):
        check_batch_norm(DetachedBN, devices=["cpu"], invariants=["zero-bias-gradient"],
                         settings="ci")
EOF
"$py" -m pytest -q -p no:cacheprovider tests/test_guard.py > "$work/api.log" 2>&1 \
  || { tail -n 40 "$work/api.log"; fail "API tests failed"; }
tail -n 1 "$work/api.log"
cli="$work/venv/bin/bn-invariants"
"$cli" check mypkg.norm:FusedBN --profile ci --quiet --json "$work/ok.json" > "$work/cli_ok.log" 2>&1 \
  || { tail -n 40 "$work/cli_ok.log"; fail "bn-invariants check on FusedBN should exit 0"; }
grep "passed, 0 failed" "$work/cli_ok.log" || fail "CLI table summary missing"
set +e
"$cli" check mypkg.norm:DetachedBN --profile ci --invariant zero-bias-gradient > "$work/cli_bad.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/cli_bad.log"; fail "bn-invariants check on DetachedBN should exit 1, got $rc"; }
grep -q "reproduce: Case(" "$work/cli_bad.log" || fail "no reproduction in the CLI's output"
grep -m1 "zero-bias-gradient  cpu" "$work/cli_bad.log"
echo
echo "guard smoke: passed"
