"""Real batch norms from the wild (bn_invariants/zoo/wild): each thing that went wrong
when the suite met them (issue 9) is reproduced here with a small batch norm written for
the purpose, and now holds.

In-process checks use the ci profile's search on the CPU; a few end-to-end runs check
what a ``--bn-impl`` user sees (exit status, summary lines, the reproduction).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from bn_invariants.invariants import REGISTRY, InvariantViolation, load_subject
from bn_invariants.invariants.capabilities import probe_capabilities
from bn_invariants.invariants.conventions import Conventions, declare
from bn_invariants.invariants.coverage import probe
from bn_invariants.invariants.diagnosis import diagnose
from bn_invariants.invariants.runner import find_violation, target_for
from bn_invariants.invariants.subjects import SubjectError
from bn_invariants.strategies import BNOptions
from bn_invariants.targets import CheckedTarget
from tools.kill_matrix import search_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WILD = "bn_invariants.zoo.wild"


def run_pytest(*args, timeout=600):
    """The suite on one wild batch norm, in a fresh interpreter, ci profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-W", "ignore::DeprecationWarning", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def subject(name: str):
    return load_subject(f"{WILD}.{name}")


def search(name: str, invariant_id: str):
    """The shrunk violation of ``invariant_id`` by a wild batch norm (None if it holds),
    drawn only where the batch norm accepts the options, as under pytest."""
    s = subject(name)
    space = probe(s, "cpu")
    target = target_for(REGISTRY[invariant_id], s, space)
    assert target.space, f"{invariant_id} applies to nothing {name} accepts"
    return find_violation(CheckedTarget(target, probe_capabilities(s, "cpu", space)),
                          search_settings())


@pytest.fixture
def conventions():
    """Declare conventions for one test, torch's again afterwards."""
    yield declare
    declare(Conventions())


# --- 1. torch's kernel behind another class: inherited, not the subject's -------------------

@pytest.mark.parametrize("strict", [False, True], ids=["default", "bn-strict"])
def test_a_subclass_of_torchs_batch_norm_inherits_torchs_deviations(strict):
    result = run_pytest(f"--bn-impl={WILD}.torch_kernel:BatchNormAct2d", "-rx",
                        "-k", "extreme-magnitudes", *(["--bn-strict"] if strict else []))
    out = result.stdout
    assert "inherited from torch" in out, out[-3000:]
    if strict:
        assert result.returncode == 1, out[-3000:]
    else:
        assert result.returncode == 0, out[-3000:]
        assert re.search(r"\b1 inherited from torch\b", out), out[-3000:]


# --- 2. crashes inside the suite ------------------------------------------------------------

def test_a_lazy_factory_with_one_channel_is_materialised_not_broadcast_into_nothing():
    assert search("torch_kernel:lazy_batch_norm_2d", "differential-agreement") is None
    assert search("torch_kernel:lazy_batch_norm_2d", "parameter-gradients") is None


def test_parameters_as_buffers_are_not_a_crash(conventions):
    violation = search("frozen:frozen_batch_norm", "parameter-gradients")
    assert not isinstance(violation, AttributeError), violation


def test_weight_as_a_property_survives_gradcheck():
    assert search("defects:PackedAffineBatchNorm", "gradcheck") is None


# --- 3. declined options are reported, not poisonous ----------------------------------------

def test_a_declined_option_is_reported_with_its_message_and_never_drawn():
    s = subject("teaching:CourseBatchNorm")
    caps = probe_capabilities(s, "cpu", probe(s, "cpu"))
    assert list(caps.declined) == ["momentum=None"]
    assert "NotImplementedError: momentum=None (cumulative average) is not supported" in \
        caps.describe()
    assert not caps.accepts(BNOptions(momentum=None)) and caps.accepts(BNOptions())


# --- 4. one bad rank does not abort the run -------------------------------------------------

def test_a_rank_with_a_wrong_output_shape_is_left_out_and_reported():
    s = subject("defects:UnsqueezedRank2BatchNorm")
    breaks = {}
    space = probe(s, "cpu", breaks)
    assert {rank for _, rank in breaks} == {2}
    assert "returned (4, 3, 1)" in next(iter(breaks.values()))
    assert space.dtype_ranks["float32"] == (3, 4, 5)


# --- 5. false alarms ------------------------------------------------------------------------

def test_overflow_error_is_a_clear_error():
    assert search("overflow:CheckedBatchNorm", "extreme-magnitudes") is None


# --- 6. documented conventions, declared --------------------------------------------------

@pytest.mark.parametrize("name, declared", [
    ("teaching:CourseBatchNorm", Conventions(running_var="biased")),
    ("teaching:KerasStyleBatchNorm", Conventions(running_var="biased", momentum="keep")),
])
def test_a_declared_convention_is_the_one_checked(conventions, name, declared):
    assert isinstance(search(name, "running-stats-update"), InvariantViolation)
    conventions(declared)
    assert search(name, "running-stats-update") is None


