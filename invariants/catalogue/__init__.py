"""The catalogue: one module per family of invariants; importing this package registers them all.

Each module here registers at least one invariant and imports only the kernel (the modules
directly under invariants/) and strategies, never another family (tests/test_architecture.py).
To add an invariant, write (or extend) a module here that calls ``register``:

    register(Invariant(
        id="kebab-case-id", title=..., family=..., statement=r"LaTeX", why=..., source=...,
        applies=("training mode", TRACKED, "every rank, dtype, layout and option"),
        tolerance="in words", tolerance_formula=tex(r"LaTeX with @{SAFETY}"),
        params=drawn(Steps, steps=st.integers(1, 6), lr=st.sampled_from((1.0, 0.1))),
        check=check,               # check(subject, case, reference) raises InvariantViolation
    ))

``applies`` names its preconditions (invariants/preconditions.py), which narrow or
filter the draw; ``params`` are typed (invariants/params.py); cases are drawn by
``draw_cases`` unless ``cases=`` says otherwise.
Modules are discovered, so adding one needs no edit elsewhere.
"""
import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
