"""The catalogue docs are generated from the registry: they must be fresh and complete."""
import re

import pytest

from bn_invariants.invariants import REGISTRY
from tools import gen_docs

REGENERATE = "run `python3 -m tools.gen_docs` and commit the result"


@pytest.fixture(scope="module")
def pages():
    return gen_docs.render()


def test_catalogue_is_fresh():
    stale = gen_docs.stale()
    assert not stale, (f"generated docs={stale}, but should be identical to what the "
                       f"generator produces [{REGENERATE}]")


def test_every_invariant_is_in_the_catalogue(pages):
    catalogue = {path: text for path, text in pages.items()
                 if path.startswith(gen_docs.CATALOGUE)}
    index = catalogue[f"{gen_docs.CATALOGUE}/index.md"]
    anchored = {m for text in catalogue.values() for m in re.findall(r"\{#([a-z0-9-]+)\}", text)}
    for invariant_id in sorted(REGISTRY):
        assert f"#{invariant_id})" in index, (
            f"catalogue index links to {invariant_id}=no, but should link to every "
            f"registered invariant [{REGENERATE}]")
        assert invariant_id in anchored, (
            f"catalogue section for {invariant_id}=missing, but should exist on its "
            f"family page [{REGENERATE}]")
    assert anchored == set(REGISTRY), (
        f"catalogue sections={sorted(anchored)}, but should be exactly the registered "
        f"invariants {sorted(REGISTRY)} [{REGENERATE}]")


def test_generation_is_deterministic(pages):
    assert gen_docs.render() == pages, (
        "two renders of the catalogue differ, but generation should be deterministic")