@pytest.mark.parametrize("name, flags", [
    ("teaching:CourseBatchNorm", ["--bn-running-var=biased"]),
    ("teaching:KerasStyleBatchNorm", ["--bn-running-var=biased", "--bn-momentum=keep"]),
    ("frozen:frozen_batch_norm", ["--bn-frozen"]),
])
def test_the_diagnosis_suggests_the_flags_that_explain_a_convention(name, flags):
    s = subject(name)
    suggested = [flag for flag, _ in diagnose(s, probe(s, "cpu")).suggestions(Conventions())]
    assert suggested == flags


# --- 7. defects the suite used to miss ------------------------------------------------------

@pytest.mark.parametrize("name, invariant_id, words", [
    ("defects:GraphKeepingBatchNorm", "running-stats-no-autograd-history", "grad_fn"),
    ("defects:AttributeStatsBatchNorm", "eval-no-attribute-change", "running_"),
    ("defects:HardEpsBatchNorm", "eps-honoured", "is ignored"),
    ("teaching:ViewBatchNorm", "spatial-permutation", "raised RuntimeError"),
])
def test_a_real_defect_is_caught_by_name(name, invariant_id, words):
    violation = search(name, invariant_id)
    texts = [str(e) for e in getattr(violation, "exceptions", [violation])]
    assert any(words in t for t in texts), texts


def test_a_dropped_dtype_breaks_the_construction_contract_once():
    s = subject("defects:DtypeDroppingBatchNorm")
    caps = probe_capabilities(s, "cpu", probe(s, "cpu"))
    assert caps.dropped and all("is torch.float32" in d for d in caps.dropped)
    assert any("dtype=float64 asked for" in d for d in caps.dropped)


# --- 8. the --bn-impl journey ---------------------------------------------------------------

def test_a_module_that_does_not_normalise_gets_one_verdict():
    result = run_pytest(f"--bn-impl={WILD}.not_batch_norms:layer_norm")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "this does not normalise over the batch" in result.stdout
    assert re.search(r"\b1 failed\b", result.stdout), result.stdout[-2000:]


def test_a_constructor_error_states_the_real_call_and_the_signature():
    from bn_invariants.invariants.subjects import Subject
    from bn_invariants.zoo.wild.frozen import FrozenBatchNorm2d
    with pytest.raises(SubjectError) as info:
        Subject("frozen:FrozenBatchNorm2d", FrozenBatchNorm2d).build(
            3, options=BNOptions(), device="cpu", dtype=torch.float32)
    text = str(info.value)
    assert "FrozenBatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True" in text
    assert "dtype=torch.float32) raised TypeError" in text
    assert "Name(num_features, eps=, momentum=, affine=, track_running_stats=, device=, dtype=)" in text
    assert "(a class)" in text


def test_bn_impl_runs_only_the_invariants_and_ids_work_with_k():
    result = run_pytest("--collect-only", f"--bn-impl={WILD}.overflow:CheckedBatchNorm")
    items = [line for line in result.stdout.splitlines() if "::" in line]
    assert items and all(line.startswith("bn_invariants/invariant_tests.py::") for line in items)
    builtin = run_pytest("--collect-only", "bn_invariants/invariant_tests.py", "-k",
                         "shift-invariance-reference-float64")
    assert "test_invariant[shift-invariance-reference-float64-cpu]" in builtin.stdout, \
        builtin.stdout[-2000:]
    assert "(" not in "".join(line for line in builtin.stdout.splitlines() if "::" in line)


def test_a_printed_reproduction_fails_on_its_own_the_same_way(tmp_path):
    report = tmp_path / "report.json"
    result = run_pytest("bn_invariants/invariant_tests.py", f"--bn-report={report}", "-vv",
                        "--bn-impl=bn_invariants.zoo.numerics:EpsOutsideSqrtBatchNorm",
                        "-k", "agrees-with-reference or contract")
    assert result.returncode == 1, result.stdout[-3000:]
    block = result.stdout.split("Reproduce it on its own:\n", 1)[1]
    script = block.split("'violated'\n", 1)[0] + "'violated'\n"
    path = tmp_path / "repro.py"
    path.write_text(script)
    alone = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert alone.returncode == 1 and "AssertionError: violated" in alone.stderr, alone.stderr
    assert "but float64 batch norm gives" in alone.stdout
    failure = result.stdout.split("= FAILURES =", 1)[1].split("batch-norm coverage", 1)[0]
    assert "Target(" not in failure and "Case(" not in failure
    import json
    results = json.loads(report.read_text())["results"]
    reasons = [r["reason"] for r in results if r["outcome"] == "fail"]
    assert reasons and "Reproduce it on its own" in reasons[0]
    contracts = {r["invariant"]: r["outcome"] for r in results if "contract" in r["test"]}
    assert contracts["batch-normalisation"] == "pass" and contracts["output-contract-rank2"] == "pass"


