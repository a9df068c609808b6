"""The catalogue: one module per family of invariants; importing this package registers them all.

Each module here registers at least one invariant and imports only the kernel (the modules
directly under invariants/) and strategies, never another family (tests/test_architecture.py).
To add an invariant, write (or extend) a module here that calls ``register``:

    register(Invariant(
        id="kebab-case-id", title=..., family=..., statement=r"LaTeX", why=..., source=...,
        applies=..., tolerance="in words", tolerance_formula=r"LaTeX",
        cases=lambda space: draw_cases(space, params_strategy, **problem_constraints),
        check=check,               # check(subject, case) raises InvariantViolation
    ))

Modules are discovered, so adding one needs no edit elsewhere.
"""
import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
