"""The repository's own pytest wiring.

The options, profiles, subjects and coverage report live in the installed plugin
(``bn_invariants/plugin.py``, entry point ``pytest11``); this repository turns it on
for torch's own batch norms with ``bn_builtin = true`` in pyproject.toml, so a bare
``pytest`` checks them and runs the self-tests under ``tests/``.
"""