# --- robust harness: exceptions are attributed to whoever raised them -----------------------

def test_a_subject_that_raises_on_some_examples_gets_one_line_and_the_search_goes_on():
    result = run_pytest("bn_invariants/invariant_tests.py",
                        "--bn-impl=tests.fixtures.bad_impls:RaisesOnLongBatches",
                        "-k", "shift-invariance")
    assert result.returncode == 1, result.stdout[-2000:]
    lines = [line for line in result.stdout.splitlines()
             if "raised RuntimeError: kernel limited to 4 samples" in line]
    assert lines and "the other examples were checked" in lines[0], result.stdout[-2000:]
    assert "Traceback" not in result.stdout


def test_an_exception_in_the_suites_own_code_is_never_the_subjects():
    from bn_invariants.invariants.blame import raised_by_suite
    from bn_invariants.invariants.step import build
    from bn_invariants.strategies import Problem

    def suite_bug():
        build(None, Problem(shape=(2, 3)))  # the suite passing nonsense: its own bug

    with pytest.raises(AttributeError) as info:
        suite_bug()
    assert raised_by_suite(info.value)
    s = load_subject("tests.fixtures.bad_impls:RaisesOnLongBatches")
    with pytest.raises(RuntimeError) as info:
        build(s, Problem(shape=(8, 3, 2, 2)))(torch.zeros(8, 3, 2, 2))
    assert not raised_by_suite(info.value)


# --- tolerances and messages ----------------------------------------------------------------

def test_no_tolerance_is_below_half_an_ulp_of_the_computed_value():
    from bn_invariants.invariants.assertions import assert_close, half_ulp
    got = torch.tensor([3.0], dtype=torch.float32)
    ulp = 2.0 ** -22  # float32 spacing at 3
    assert float(half_ulp(got)) == ulp / 2
    assert_close("y", got, torch.tensor([3.0 + 0.4 * ulp], dtype=torch.float64), 1e-12)
    with pytest.raises(InvariantViolation):
        assert_close("y", got, torch.tensor([3.0 + 2 * ulp], dtype=torch.float64), 1e-12)
    with pytest.raises(InvariantViolation):  # an exact check (tolerance 0) stays exact
        assert_close("y", got, torch.tensor([3.0 + 0.4 * ulp], dtype=torch.float64), 0.0)


def test_a_nan_on_the_reference_side_is_said_to_be_the_references():
    from bn_invariants.invariants.assertions import assert_close
    with pytest.raises(InvariantViolation, match="the expected side \\(the reference\\) is NaN"):
        assert_close("BN(x)", torch.tensor([1.0]), torch.tensor([float("nan")]), 1e-6)


# --- summaries: declined options, suggested flags -------------------------------------------

@pytest.mark.parametrize("flags, code, line", [
    ((), 1, "suggestion: --bn-running-var=biased"),
    (("--bn-running-var=biased",), 0, "declines momentum=None (NotImplementedError"),
])
def test_a_convention_is_suggested_and_then_declared(flags, code, line):
    result = run_pytest(f"--bn-impl={WILD}.teaching:CourseBatchNorm", *flags,
                        "-k", "running-stats-update or running-stats-cumulative")
    assert result.returncode == code, result.stdout[-3000:]
    assert line in result.stdout, result.stdout[-3000:]
    assert "declines what every case of running-stats-cumulative needs" in result.stdout


def test_a_frozen_batch_norm_passes_declared_and_gets_the_flag_suggested_otherwise():
    declared = run_pytest(f"--bn-impl={WILD}.frozen:frozen_batch_norm", "--bn-frozen",
                          "--bn-dtypes=float32,float64", "-k", "eval or output-moments")
    assert declared.returncode == 0, declared.stdout[-3000:]
    assert "does not apply to an eval-only batch norm (--bn-frozen)" in declared.stdout
    undeclared = run_pytest(f"--bn-impl={WILD}.frozen:frozen_batch_norm",
                            "-k", "eval or output-moments")
    assert undeclared.returncode == 1, undeclared.stdout[-3000:]
    assert "suggestion: --bn-frozen" in undeclared.stdout


def test_an_identity_between_two_outputs_blames_neither_side():
    from bn_invariants.invariants.assertions import assert_identical
    with pytest.raises(InvariantViolation) as info:
        assert_identical("BN(2 x; eps)", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]),
                         "ctx", other="BN(x; eps/4)")
    assert str(info.value).startswith("BN(2 x; eps)[1]=2.0 and BN(x; eps/4)[1]=2.5 differ")
    assert "should be identical" in str(info.value)
