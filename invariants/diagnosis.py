"""An up-front look at a subject: does it normalise over the batch at all, and which
declared convention (if any) its running statistics and training mode follow.

Three fixed forward passes in float64 (or the first dtype the subject accepts), so a
verdict comes before, not instead of, the search:

* a batch norm in training mode gives the same output for x and for x·s_c + t_c with a
  different s_c > 0, t_c per channel (shift and scale invariance per channel); the
  identity, a layer norm or an eval-only module do not;
* training mode that gives the eval-mode output marks an eval-only (frozen) batch norm;
* one training step from fresh buffers with momentum 0.1 shows which running-variance
  and momentum conventions the update follows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bn_invariants.invariants.conventions import Conventions
from bn_invariants.strategies import BNOptions, torch_dtype

CHANNELS = 3
MOMENTUM = 0.1


@dataclass(frozen=True)
class Diagnosis:
    """What the up-front look found."""

    normalises: bool
    """Training output unchanged by a per-channel positive scale and shift of the batch."""
    frozen_like: bool
    """Training mode gives the eval-mode output, and there are running statistics."""
    conventions: tuple = ()
    """The Conventions (running_var, momentum) one training step matches, if any."""
    detail: str = ""

    def verdict(self, declared: Conventions) -> str:
        """'' for a batch norm (under ``declared``), else the one-sentence verdict."""
        if self.normalises or (declared.frozen and self.frozen_like):
            return ""
        if self.frozen_like:
            return ("training mode gives the eval-mode output: this looks like an eval-only "
                    "(frozen) batch norm; if it is meant to be one, check it with --bn-frozen")
        return (f"this does not normalise over the batch: {self.detail}; a batch norm's "
                f"training output is unchanged when each channel of the batch is scaled and "
                f"shifted, so no invariant of batch normalisation can hold")

    def suggestions(self, declared: Conventions) -> list:
        """Flags that would explain this subject's running statistics or training mode."""
        out = []
        if self.frozen_like and not self.normalises and not declared.frozen:
            out.append(("--bn-frozen", "training mode gives the eval-mode output (an "
                                       "eval-only batch norm)"))
        matched = [c for c in self.conventions
                   if (c.running_var, c.momentum) != (declared.running_var, declared.momentum)]
        if matched and not any((c.running_var, c.momentum) ==
                               (declared.running_var, declared.momentum) for c in self.conventions):
            c = matched[0]
            if c.running_var != declared.running_var:
                out.append((f"--bn-running-var={c.running_var}",
                            f"running_var after one step is exactly the {c.running_var} one"))
            if c.momentum != declared.momentum:
                out.append((f"--bn-momentum={c.momentum}",
                            "the running update follows the "
                            + ("new = m·old + (1−m)·batch" if c.momentum == "keep"
                               else "new = (1−m)·old + m·batch") + " convention"))
        return out


def diagnose(subject, space) -> Diagnosis | None:
    """The Diagnosis of ``subject`` on ``space`` (its probed coverage on one device);
    None when the subject raises on the fixed inputs (the invariants will say why)."""
    if not space:
        return None
    name = "float64" if "float64" in space.dtype_ranks else next(iter(space.dtype_ranks))
    ranks = space.dtype_ranks[name]
    rank = 4 if 4 in ranks else ranks[-1]
    dtype, device = torch_dtype(name), space.device
    x = torch.randn((6, CHANNELS) + (3,) * (rank - 2), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(5))
    view = (1, -1) + (1,) * (rank - 2)
    moved = x * torch.tensor([3.0, 0.5, 2.0]).reshape(view) + torch.tensor([4.0, -2.0, 1.0]).reshape(view)
    options = BNOptions(momentum=MOMENTUM)

    def fresh():
        return subject.build(CHANNELS, options=options, device=device, dtype=dtype)

    def run(module, values, training):
        with torch.no_grad():
            return module.train(training)(values.to(dtype).to(device)).to("cpu", torch.float64)

    try:
        y, y_moved = run(fresh(), x, True), run(fresh(), moved, True)
        y_eval = run(fresh(), x, False)
        stepped = fresh()
        run(stepped, x, True)
    except Exception:
        return None
    if y.shape != x.shape or y_moved.shape != x.shape or y_eval.shape != x.shape:
        return None
    tol = 1e-3 if name == "float64" else 5e-2
    change = float((y - y_moved).abs().max())
    return Diagnosis(
        normalises=change <= tol * (1 + float(y.abs().max())),
        frozen_like=_has_running_statistics(stepped) and bool(
            torch.allclose(y, y_eval, rtol=tol, atol=tol)),
        conventions=tuple(_conventions(stepped, x)),
        detail=(f"scaling and shifting each channel of a {tuple(x.shape)} {name} batch "
                f"changed its training-mode output by up to {change:.3g}"))


def _has_running_statistics(module) -> bool:
    return all(isinstance(getattr(module, name, None), torch.Tensor)
               for name in ("running_mean", "running_var"))


def _conventions(module, x):
    """The Conventions one step from (0, 1) with momentum 0.1 matches."""
    rv = getattr(module, "running_var", None)
    if not isinstance(rv, torch.Tensor) or rv.shape != (CHANNELS,):
        return
    dims = (0,) + tuple(range(2, x.dim()))
    n = x.numel() // CHANNELS
    biased = x.var(dims, correction=0)
    got = rv.detach().to("cpu", torch.float64)
    for running_var in ("unbiased", "biased"):
        for momentum in ("torch", "keep"):
            c = Conventions(running_var, momentum)
            w = c.batch_weight(MOMENTUM)
            expected = (1 - w) + w * biased * c.variance_factor(n)
            if torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
                yield c
