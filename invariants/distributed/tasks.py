"""What each rank runs: build the subject, feed it its slice, report what it computed.

These functions run inside the worker processes (invariants/distributed/worker.py),
one call per rank, all ranks together; they take a RankRequest and answer with
float64 CPU tensors, so the parent compares every rank with the float64 oracle.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.distributed as dist

from bn_invariants.invariants.capabilities import (DECLINES, OPTION_VARIANTS, PROBE_CHANNELS,
                                                   declined_option)
from bn_invariants.invariants.params import Params
from bn_invariants.invariants.reference import as64
from bn_invariants.invariants.step import bias_gradient_of, build, set_running_stats, shifted_leaf
from bn_invariants.invariants.subjects import SubjectError, load_subject
from bn_invariants.strategies import RANKS, BNOptions, Problem, torch_dtype


@dataclass(frozen=True)
class RankRequest:
    """Rank ``rank``'s part of one example: samples [start, stop) of the problem."""

    spec: str
    problem: Problem
    start: int
    stop: int
    params: Params = Params()
    """The case's params, the same on every rank."""
    running: tuple | None = None
    """This rank's starting running statistics (mean, var, batches seen); None: fresh."""

    def input(self) -> torch.Tensor:
        """This rank's slice, in the problem's dtype, device and layout."""
        return self.problem.input(self.problem.values[self.start:self.stop])

    def cotangent(self) -> torch.Tensor:
        """This rank's slice of g, rounded to the dtype, on the device."""
        g = self.problem.cotangent()[self.start:self.stop]
        return g.to(self.problem.torch_dtype).to(self.problem.device)


@lru_cache(maxsize=None)
def _subject(spec: str):
    return load_subject(spec, "--bn-dist-impl")


def _module(request: RankRequest, training: bool = True):
    subject = _subject(request.spec)
    module = build(subject, request.problem, training=training)
    if request.running is not None:
        set_running_stats(module, subject, request.problem, *request.running)
    return module


def _state(module) -> dict:
    """The module's buffers and affine parameters (and their gradients), float64."""
    state = {}
    for name in ("running_mean", "running_var", "weight", "bias"):
        value = getattr(module, name, None)
        state[name] = as64(value) if isinstance(value, torch.Tensor) else None
    for name in ("weight", "bias"):
        grad = getattr(getattr(module, name, None), "grad", None)
        state[f"{name}_grad"] = None if grad is None else as64(grad)
    mean = getattr(module, "running_mean", None)
    state["running_dtype"] = str(mean.dtype).removeprefix("torch.") if mean is not None else None
    nbt = getattr(module, "num_batches_tracked", None)
    state["num_batches_tracked"] = None if nbt is None else int(nbt)
    return state


def _output(y) -> dict:
    if not isinstance(y, torch.Tensor):
        return {"y": None, "y_type": type(y).__name__}
    return {"y": as64(y), "y_type": str(y.dtype).removeprefix("torch.")}


def forward_only(request: RankRequest) -> dict:
    """One training-mode forward pass (the probe of --bn-dist-impl)."""
    module = _module(request)
    return {**_output(module(request.input())), **_state(module)}


def train_step(request: RankRequest) -> dict:
    """One training step, l = sum(g * BN(x)): the output, dl/dx, the parameters'
    gradients and the state after it."""
    module = _module(request)
    x = request.input().requires_grad_(True)
    y = module(x)
    answer = _output(y)
    if isinstance(y, torch.Tensor) and y.requires_grad:
        y.backward(request.cotangent().to(y.dtype))
    answer["dx"] = None if x.grad is None else as64(x.grad)
    return {**answer, **_state(module)}


def eval_step(request: RankRequest) -> dict:
    """One eval-mode forward pass from this rank's own running statistics."""
    module = _module(request, training=False)
    with torch.no_grad():
        y = module(request.input())
    return {**_output(y), **_state(module)}


def bias_descent(request: RankRequest) -> dict:
    """Gradient descent on a bias b before the batch norm, replicated on every rank as
    data-parallel training does it: each rank differentiates its own loss
    l_r = sum(g_r * BN(x_r + b)), the gradients are summed over ranks (all_reduce),
    and every rank takes the same step.  Answers b_t (path_bias) and l_r(b_t) (path_loss)
    per step."""
    p, steps, lr = request.problem, request.params.steps, request.params.lr
    module = _module(request)
    x, g = request.input(), request.cotangent().double()
    bias = torch.zeros(p.num_features, dtype=p.torch_dtype, device=p.device)
    biases, losses = [], []
    for step in range(steps + 1):
        shifted = shifted_leaf(x, bias, p.layout)
        loss = (module(shifted).double() * g).sum()
        biases.append(as64(bias))
        losses.append(float(loss.detach()))
        if step == steps:
            break
        (dx,) = torch.autograd.grad(loss, shifted, allow_unused=True)
        grad = (torch.zeros_like(bias) if dx is None  # a rank whose slice does not reach b
                else bias_gradient_of(dx, f"samples {request.start}:{request.stop}"))
        dist.all_reduce(grad)
        bias = bias - lr * grad
    return {**_state(module), "path_bias": torch.stack(biases),
            "path_loss": torch.tensor(losses, dtype=torch.float64)}


@dataclass(frozen=True)
class ProbeRequest:
    """Rank ``rank``'s part of a probe: ``samples`` samples of every input tried."""

    spec: str
    device: str
    rank: int
    samples: int
    dtypes: tuple


def _refusal(request: ProbeRequest, options, dtype: str, rank: int, training: bool = True):
    """The exception a training (or eval) forward pass of a fresh module raises on a
    ``rank``-D input of ``dtype``, or None when it returns."""
    subject = _subject(request.spec)
    gen = torch.Generator().manual_seed(rank + 10 * request.rank)
    shape = (request.samples, PROBE_CHANNELS) + (2,) * (rank - 2)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(torch_dtype(dtype))
    try:
        module = subject.build(PROBE_CHANNELS, options=options, device=request.device,
                               dtype=torch_dtype(dtype))
        module.train(training)(x.to(request.device))
    except Exception as exc:  # noqa: BLE001  (the caller decides what refuses what)
        return exc
    return None


def probe_inputs(request: ProbeRequest) -> dict:
    """What the subject takes on this rank, every rank trying the same things in the same
    order: ``refused[(dtype, rank)]``, the line of the exception its training forward
    pass raised on that input ('' when it returned), and ``declined[option]`` (each of
    OPTION_VARIANTS and "eval mode"), the line of the NotImplementedError, TypeError or
    ValueError by which it declined the option ('' when it took it), tried in the first
    (dtype, rank) taken."""
    refused = {}
    for dtype in request.dtypes:
        for rank in RANKS:
            exc = _refusal(request, BNOptions(), dtype, rank)
            refused[(dtype, rank)] = "" if exc is None else f"{type(exc).__name__}: {exc}"
    taken = [key for key, why in refused.items() if not why]
    declined = {}
    if taken:
        variants = [(name, options, True) for name, options in OPTION_VARIANTS.items()]
        for name, options, training in variants + [("eval mode", BNOptions(), False)]:
            exc = _refusal(request, options, *taken[0], training=training)
            if isinstance(exc, SubjectError):
                declined[name] = declined_option(exc)
            elif isinstance(exc, DECLINES):
                declined[name] = f"{type(exc).__name__}: {exc}"
            else:
                declined[name] = ""
    return {"refused": refused, "declined": declined}
