"""The catalogue: one module per family; importing this package registers them all.

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
    if _module != "common":
        importlib.import_module(f"{__name__}.{_module}")
