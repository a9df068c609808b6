"""Memory layout: the same logical tensor in any storage order gives the same batch norm."""
from __future__ import annotations

import dataclasses

from bn_invariants.invariants.assertions import assert_close
from bn_invariants.invariants.bounds import input_gradient_tolerance
from bn_invariants.invariants.step import training_step
from bn_invariants.invariants.step import context
from bn_invariants.invariants.reference import closed_form, exact_output, statistics
from bn_invariants.invariants.preconditions import layout_in
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.bounds import output_tolerance
from bn_invariants.strategies import LAYOUTS, finfo

OTHER_LAYOUTS = tuple(name for name in LAYOUTS if name != "contiguous")


def check(subject, case, reference):
    p = case.problem
    plain = dataclasses.replace(p, layout="contiguous")
    g = p.cotangent().to(p.torch_dtype).double()
    stored = training_step(subject, p, g)
    contiguous = training_step(subject, plain, g)
    s = statistics(p.values, p.options.eps)
    out_tol = output_tolerance(p.dtype, s, stored.gamma, stored.beta)
    grad_tol = input_gradient_tolerance(p.dtype, s, g, stored.gamma)
    ctx = f"{context(subject, p)}; compared with the same values contiguous"
    largest = finfo(p.dtype).max  # the same ±inf on both sides may be the exact value rounded
    assert_close(f"BN(x in {p.layout})", stored.output, contiguous.output, 2 * out_tol, ctx,
                 oracle=(exact_output(s, stored.gamma, stored.beta), out_tol, largest))
    assert_close(f"dl/dx (x in {p.layout})", stored.input_grad, contiguous.input_grad,
                 2 * grad_tol, f"{ctx}; l = sum(g * BN(x)), g as drawn (cotangent regime in the problem)",
                 oracle=(closed_form(s, g, stored.gamma), grad_tol, largest))


LAYOUT_INDEPENDENCE = register(Invariant(
    id="layout-independence",
    title="Independence of the memory layout",
    family="layouts",
    statement=(r"\mathrm{BN}(\mathrm{store}_L(x)) = \mathrm{BN}(x) \text{ and } "
               r"\partial\ell/\partial x \text{ likewise, for } L \in "
               r"\{\text{channels\_last},\ \text{strided},\ \text{offset}\}"),
    why=("A tensor's strides and storage offset say where its elements live, not what they "
         "are: a batch norm is a function of the logical (N, C, *) values, so channels-last "
         "storage, a strided view or a view at a storage offset must give the same output "
         "and gradient, in the same shape. A kernel that walks memory assuming NCHW order "
         "mixes channels; one that ignores the storage offset reads the wrong values."),
    source=("PyTorch documentation: Tensor Attributes (torch.memory_format) and Tensor Views; "
            "the channels-last memory format tutorial"),
    applies=("training mode", "every rank, dtype, regime and option",
             layout_in(OTHER_LAYOUTS, "non-contiguous layouts")),
    tolerance=("twice the output tolerance of agrees-with-reference, and twice the input-"
               "gradient tolerance of differential-agreement: each layout is within its bound "
               "of the exact value, and a kernel may reduce in another order for another "
               "layout; the same ±inf in both layouts where the exact value plus its bound "
               "passes the dtype's range (float16, eps = 1e-7: dl/dx ~ γg/√ε), that value "
               "rounded"),
    tolerance_formula=(r"\tau_i = 2\,\tau^{out}_i \text{ (output)},\quad "
                       r"2\,\tau^{dx}_i \text{ (gradient)}"),
    check=check,
))
