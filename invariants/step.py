"""The step harness: build a subject for a Problem, run one training step (forward and
backward), and read what it produced (output, gradients, parameters, running buffers) as
float64 on the CPU.  The autograd checks every step makes are worded here, once."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from bn_invariants.invariants.assertions import InvariantViolation, Unsupported
from bn_invariants.invariants.bounds import eval_map_tolerance
from bn_invariants.invariants.conventions import declared
from bn_invariants.invariants.reference import as64, as_channel, channel_view, statistics
from bn_invariants.invariants.subjects import Subject
from bn_invariants.strategies import apply_layout, finfo

BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")


def build(subject: Subject, problem, *, training: bool = True, options=None) -> nn.Module:
    """A fresh module of ``subject`` for ``problem``, with the problem's affine
    parameters (drawn away from (1, 0)) copied in when it has them."""
    opts = options or problem.options
    module = subject.build(problem.num_features, options=opts, device=problem.device,
                           dtype=problem.torch_dtype)
    materialise(module, problem)
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if opts.affine and weight is not None and bias is not None:
        w, b = problem.affine()
        with torch.no_grad():
            weight.copy_(w)
            bias.copy_(b)
    return module.train(training)


def is_lazy(module: nn.Module) -> bool:
    """Whether ``module`` still has uninitialised (lazy) parameters or buffers."""
    return any(isinstance(t, UninitializedTensorMixin)
               for t in (*module.parameters(), *module.buffers()))


@torch.no_grad()
def materialise(module: nn.Module, problem) -> None:
    """Give a lazy module (torch.nn.LazyBatchNorm2d, say) its shapes with one eval-mode
    forward of zeros shaped like the problem's input (at least two samples), which
    changes no running statistic; a module that is not lazy is left alone."""
    if not is_lazy(module):
        return
    shape = (max(problem.shape[0], 2), *(max(s, 1) for s in problem.shape[1:]))
    training = module.training
    module.eval()(torch.zeros(shape, dtype=problem.torch_dtype, device=problem.device))
    module.train(training)


def affine_of(module: nn.Module, rank: int):
    """(gamma, beta) of ``module`` as float64 channel views, or (None, None)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if weight is None or bias is None:
        return None, None
    return as_channel(weight, rank), as_channel(bias, rank)


def trainable_affine(module: nn.Module, subject: Subject):
    """(weight, bias) when both are trainable tensors of their own (leaves that require
    grad); otherwise there is no gradient of γ and β to check: Unsupported, saying why
    (buffers, as an eval-only batch norm keeps them; a property computed from other
    parameters; none at all)."""
    out = []
    for name in ("weight", "bias"):
        t = getattr(module, name, None)
        if not isinstance(t, torch.Tensor):
            raise Unsupported(f"{subject} has no {name} tensor")
        if not t.requires_grad:
            raise Unsupported(f"{subject}'s {name} is not trainable (a buffer, or frozen)")
        if not t.is_leaf:
            raise Unsupported(f"{subject}'s {name} is computed from other parameters (a "
                              f"property), so it has no gradient of its own")
        out.append(t)
    return tuple(out)


def affine_views(problem):
    """(γ, β) as ``build`` copies them in, float64 channel views, or (None, None)
    when affine=False."""
    if not problem.options.affine:
        return None, None
    rank = len(problem.shape)
    return tuple(as_channel(t, rank) for t in problem.affine())


def shifted_leaf(x: torch.Tensor, bias: torch.Tensor, layout: str) -> torch.Tensor:
    """x + b (b per channel, in x's dtype) stored in ``layout``, as a leaf that requires
    grad: the subject's dl/dx lands on it, and ``bias_gradient_of`` sums it."""
    shifted = apply_layout(x + channel_view(bias.detach(), x.dim()), layout)
    return shifted.detach().requires_grad_(True)


def bias_gradient_of(dx: torch.Tensor | None, ctx: str) -> torch.Tensor:
    """dl/db = sum_i dl/dx_i per channel, in dx's dtype and device, from the subject's
    dl/dx: summed exactly (float64) and rounded once, as a float32-accumulated reduction
    gives it.  Autograd's own sum for x + b is torch.sum, which on the CPU rounds each
    thread's partial sum to a half dtype: measured in float16, 10^5 terms whose exact sum
    is -61.7 but whose partial sums pass 65504 sum to NaN with 2 threads.  That is
    torch.sum's, not the batch norm's, so the suite takes this sum itself."""
    if dx is None:
        raise InvariantViolation(f"dl/dx=None, but should be a tensor: BN(x + b) must "
                                 f"depend on x + b [{ctx}]")
    dims = (0,) + tuple(range(2, dx.dim()))
    return dx.detach().double().sum(dims).to(dx.dtype)


