"""One install story: the home page and the usage page give the README's install command,
and no page gives an install command the README does not."""
from __future__ import annotations

import re

from tools.gen_docs import ROOT

PAGES = ("docs/index.md", "docs/usage.md")
PIP_INSTALL = re.compile(r"pip install [^\n`#]*")


def install_commands(text: str) -> list[str]:
    """Every ``pip install ...`` command in ``text`` (code blocks, inline code and shell
    comments alike), whitespace collapsed, in order of appearance."""
    return [" ".join(m.split()) for m in PIP_INSTALL.findall(text)]


def test_install_commands_are_found():
    text = 'x\n```bash\npip install -e ".[a]"   # or: pip install b\n```\nthen `pip install  c`.'
    assert install_commands(text) == ['pip install -e ".[a]"', "pip install b", "pip install c"], (
        f"commands found={install_commands(text)}, but should be the three in the sample")


def test_pages_give_the_readme_install_command():
    readme = install_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme, "install commands in README.md=[], but the README should say how to install"
    for page in PAGES:
        commands = install_commands((ROOT / page).read_text(encoding="utf-8"))
        assert readme[0] in commands, (
            f"install commands of {page}={commands}, but should include the README's "
            f"{readme[0]!r}")
        foreign = [c for c in commands if c not in readme]
        assert not foreign, (f"install commands of {page} not in README.md={foreign}, but the "
                             f"pages should tell the README's install story")
