"""Building subjects for a Problem and reading what they computed."""
from __future__ import annotations

import torch
from torch import nn

from bn_invariants.invariants.reference import Statistics, statistics
from bn_invariants.invariants.subjects import Subject
from bn_invariants.invariants.tolerances import as_channel


def build(subject: Subject, problem, *, training: bool = True, options=None) -> nn.Module:
    """A fresh module of ``subject`` for ``problem``, with the problem's affine
    parameters (drawn away from (1, 0)) copied in when it has them."""
    opts = options or problem.options
    module = subject.build(problem.num_features, options=opts, device=problem.device,
                           dtype=problem.torch_dtype)
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if opts.affine and weight is not None and bias is not None:
        w, b = problem.affine()
        with torch.no_grad():
            weight.copy_(w)
            bias.copy_(b)
    return module.train(training)


def affine_of(module: nn.Module, rank: int):
    """(gamma, beta) of ``module`` as float64 channel views, or (None, None)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if weight is None or bias is None:
        return None, None
    return as_channel(weight, rank), as_channel(bias, rank)


def exact_statistics(x: torch.Tensor, eps: float) -> Statistics:
    """The float64 statistics of exactly the values in ``x``."""
    return statistics(x, eps)


def context(subject: Subject, problem) -> str:
    """The one-line context every violation message ends with."""
    return f"subject {subject}; {problem.summary()}"
