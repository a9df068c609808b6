"""The catalogue docs are generated from the registry: they must be fresh and complete."""
import re

import pytest

from invariants import REGISTRY
from tools import gen_docs

REGENERATE = "run `python3 -m tools.gen_docs` and commit the result"


@pytest.fixture(scope="module")
def pages():
    return gen_docs.render()


def test_catalogue_is_fresh(pages):
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