def momentum_factor(problem) -> float:
    """The weight of the first batch in the running statistics: the momentum, or 1 for
    momentum=None (a cumulative average after one batch)."""
    m = problem.options.momentum
    return 1.0 if m is None else declared().batch_weight(m)


def context(subject: Subject, problem) -> str:
    """The one-line context every violation message ends with."""
    return f"subject {subject}; {problem.summary()}"


def rounded_cotangent(problem) -> torch.Tensor:
    """g exactly as the subject receives it (rounded to the dtype), in float64."""
    return problem.cotangent().to(problem.torch_dtype).double()


# ---- the autograd checks -------------------------------------------------------------

def backward(y, cotangent: torch.Tensor, leaf: torch.Tensor, ctx: str, output: str = "BN(x)",
             wrt: str = "x") -> torch.Tensor:
    """Backward ``cotangent`` (rounded to y's dtype and device) through ``y`` and return
    ``leaf.grad``; a y outside the graph or a gradient that never reaches the leaf is a
    violation, worded here for every harness."""
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        raise InvariantViolation(f"{output}.requires_grad=False, but should be True: the "
                                 f"output depends on {wrt} [{ctx}]")
    y.backward(cotangent.to(y.dtype).to(y.device))
    if leaf.grad is None:
        raise InvariantViolation(f"dl/d{wrt}=None after backward, but should be a tensor: "
                                 f"the backward pass must reach {wrt} [{ctx}]")
    return leaf.grad


def contiguous_leaf(problem) -> torch.Tensor:
    """The problem's values in its dtype and device, a fresh contiguous leaf that asks for
    its gradient: the layout copy goes behind it, so every layout reports dl/dx in the same
    logical order.  Always a copy: ``.to`` returns float64 CPU values themselves, and two
    steps on one leaf would add their gradients into one ``grad``."""
    return problem.values.to(problem.torch_dtype).to(problem.device).clone().requires_grad_(True)


def input_gradient(subject, problem, module=None, values=None):
    """(dl/dx, module) for l = sum(g * BN(x)), x the problem's input (or ``values``)
    in its dtype, device and layout, g the problem's cotangent rounded to the dtype."""
    module = module or build(subject, problem)
    x = problem.input(values).requires_grad_(True)
    grad = backward(module(x), problem.cotangent(), x, context(subject, problem))
    return grad, module


# ---- one training step, recorded -----------------------------------------------------

@dataclass(frozen=True)
class StepRecord:
    """What one training step produced, as float64 CPU tensors (None where the module
    has no such tensor), and the dtype each came back in."""

    output: torch.Tensor
    input_grad: torch.Tensor
    weight_grad: torch.Tensor | None
    bias_grad: torch.Tensor | None
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    batches: int | None
    dtypes: dict
    gamma: torch.Tensor | None = None
    """The module's γ and β after the step, float64 channel views (None without them)."""
    beta: torch.Tensor | None = None
    own_gradients: bool = True
    """Whether γ and β are trainable tensors of their own (leaves that require grad); not
    when they are buffers or properties computed from other parameters, which have no
    gradient of their own to read."""

    @property
    def finite(self) -> bool:
        """Whether every recorded tensor is finite (the exact step always is)."""
        tensors = (self.output, self.input_grad, self.weight_grad, self.bias_grad,
                   self.running_mean, self.running_var)
        return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def record_step(module, subject, problem, describe: str = "", cotangent=None) -> StepRecord:
    """Forward ``problem``'s values (its dtype, device and layout) through ``module`` in
    training mode, backward ``cotangent`` (default: the problem's) in the output's
    dtype, and read y, dl/dx, dγ, dβ and the running buffers."""
    ctx = f"subject {subject}{describe}; {problem.summary()}"
    leaf = contiguous_leaf(problem)
    y = module.train()(apply_layout(leaf, problem.layout))
    g = problem.cotangent() if cotangent is None else cotangent
    input_grad = backward(y, g, leaf, ctx)
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    own = [t for t in (weight, bias) if isinstance(t, torch.Tensor)]
    own_gradients = all(t.is_leaf and t.requires_grad for t in own)
    weight_grad = weight.grad if own_gradients and weight is not None else None
    bias_grad = bias.grad if own_gradients and bias is not None else None
    buffers = {name: getattr(module, name, None) for name in BUFFER_NAMES}
    tensors = {"output": y, "weight": weight, "bias": bias, **buffers}
    batches = buffers["num_batches_tracked"]
    gamma, beta = affine_of(module, len(problem.shape))
    return StepRecord(
        as64(y), as64(input_grad), as64(weight_grad), as64(bias_grad),
        as64(buffers["running_mean"]), as64(buffers["running_var"]),
        None if batches is None else int(batches),
        {k: t.dtype for k, t in tensors.items() if isinstance(t, torch.Tensor)}, gamma, beta,
        own_gradients)


