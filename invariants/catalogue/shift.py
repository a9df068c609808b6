"""Shift invariance of x-hat: BN(x + b) = BN(x) in training mode."""
from __future__ import annotations

from hypothesis import strategies as st

from bn_invariants.invariants.params import Shift, drawn
from bn_invariants.invariants.bounds import tex
from bn_invariants.strategies import streams
from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.cases import add_per_channel, per_channel_offsets, strengths
from bn_invariants.invariants.step import affine_of, build, context
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance, shifted_input_rounding
from bn_invariants.strategies import exact_shift_grid


def shifted_pair(problem, strength: float, exact: bool, std=None):
    """(x, b, fl(x + b)) as float64 values exactly representable in the problem's dtype.

    ``std`` is the per-channel standard deviation of the problem's values, when known.

    With ``exact``, x and b are first rounded to a dyadic grid on which x + b
    needs no rounding; otherwise x + b is rounded to the dtype once, as the
    subject's own addition would."""
    x = problem.values
    if std is None:
        std = statistics(x, problem.options.eps).std
    b = per_channel_offsets(problem, std, strength, stream=streams.SHIFT)
    if exact:
        h = exact_shift_grid(x, b, problem.dtype)
        x, b = (x / h).round() * h, (b / h).round() * h
    shifted = add_per_channel(x, b).to(problem.torch_dtype).double()
    return x, b, shifted


def check(subject, case, reference):
    p = case.problem
    eps = p.options.eps
    exact = case.params.exact
    original = statistics(p.values, eps)
    x, _, shifted = shifted_pair(p, case.params.shift, exact, original.std)
    module = build(subject, p)
    y_plain = module(p.input(x))
    y_shifted = build(subject, p)(p.input(shifted))
    gamma, beta = affine_of(module, x.dim())
    plain = statistics(x, eps) if exact else original
    moved = statistics(shifted, eps)
    tol = (output_tolerance(p.dtype, plain, gamma, beta)
           + output_tolerance(p.dtype, moved, gamma, beta))
    if not exact:
        tol = tol + shifted_input_rounding(p.dtype, shifted, plain, gamma)
    assert_close("BN(x + b)", y_shifted, y_plain.detach(), tol,
                 f"{context(subject, p)}; shift {'exact' if exact else 'rounded'}")


SHIFT_INVARIANCE = register(Invariant(
    id="shift-invariance",
    title="Shift invariance of x̂",
    family="forward, training mode",
    statement=r"\mathrm{BN}(x + b) = \mathrm{BN}(x) \text{ for every per-channel constant } b",
    why=("x̂ = (x − E[x]) / √(Var[x] + ε): adding b to every value of a channel adds b to "
         "E[x] and leaves x − E[x] and Var[x] unchanged. This is why a bias before a batch "
         "norm is redundant, and the premise of the paper's example."),
    source="Ioffe & Szegedy (2015), section 2 and Algorithm 1",
    applies="training mode (batch statistics); every rank, dtype, layout and option",
    tolerance=("the output tolerance of BN(x) plus that of BN(x + b), plus the effect of "
               "rounding x + b to the dtype (|δᵢ| ≤ u|xᵢ + b|); on a dyadic grid, where x + b "
               "is exact, that last term is zero"),
    tolerance_formula=(tex(r"\tau_i = \tau^{out}_i(x) + \tau^{out}_i(x+b) + "
                       r"[\text{not exact}]\, @{SAFETY}u\,\max|x+b|\,(2+|\hat x_i|)\,|\gamma|/s")),
    params=drawn(
        Shift, shift=strengths(), exact=st.booleans()),
    check=check,
))
