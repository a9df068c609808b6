"""Hygiene: forward and backward leave their input alone, and repeat themselves exactly."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.assertions import assert_close, assert_true
from bn_invariants.invariants.bounds import batch_statistics, output_tolerance, running_update
from bn_invariants.invariants.reference import exact_output, statistics
from bn_invariants.invariants.step import affine_of, buffers, dtype_name, momentum_factor
from bn_invariants.invariants.step import build, context
from bn_invariants.strategies import finfo
from bn_invariants.invariants.registry import Invariant, register


@dataclass(frozen=True)
class Footprint:
    """Everything about a tensor a callee could change: its storage's bytes (the
    elements outside the view too), shape, strides, offset, dtype, version counter."""

    storage: torch.Tensor
    shape: tuple
    stride: tuple
    offset: int
    dtype: torch.dtype
    version: int

    @classmethod
    def of(cls, t: torch.Tensor) -> "Footprint":
        raw = torch.empty(0, dtype=torch.uint8, device=t.device).set_(t.untyped_storage())
        return cls(raw.clone(), tuple(t.shape), t.stride(), t.storage_offset(), t.dtype,
                   t._version)

    def assert_same(self, t: torch.Tensor, when: str, ctx: str) -> None:
        """``t`` still has this footprint."""
        __tracebackhide__ = True
        now = Footprint.of(t)
        for name in ("shape", "stride", "offset", "dtype", "version"):
            got, expected = getattr(now, name), getattr(self, name)
            assert_true(f"x.{name} after {when}", got == expected, got, expected, ctx)
        same = torch.equal(now.storage, self.storage)
        changed = int((now.storage != self.storage).sum()) if not same else 0
        assert_true(f"changed bytes of x's storage after {when}", same, changed, 0, ctx)


def check_input_untouched(subject, case, reference):
    p = case.problem
    ctx = context(subject, p)
    plain = p.input()  # without autograd, where in-place shortcuts are tempting
    before = Footprint.of(plain)
    with torch.no_grad():
        build(subject, p)(plain)
    before.assert_same(plain, "forward without autograd", ctx)
    x = p.input()
    before = Footprint.of(x)
    x.requires_grad_(True)
    y = build(subject, p)(x)
    before.assert_same(x, "forward", ctx)
    if y.requires_grad:
        y.backward(p.cotangent().to(y.dtype).to(y.device))
        before.assert_same(x, "backward", ctx)


INPUT_NOT_MODIFIED = register(Invariant(
    id="input-not-modified",
    title="Forward and backward leave the input tensor as it was",
    family="hygiene",
    statement=(r"\text{after } y = \mathrm{BN}(x) \text{ (with and without autograd) and } "
               r"y.\mathrm{backward}(g):\; "
               r"x \text{ (storage bytes, shape, strides, offset, version) unchanged}"),
    why=("Callers reuse their activations (residual connections, several heads, the "
         "backward pass itself). A kernel that centres or scales its input in place, or "
         "writes past a strided or offset view into its neighbours, corrupts them silently; "
         "in-place writes also bump the version counter autograd relies on. The whole "
         "underlying storage is compared byte for byte, so writes outside the view count."),
    source="PyTorch autograd semantics (in-place correctness checks, tensor version counter)",
    applies="training mode; every rank, dtype, layout (strided and offset views included) and option",
    tolerance="none: bytes, shape, strides, offset, dtype and version are compared exactly",
    tolerance_formula=r"\tau = 0",
    check=check_input_untouched,
))


def _oracles(p, module, start: dict) -> dict:
    """(exact, bound, largest) of the output and of the running statistics after one step
    from ``start``: where both runs give the same ±inf and the exact value plus its bound
    passes the dtype's largest, that infinity is the value rounded, not a disagreement."""
    stats = statistics(p.values, p.options.eps)
    gamma, beta = affine_of(module, p.values.dim())
    found = {"output": (exact_output(stats, gamma, beta),
                        output_tolerance(p.dtype, stats, gamma, beta), finfo(p.dtype).max)}
    if "running_mean" in start and "running_var" in start:
        mean, var = batch_statistics(p.values, p.dtype, p.options.eps,
                                     centre=dtype_name(start["running_mean"]))
        for name, stat in (("running_mean", mean), ("running_var", var)):
            stored = dtype_name(start[name])
            exact, bound = running_update(start[name].to("cpu", torch.float64),
                                          [(momentum_factor(p), stat)], stored)
            found[name] = (exact, bound, finfo(stored).max)
    return found


def check_deterministic(subject, case, reference):
    p = case.problem
    first, second = build(subject, p), build(subject, p)
    oracles = _oracles(p, first, buffers(first))
    y1, y2 = first(p.input()), second(p.input())
    ctx = context(subject, p)
    assert_close("BN(x), second fresh module", y2, y1.detach(), 0.0, ctx,
                 oracle=oracles["output"])
    state1, state2 = buffers(first), buffers(second)
    for name, value in state1.items():
        assert_close(f"{name}, second fresh module", state2[name], value, 0.0, ctx,
                     oracle=oracles.get(name))
    y3 = first(p.input())
    assert_close("BN(x), same module called again", y3, y1.detach(), 0.0,
                 f"{ctx}; training output must not depend on the module's running state",
                 oracle=oracles["output"])


DETERMINISTIC_FORWARD = register(Invariant(
    id="deterministic-forward",
    title="The same input gives bitwise the same output",
    family="hygiene",
    statement=(r"\mathrm{BN}_{m_1}(x) = \mathrm{BN}_{m_2}(x) = \mathrm{BN}_{m_1}(x)\ "
               r"\text{(again) bitwise, for fresh identical modules } m_1, m_2"),
    why=("Reproducible training and debugging need a forward pass that is a function of its "
         "input: two fresh, identical modules must agree bit for bit, in their outputs and "
         "their updated running statistics. In training mode the output depends on the "
         "batch alone, so calling the same module again (its running statistics now "
         "updated) must also give the same output. torch's CPU kernels use a fixed "
         "reduction order for a given shape and thread count."),
    source="PyTorch reproducibility notes (torch.use_deterministic_algorithms); Ioffe & Szegedy (2015), Algorithm 1",
    applies="training mode; every rank, dtype, layout and option",
    tolerance=("none: bitwise (torch.equal semantics; NaN never expected); the same ±inf "
               "in both runs only where the exact output or running statistic plus its "
               "bound passes the dtype's range (float16 heavy tails: a running variance past "
               "65504), that value rounded"),
    tolerance_formula=r"\tau = 0",
    check=check_deterministic,
))