def training_step(subject, problem, cotangent: torch.Tensor) -> StepRecord:
    """One training step of a fresh module of ``subject`` on ``problem`` (its layout),
    backward ``cotangent``."""
    return record_step(build(subject, problem), subject, problem, cotangent=cotangent)


def computes_in_float64(subject) -> bool:
    """Whether ``subject`` is a float64 oracle (a model batch norm computing in float64
    and rounding once to the input dtype)."""
    return getattr(subject.factory, "compute_dtype", None) == "float64"


# ---- running buffers -----------------------------------------------------------------

def buffers(module) -> dict:
    """Copies of running_mean, running_var and num_batches_tracked (those present)."""
    return {n: getattr(module, n).detach().clone() for n in BUFFER_NAMES
            if isinstance(getattr(module, n, None), torch.Tensor)}


def dtype_name(t: torch.Tensor) -> str:
    """'float16' for a torch.float16 tensor."""
    return str(t.dtype).removeprefix("torch.")


def running_buffers(module, subject, problem):
    """(running_mean, running_var, num_batches_tracked or None) of ``module``; a
    module without running statistics although track_running_stats=True asked
    for them breaks every invariant that reads them."""
    mean = getattr(module, "running_mean", None)
    var = getattr(module, "running_var", None)
    for name, buf in (("running_mean", mean), ("running_var", var)):
        if not isinstance(buf, torch.Tensor):
            raise InvariantViolation(
                f"{name}={buf!r}, but should be a ({problem.num_features},) tensor: "
                f"track_running_stats=True asks for running statistics "
                f"[{context(subject, problem)}]")
        if tuple(buf.shape) != (problem.num_features,):
            raise InvariantViolation(
                f"{name}.shape={tuple(buf.shape)}, but should be ({problem.num_features},) "
                f"[{context(subject, problem)}]")
    return mean, var, getattr(module, "num_batches_tracked", None)


def drawn_running_stats(problem, stream: int):
    """(mean, var) per channel (float64, (C,)), away from the defaults (0, 1) and from
    the batch's own statistics, on the batch's scale: mean = mu + s z with z standard
    normal, var = s^2 2^(2v - 1) with v uniform, s = sqrt(Var[x] + eps); both kept
    below a sixteenth of the dtype's largest value, so they are stored finite."""
    stats = statistics(problem.values, problem.options.eps)
    gen = problem.generator(stream)
    c = problem.num_features
    z = torch.randn(c, generator=gen, dtype=torch.float64)
    spread = 2.0 ** (2 * torch.rand(c, generator=gen, dtype=torch.float64) - 1)
    s = stats.std.flatten()
    top = finfo(problem.dtype).max / 16
    return (stats.mean.flatten() + s * z).clamp(-top, top), (s * s * spread).clamp(max=top)


@torch.no_grad()
def set_running_stats(module, subject, problem, mean, var, batches=None):
    """Copy ``mean`` and ``var`` (float64) into the module's buffers (rounding them to
    the buffers' dtype) and ``batches`` into num_batches_tracked when given; return
    the stored (mean, var) as float64."""
    rm, rv, nbt = running_buffers(module, subject, problem)
    rm.copy_(mean)
    rv.copy_(var)
    if batches is not None and nbt is not None:
        nbt.fill_(batches)
    return as64(rm), as64(rv)


@dataclass(frozen=True)
class EvalMap:
    """The per-channel affine map an eval-mode batch norm applies, y = a x + c,
    with the pieces its error bound needs; float64 channel views (1, C, 1, ...)."""

    a: torch.Tensor
    c: torch.Tensor
    mean: torch.Tensor
    beta: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The exact output a x + c, in float64."""
        return self.a * x + self.c

    def tolerance(self, dtype: str, x: torch.Tensor) -> torch.Tensor:
        """Bound on |y - (a x + c)| elementwise: ``bounds.eval_map_tolerance``."""
        return eval_map_tolerance(dtype, self.a, self.mean, self.beta, x)


def eval_map(module, rank: int, eps: float) -> EvalMap:
    """The EvalMap of ``module`` from its stored running statistics and affine
    parameters: a = gamma / sqrt(rv + eps), c = beta - a rm (gamma = 1, beta = 0
    without affine parameters)."""
    rm = channel_view(as64(module.running_mean), rank)
    rv = channel_view(as64(module.running_var), rank)
    gamma, beta = affine_of(module, rank)
    gamma = torch.ones_like(rm) if gamma is None else gamma
    beta = torch.zeros_like(rm) if beta is None else beta
    a = gamma / (rv + eps).sqrt()
    return EvalMap(a, beta - a * rm, rm, beta)
