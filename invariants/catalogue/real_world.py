"""Invariants found by checking real batch norms: side effects through the autograd graph
and plain tensor attributes, an ignored eps, and spatial dimensions stored permuted."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from bn_invariants.invariants.params import Scale, drawn
from bn_invariants.invariants.assertions import InvariantViolation, assert_close
from bn_invariants.invariants.bounds import output_tolerance
from bn_invariants.invariants.reference import statistics
from bn_invariants.invariants.preconditions import TRACKED, option_in, regime_in, layout_in
from bn_invariants.invariants.registry import Invariant, register
from bn_invariants.invariants.step import affine_of, build, context

STATE_NAMES = ("running_mean", "running_var")


def tensor_state(module) -> dict:
    """Every tensor the module holds: parameters, buffers and plain tensor attributes,
    of the module and its submodules, by qualified name."""
    out = {}
    for prefix, sub in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        for name, value in vars(sub).items():
            if isinstance(value, torch.Tensor):
                out[dot + name] = value
        for name, value in [*sub._parameters.items(), *sub._buffers.items()]:
            if isinstance(value, torch.Tensor):
                out[dot + name] = value
    return out


# --- running-stats-no-autograd-history --------------------------------------------------

def check_no_history(subject, case, reference):
    p = case.problem
    module = build(subject, p)
    x = p.input().requires_grad_(True)
    module(x)
    ctx = f"{context(subject, p)}; one training forward of an input that requires grad"
    for name, value in tensor_state(module).items():
        if isinstance(value, torch.nn.Parameter):
            continue
        if value.requires_grad or value.grad_fn is not None:
            raise InvariantViolation(
                f"{name}.grad_fn={type(value.grad_fn).__name__ if value.grad_fn else None} "
                f"(requires_grad={value.requires_grad}), but should carry no autograd history: "
                f"a later backward would run through it a second time [{ctx}]")


RUNNING_STATS_NO_HISTORY = register(Invariant(
    id="running-stats-no-autograd-history",
    title="Running statistics carry no autograd history",
    family="running statistics",
    statement=(r"\text{after a training forward of } x \text{ with } x.\mathrm{requires\_grad}:\ "
               r"\hat\mu.\mathrm{grad\_fn} = \hat\sigma^2.\mathrm{grad\_fn} = \text{None}"),
    why=("The running statistics are estimates for inference, not functions of the "
         "parameters: they are updated without gradient (torch updates them in place inside "
         "the kernel). A buffer assigned (1−m)·r + m·μ_B outside torch.no_grad() keeps the "
         "batch's autograd graph: memory grows with every step, and the next backward raises "
         "'Trying to backward through the graph a second time'."),
    source="torch.nn.BatchNorm2d (running statistics are buffers, updated without autograd)",
    applies=("training mode, an input that requires grad; every tensor the module holds "
             "(buffers and plain tensor attributes) except its parameters; every rank, dtype, "
             "layout and option"),
    tolerance="none: requires_grad and grad_fn are checked exactly",
    tolerance_formula=r"\tau = 0",
    check=check_no_history,
))


# --- eval-no-attribute-change -----------------------------------------------------------

def check_no_attribute_change(subject, case, reference):
    p = case.problem
    module = build(subject, p).eval()
    before = {k: v.detach().clone() for k, v in tensor_state(module).items()}
    module(p.input())
    after = tensor_state(module)
    ctx = f"{context(subject, p)}; one eval-mode forward pass"
    for name, old in before.items():
        new = after.get(name)
        if new is None or new.shape != old.shape or new.dtype != old.dtype \
                or not torch.equal(new.detach().nan_to_num(), old.nan_to_num()):
            shown = None if new is None else new.detach().flatten()[:4].tolist()
            raise InvariantViolation(f"{name}={shown}..., but should be unchanged "
                                     f"{old.flatten()[:4].tolist()}... [{ctx}]")


EVAL_NO_ATTRIBUTE_CHANGE = register(Invariant(
    id="eval-no-attribute-change",
    title="Eval mode changes no tensor the module holds",
    family="eval mode",
    statement=r"\text{eval: every tensor attribute of the module is unchanged by a forward pass}",
    why=("Inference must be repeatable and side-effect free. eval-no-state-change compares "
         "the state_dict; running statistics kept as plain tensor attributes (not buffers) "
         "are not in it, and an implementation that refreshes them in eval mode drifts "
         "unseen. This compares every tensor the module and its submodules hold."),
    source="torch.nn.Module.eval documentation; torch.nn.BatchNorm2d (eval uses running statistics)",
    applies=("eval mode", TRACKED, "every rank, dtype, layout and option"),
    tolerance="none: compared bitwise",
    tolerance_formula=r"\tau = 0",
    check=check_no_attribute_change,
))


# --- eps-honoured -----------------------------------------------------------------------

LARGE_EPS = (0.1, 1.0)


def check_eps(subject, case, reference):
    p = case.problem
    scale = case.params.scale
    x = p.values * scale
    module = build(subject, p)
    y = module(p.input(x))
    gamma, beta = affine_of(module, x.dim())
    eps = p.options.eps
    s = statistics(x.to(p.torch_dtype).double(), eps)
    expected = s.xhat if gamma is None else gamma * s.xhat + beta
    tau = output_tolerance(p.dtype, s, gamma, beta)
    ctx = (f"{context(subject, p)}; the values scaled by {scale:g}, so x̂ is shrunk by "
           f"√(σ²/(σ²+ε)) = {float((s.var / (s.var + eps)).sqrt().min()):.3g}")
    try:
        assert_close("BN(x)", y, expected, tau, ctx)
    except InvariantViolation as exc:
        ignored = statistics(x.to(p.torch_dtype).double(), 1e-5)
        plain = ignored.xhat if gamma is None else gamma * ignored.xhat + beta
        if bool(((y.detach().double().cpu() - plain).abs() <= tau).all()):
            raise InvariantViolation(f"{exc} (BN(x) is what eps=1e-05 gives: the constructor's "
                                     f"eps={eps:g} is ignored)") from None
        raise


EPS_HONOURED = register(Invariant(
    id="eps-honoured",
    title="The constructor's eps is the one used",
    family="numerics",
    statement=(r"\varepsilon \gg \sigma_B^2:\ \mathrm{BN}(x) = \gamma\,\hat x\,"
               r"\sqrt{\sigma_B^2/(\sigma_B^2+\varepsilon)} + \beta"),
    why=("ε is part of the function, not only a guard against division by zero: a large ε "
         "shrinks x̂ by √(σ²/(σ²+ε)). With ε = 0.1 or 1 against a variance far below it, "
         "an implementation that hard-codes 1e-5 normalises to unit variance and is caught "
         "here by name."),
    source="torch.nn.BatchNorm2d (eps argument); Ioffe & Szegedy (2015), Algorithm 1",
    applies=("training mode", option_in("eps", LARGE_EPS, "eps ∈ {0.1, 1}"),
             regime_in(("unit",), "input of the unit regime scaled so σ² ≤ ε/4"),
             "every rank, dtype and layout"),
    tolerance="the output tolerance of agrees-with-reference",
    tolerance_formula=r"\tau_i = \tau^{out}_i",
    params=drawn(Scale, scale=st.sampled_from((0.25, 0.0625, 0.5))),
    check=check_eps,
))


# --- spatial-permutation ----------------------------------------------------------------

def check_permuted(subject, case, reference):
    p = case.problem
    rank = len(p.shape)
    # store the spatial dimensions reversed: a transposed image, as torch.transpose gives
    order = (0, 1) + tuple(range(rank - 1, 1, -1))
    stored = p.values.permute(order).contiguous().permute(order)  # same values, permuted strides
    plain = p.input()
    view = stored.to(p.torch_dtype).to(p.device)
    ctx = f"{context(subject, p)}; spatial dimensions stored reversed (strides {view.stride()})"
    y = build(subject, p)(plain)
    try:
        y_view = build(subject, p)(view)
    except Exception as exc:  # noqa: BLE001  (refusing what it takes contiguous is the violation)
        raise InvariantViolation(
            f"BN(x with permuted spatial dims) raised {type(exc).__name__}: {exc}, but should "
            f"equal BN(x) for the same values contiguous [{ctx}]") from None
    s = statistics(p.values, p.options.eps)
    module = build(subject, p)
    gamma, beta = affine_of(module, rank)
    tau = output_tolerance(p.dtype, s, gamma, beta)
    assert_close("BN(x with permuted spatial dims)", y_view, y, 2 * tau, ctx)


SPATIAL_PERMUTATION = register(Invariant(
    id="spatial-permutation",
    title="Spatial dimensions stored in another order",
    family="layouts",
    statement=r"\mathrm{BN}(x \text{ stored with its spatial dimensions permuted}) = \mathrm{BN}(x)",
    why=("A transposed image (x.transpose(2, 3)) is an ordinary input whose spatial "
         "dimensions are not in storage order; torch normalises it like any other. Code that "
         "flattens with x.view(N, C, -1) raises on it ('view size is not compatible with "
         "input tensor's size and stride'); x.reshape or x.flatten(2) work."),
    source="PyTorch documentation: Tensor Views (view vs reshape)",
    applies=("training mode", "ranks 4 and 5 (two or three spatial dimensions)",
             layout_in(("contiguous",), "contiguous input (permuted in the check)"),
             "every dtype and option"),
    tolerance="twice the output tolerance of agrees-with-reference (another reduction order)",
    tolerance_formula=r"\tau_i = 2\,\tau^{out}_i",
    check=check_permuted,
    ranks=(4, 5),
))
