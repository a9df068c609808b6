"""The catalogue of defect causes: what is likely wrong when invariants fail, and the fix.

A run's failures are grouped into defects, each named by one cause (a stable id, as a
linter's code), with a level of seriousness:

* ``semantic``: wrong mathematics at any precision (a detached mean, the unbiased
  variance, wrong axes, a wrong backward, wrong running statistics);
* ``precision``: accuracy in a dtype the layer accepts, at ordinary magnitudes
  (half-precision statistics, the E[x²] − E[x]² cancellation at offsets);
* ``range``: only near the dtype's limits (intermediates that overflow or underflow at
  extreme magnitudes or eps).

Each cause's exemplars are the zoo's mutants whose ``CAUSE`` names it: the attribution
(``invariants.attribution``) names a cause by replaying a counterexample on them.
"""
from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("semantic", "precision", "range")
"""Most serious first.  ``--bn-level=L`` fails a run on the levels up to L."""


@dataclass(frozen=True)
class Cause:
    """One likely cause of failing invariants."""

    id: str
    level: str
    """Its level, or "" where the evidence decides (``unknown``)."""
    summary: str
    """What is wrong, in one sentence."""
    fix: str
    """What to do, in one sentence."""


_CAUSES = (
    Cause("not-a-batch-norm", "semantic",
          "The layer does not normalise each channel over the batch: its training output "
          "changes when a channel of the batch is scaled and shifted.",
          "Take each channel's mean and variance over the batch and spatial axes "
          "(dims 0, 2, 3, ...); if it is another normalisation, this suite's batch-norm "
          "invariants do not apply to it."),
    Cause("contract", "semantic",
          "The layer breaks torch.nn.BatchNorm2d's contract: its constructor refuses an "
          "option it should take, its output has the wrong shape or dtype, or it raises "
          "on input it accepts elsewhere.",
          "Take BatchNorm2d's constructor and return a tensor of the input's shape and "
          "dtype; or decline an option outright (NotImplementedError) so it is never drawn."),
    Cause("detached-mean", "semantic",
          "The batch mean is detached from the autograd graph, so the gradient ignores that "
          "E[x] depends on x: the paper's naive rule (a bias before the layer gets a "
          "nonzero gradient and drifts).",
          "Keep the mean used to normalise in the graph (no .detach() or torch.no_grad() "
          "around it); only the running statistics are updated without gradient."),
    Cause("detached-variance", "semantic",
          "The batch variance is detached from the autograd graph: the input gradient "
          "misses the term through σ, so it is not orthogonal to x̂.",
          "Keep the variance used to normalise in the graph (no .detach() around it)."),
    Cause("unbiased-normalisation", "semantic",
          "The layer normalises with the unbiased variance (÷ (n − 1), torch.var's "
          "default), so every output is scaled by √((n − 1)/n).",
          "Normalise with the biased variance, x.var(dims, correction=0); only "
          "running_var takes the unbiased one."),
    Cause("eps-placement", "semantic",
          "ε is not where batch norm puts it: outside the square root, missing, or not the "
          "constructor's eps.",
          "Normalise by sqrt(var + eps), with the eps the constructor was given."),
    Cause("affine", "semantic",
          "γ and β are not applied as y = γ·x̂ + β per channel (β before the "
          "normalisation, a wrong broadcast, or affine=False not honoured).",
          "Apply the affine map after normalising: y = weight[c]·x̂ + bias[c]."),
    Cause("backward", "semantic",
          "A hand-written backward (an autograd.Function) returns a wrong gradient, or one "
          "that cannot itself be differentiated.",
          "Derive dl/dx, dl/dγ and dl/dβ again (dl/dγ = Σ g·x̂, dl/dβ = Σ g) and check them "
          "with torch.autograd.gradcheck in float64."),
    Cause("running-statistics", "semantic",
          "running_mean, running_var or num_batches_tracked are not updated as torch's "
          "batch norm updates them.",
          "running = (1 − m)·running + m·batch with the unbiased batch variance, and "
          "momentum=None a cumulative average; if your convention differs on purpose, "
          "declare it (--bn-running-var, --bn-momentum)."),
    Cause("eval-mode", "semantic",
          "Eval mode does not normalise with the running statistics alone: it uses the "
          "batch's statistics, changes state, or drops ε.",
          "In eval mode use (x − running_mean)/sqrt(running_var + eps) and change no "
          "buffer."),
    Cause("reduction-axes", "semantic",
          "The statistics are taken over the wrong axes: per sample, or mixing channels.",
          "Reduce over dims (0, 2, 3, ...) and keep the channel axis 1 apart."),
    Cause("layout", "semantic",
          "The result depends on the input's memory layout (channels-last or strided "
          "input read as if it were contiguous).",
          "Index the input through its logical shape (or call .contiguous()), never "
          "through assumed strides."),
    Cause("degenerate-batch", "semantic",
          "A batch with one value per channel, or none, writes NaN into the output or the "
          "running statistics instead of raising a clear error or leaving them untouched.",
          "Raise ValueError for one value per channel in training (as torch does), and "
          "leave the running statistics untouched for an empty batch."),
    Cause("side-effects", "semantic",
          "The layer modifies its input in place, or writes state it should not.",
          "Never write into the caller's tensor; compute the output out of place."),
    Cause("nondeterminism", "semantic",
          "The same input gives different outputs on two calls.",
          "Reduce in a fixed order (no atomics or random chunking in the statistics)."),
    Cause("long-reduction", "semantic",
          "Only long reductions are wrong: a split, chunked or narrow-index path drops or "
          "mis-weights part of each channel's values.",
          "Weight each chunk by its count when merging (Chan et al.'s update) and test the "
          "path at lengths past every switch and index width."),
    Cause("naive-variance", "precision",
          "The variance is computed as E[x²] − E[x]², which cancels catastrophically when "
          "|mean| ≫ std: wrong, zero or negative.",
          "Use the two-pass variance mean((x − mean)²), or Welford's / Chan's update."),
    Cause("low-precision-statistics", "precision",
          "Statistics (or other intermediates) of float16/bfloat16 input are computed in the "
          "input's dtype: (x − μ)² overflows float16 past |x − μ| = 256, sums lose bits, and "
          "a folded scale and shift can overflow.",
          "Compute the statistics (and x̂) in float32 for half-precision input, e.g. "
          "x.float(), and cast the output back to the input's dtype."),
    Cause("mixed-precision", "precision",
          "Half-precision input with float32 parameters comes back in the wrong dtype, or "
          "its parameters are rounded to half precision.",
          "Keep γ and β in their own dtype, compute in float32 and return the input's "
          "dtype, as torch does."),
    Cause("extreme-range", "range",
          "Intermediates overflow or underflow near the dtype's limits (huge or tiny "
          "values, a tiny eps), though the mathematics is right.",
          "Scale each channel by a power of two before squaring (exact), or compute the "
          "statistics in a wider dtype; or leave the range level out (--bn-level=precision)."),
    Cause("unknown", "",
          "No cause in the catalogue explains this failure: read the violation and its "
          "reproduction.",
          "Replay the reproduction and compare with torch.nn.functional.batch_norm in "
          "float64."),
)

CAUSES: dict[str, Cause] = {c.id: c for c in _CAUSES}
"""Cause id -> Cause, in the catalogue's order."""


def level_rank(level: str) -> int:
    """0 for semantic (most serious), 1 precision, 2 range."""
    return LEVELS.index(level)


def check_level(level: str, what: str = "level") -> str:
    """``level`` itself, or ValueError naming the choices."""
    if level not in LEVELS:
        raise ValueError(f"{what}={level!r}, but should be one of {', '.join(LEVELS)}")
    return level


def fails_run(level: str, threshold: str) -> bool:
    """Whether a defect of ``level`` fails a run checked at ``threshold``: the levels
    up to the threshold fail it; those beyond are reported, not failing."""
    return level_rank(level) <= level_rank(threshold)
