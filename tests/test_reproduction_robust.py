"""The stand-alone reproduction never costs the verdict: found by a new user's run, where
an empty-batch violation crashed the whole pytest session (INTERNALERROR) while the suite
built its script: batch_norm64 took amax over an empty batch."""
import pytest

from bn_invariants import zoo
from bn_invariants.invariants import REGISTRY, Case, InvariantViolation
from bn_invariants.invariants import reproduction
from bn_invariants.invariants.runner import check_case
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import Problem

POISONED = Subject("EmptyBatchPoisonsStats", zoo.EmptyBatchPoisonsStatsBatchNorm)
EMPTY = Case(Problem((0, 1)))


def violation_message() -> str:
    with pytest.raises(InvariantViolation) as caught:
        check_case(REGISTRY["empty-batch"], POISONED, EMPTY)
    return str(caught.value)


def test_an_empty_batch_violation_builds_its_reproduction_without_crashing():
    assert reproduction.reproduce(REGISTRY["empty-batch"], POISONED, EMPTY,
                                  violation_message()) == ""


def test_a_failing_script_builder_is_reported_as_the_suites_bug(monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("amax(): Expected reduction dim 0 to have non-zero size.")
    monkeypatch.setattr(reproduction, "find_call", broken)
    text = reproduction.reproduce(REGISTRY["empty-batch"], POISONED, EMPTY, violation_message())
    assert "a bug in the suite" in text and "IndexError" in text


def test_the_plugin_reports_an_empty_batch_violation_and_keeps_the_session():
    """The new user's command, on the zoo's empty-batch mutant: a failed test (exit 1),
    never an INTERNALERROR (exit 3) that loses every result."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "bn_invariants",
         "--bn-impl=bn_invariants.zoo.edge_cases:EmptyBatchPoisonsStatsBatchNorm",
         "--bn-device=cpu", "-k", "empty-batch"],
        cwd=root, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "running_mean[0]=nan" in done.stdout and "INTERNALERROR" not in done.stdout


# --- a reproduction runs anywhere (issue 19) ------------------------------------------------

SUBJECT_SOURCE = '''
import torch


class OffByOne(torch.nn.BatchNorm1d):
    """torch's BatchNorm1d plus one."""

    def forward(self, x):
        return super().forward(x) + 1
'''


@pytest.fixture
def written(tmp_path, monkeypatch):
    """A reproduction written for a subject in a temporary project, from that project's
    root: (the script's path, the command the run prints, a function that writes it again)."""
    import importlib
    import sys

    project = tmp_path / "project"
    (project / "reprosubjectpkg").mkdir(parents=True)
    (project / "reprosubjectpkg" / "__init__.py").write_text("")
    (project / "reprosubjectpkg" / "layers.py").write_text(SUBJECT_SOURCE)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    layers = importlib.import_module("reprosubjectpkg.layers")
    try:
        subject = Subject("reprosubjectpkg.layers:OffByOne", layers.OffByOne)
        case = Case(Problem((8, 8), "float32", seed=0))  # 64 elements: x goes to a .pt file
        with pytest.raises(InvariantViolation) as violation:
            check_case(REGISTRY["agrees-with-reference"], subject, case)

        def write():
            return reproduction.reproduction_file(REGISTRY["agrees-with-reference"], subject,
                                                  case, str(violation.value))
        yield (*write(), write)
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "reprosubjectpkg"]:
            del sys.modules[name]


def run_alone(script, cwd):
    """Run ``python script`` from ``cwd`` with nothing of the suite or the project on the path."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_reproduction_is_written_to_the_repro_folder_and_named_by_one_command(written):
    from pathlib import Path
    path, command, _ = written
    assert path.parent.name == "bn-invariants-repro" and path.name.startswith("agrees-with-reference-")
    assert command == f"python bn-invariants-repro/{path.name}"
    assert path.read_text().startswith("import sys")
    assert list(path.parent.glob("*.pt")), "the 64-element input should go to a .pt file"
    assert (path.parent / ".gitignore").read_text().splitlines()[-1] == "*"
    assert Path.cwd() / "bn-invariants-repro" / path.name == path


def test_a_reproduction_runs_from_another_directory(written, tmp_path):
    path, _, _ = written
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    alone = run_alone(path.resolve(), elsewhere)
    assert alone.returncode == 1 and "AssertionError: violated" in alone.stderr, alone.stderr
    assert "but float64 batch norm gives" in alone.stdout


def test_a_moved_repro_folder_finds_its_tensors_beside_its_script(written, tmp_path):
    import shutil
    path, _, _ = written
    moved = shutil.copytree(path.parent, tmp_path / "moved" / "repro")
    shutil.rmtree(path.parent)  # the original tensors are gone: only the copy's can be read
    alone = run_alone(moved / path.name, tmp_path)
    assert alone.returncode == 1 and "AssertionError: violated" in alone.stderr, alone.stderr


def test_the_same_failure_is_written_to_the_same_file_once(written):
    path, command, again = written
    assert again() == (path, command)
    assert [p.name for p in path.parent.glob("*.py")] == [path.name]