def test_check_mode_flags_an_edited_page(tmp_path):
    root = tmp_path
    (root / "docs" / "data").mkdir(parents=True)
    (root / "mkdocs.yml").write_text(
        (gen_docs.ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    gen_docs.write(root)
    assert gen_docs.stale(root) == [], "stale files right after writing, but should be none"
    page = root / gen_docs.CATALOGUE / "index.md"
    page.write_text(page.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
    (root / gen_docs.CATALOGUE / "orphan.md").write_text("old family\n", encoding="utf-8")
    assert gen_docs.stale(root) == [f"{gen_docs.CATALOGUE}/index.md",
                                    f"{gen_docs.CATALOGUE}/orphan.md"], (
        "stale files after editing a page and leaving an orphan, but should list both")


HAND_WRITTEN = sorted(p for p in (gen_docs.DOCS).glob("*.md"))


def test_links_into_the_catalogue_resolve(pages):
    for page in HAND_WRITTEN:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\(catalogue/([a-z0-9-]+\.md)#([a-z0-9-]+)\)", text):
            generated = pages.get(f"{gen_docs.CATALOGUE}/{target}", "")
            assert f"{{#{anchor}}}" in generated, (
                f"link {page.name} -> catalogue/{target}#{anchor}=dangling, but should name "
                f"a registered invariant on its family page [fix the link, or {REGENERATE}]")


def test_documented_options_exist():
    from bn_invariants.options import _OPTIONS
    defined = {option for option, _, _ in _OPTIONS}
    for page in HAND_WRITTEN:
        for option in sorted(set(re.findall(r"--bn-[a-z]+(?:-[a-z]+)*", page.read_text(encoding="utf-8")))):
            assert option in defined, (f"option {option} in docs/{page.name}=undefined, but "
                                       f"should be one of {sorted(defined)} (bn_invariants/plugin.py)")


def test_kill_matrix_and_gpu_run_are_read(tmp_path):
    import json
    data = tmp_path / "docs" / "data"
    data.mkdir(parents=True)
    (tmp_path / "mkdocs.yml").write_text(
        (gen_docs.ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    (data / "kill_matrix.json").write_text(json.dumps({
        "mutants": {"DetachedMeanBatchNorm": {"bug": "the batch mean is detached"},
                    "ZooBatchNorm": {"bug": "none: a control, which must pass every invariant"}},
        "matrix": {"DetachedMeanBatchNorm": {"zero-bias-gradient": "caught",
                                             "shift-invariance": "passed"},
                   "ZooBatchNorm": {"zero-bias-gradient": "caught"}}}))
    (data / "gpu_run.json").write_text(json.dumps({"torch": "2.x+cu", "results": [
        {"invariant": "zero-bias-gradient", "subject": "s", "device": "cuda",
         "outcome": "fail", "reason": "dl/db=1, but should be 0"},
        {"invariant": "zero-bias-gradient", "subject": "s", "device": "cpu", "outcome": "pass"},
        {"invariant": "output-moments", "subject": "s", "device": "cuda", "outcome": "pass"}]}))
    pages = gen_docs.render(tmp_path)
    backward = pages[f"{gen_docs.CATALOGUE}/backward.md"]
    section = backward[backward.index("{#zero-bias-gradient}"):]
    catches = section.split("**Status.**")[0]
    assert "`DetachedMeanBatchNorm`" in catches and "ZooBatchNorm" not in catches, (
        f"catches={catches[-200:]!r}, but should list the caught mutants and no control")
    assert "| torch, CUDA | fail |" in section and "dl/db=1, but should be 0" in section, (
        "CUDA status=not fail, but should be 'fail' with the recorded message")
    index = pages[f"{gen_docs.CATALOGUE}/index.md"]
    # output-moments: an invariant with no CUDA known deviation (shift-invariance has one since
    # the third CUDA run), so a recorded pass reads pass
    moments_row = next(line for line in index.splitlines() if "#output-moments)" in line)
    assert moments_row.endswith("| pass |"), f"CUDA status of output-moments={moments_row!r}, but should be pass"
    assert gen_docs.NO_KILL_MATRIX not in backward, "kill matrix present, but page says absent"


def test_kill_matrix_page_and_figure_are_fresh():
    """docs/kill-matrix.md is among the generated pages (so test_catalogue_is_fresh covers
    it), and docs/img/kill_matrix.png records the digest of the data it was drawn from."""
    import json

    pytest.importorskip("matplotlib", reason="the docs extra (matplotlib) is not installed")
    from tools.kill_matrix import figure_stamp
    from tools.plots import IMG, figure_digest
    assert gen_docs.KILL_MATRIX in gen_docs.render(), (
        f"generated pages lack {gen_docs.KILL_MATRIX}, but the kill matrix page should be one")
    data = gen_docs.DOCS / "data"
    expected = figure_stamp(json.loads((data / "kill_matrix.json").read_text()),
                            json.loads((data / "time_to_detect.json").read_text()))
    got = figure_digest(IMG / "kill_matrix.png")
    assert got == expected, (f"kill_matrix.png data digest={got}, but should be {expected}, "
                             f"the digest of the current data [run `python3 -m tools.plots "
                             f"--only kill_matrix` and commit the figure]")


def test_an_unchanged_figure_is_not_rewritten(tmp_path):
    """tools.plots.save leaves a PNG alone when the new rendering shows the same picture
    (pixels within PIXEL_NOISE, same text chunks) and rewrites it when a pixel or the
    recorded digest moves."""
    import io

    import numpy as np
    pytest.importorskip("matplotlib", reason="the docs extra (matplotlib) is not installed")
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from tools.plots import PIXEL_NOISE, same_picture

    def png(pixels, digest="a"):
        info = PngInfo()
        info.add_text("Data-digest", digest)
        out = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8), "RGBA").save(out, "png", pnginfo=info)
        return out.getvalue()
    base = np.full((8, 8, 4), 200)
    noisy, moved = base.copy(), base.copy()
    noisy[3, 3, 0] += PIXEL_NOISE
    moved[3, 3, 0] += PIXEL_NOISE + 1
    assert same_picture(png(base), png(noisy)), "antialiasing noise counted as a change"
    assert not same_picture(png(base), png(moved)), "a moved pixel not counted as a change"
    assert not same_picture(png(base), png(base, digest="b")), "a new digest not a change"


def test_a_recorded_cuda_failure_reads_as_a_known_deviation_and_a_poisoned_one_as_unchecked():
    from bn_invariants.invariants.known_deviations import DEVIATIONS
    kind = gen_docs.cuda_failure_kind
    assert kind("weight-norm-nondecreasing", "torch.nn.BatchNorm2d", "dl/dW=nan", DEVIATIONS) \
        == "recorded"
    assert kind("weight-norm-nondecreasing", "torch.nn.BatchNorm1d", "dl/dW=nan", DEVIATIONS) \
        == "fail", "BatchNorm1d's failure was not measured on CUDA: it must still read 'fail'"
    assert kind("shift-invariance", "torch.nn.BatchNorm2d",
                "runner.DevicePoisoned: not checked on cuda", DEVIATIONS) == "not checked"
    rows = {"weight-norm-nondecreasing": [("torch.nn.BatchNorm2d", "fail", "dl/dW=nan")],
            "output-moments": [("torch.nn.BatchNorm1d", "fail", "BN(x)=1, but should be 0")]}
    cuda = ("a GPU", rows)
    assert gen_docs.cuda_status("weight-norm-nondecreasing", DEVIATIONS, cuda) == "known deviation"
    assert gen_docs.cuda_status("output-moments", DEVIATIONS, cuda) == "fail"
    assert gen_docs.failure_summary("  | first\n  | second\nReproduce it:\nimport torch") \
        == "first second"


def _resolves(dotted: str) -> bool:
    """Whether ``pkg.module.Name`` (or a ``.py`` path under the repository) exists."""
    import importlib
    from pathlib import Path
    if dotted.endswith(".py"):
        return (Path(__file__).resolve().parent.parent / dotted).exists()
    parts = dotted.split(".")
    if parts[0] == "invariants":  # the folder is the package bn_invariants.invariants
        parts.insert(0, "bn_invariants")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_the_explainer_names_only_code_that_exists():
    """A new user looked for `invariants.naive.NaiveCenteringBatchNorm`: the naive rules
    live in the zoo (issue 19)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "explainer.md").read_text()
    names = set(re.findall(r"`((?:bn_)?invariants\.[\w.]+|(?:invariants|tools)/[\w/]+\.py)`", text))
    missing = sorted(n for n in names if not _resolves(n))
    assert names and not missing, (f"explainer names={missing}, but should name code "
                                   f"that exists in bn_invariants or tools")
