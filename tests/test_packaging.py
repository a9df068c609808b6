"""The wheel ships every package of bn_invariants: pyproject lists them by hand (the card's
top-level folders are mapped into the package), so a new folder must be listed too."""
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packages_on_disk() -> set:
    found = set()
    for folder, dirs, files in os.walk(ROOT / "bn_invariants", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "__init__.py" in files:
            found.add(".".join(Path(folder).relative_to(ROOT).parts))
    return found


def test_every_package_is_in_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, (f"packages missing from pyproject's [tool.setuptools] packages={missing}, "
                         f"but should be [] (and, under invariants/ or strategies/, mapped in "
                         f"package-dir)")
    mapped = config["tool"]["setuptools"]["package-dir"]
    for name in listed:
        if name.startswith(("bn_invariants.invariants", "bn_invariants.strategies")):
            assert name in mapped, f"package-dir for {name}=missing, but should map its folder"
