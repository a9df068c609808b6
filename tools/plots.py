"""The explainer's figures, computed by the suite's own code.

    python3 -m tools.plots     # writes docs/img/bias_drift.png and docs/img/scale_drift.png

bias_drift.png: gradient descent on a bias b before the normalisation
(``invariants.catalogue.drift.bias_descent``, the code of the no-bias-drift
invariant), for the float64 reference and torch's BatchNorm1d against the naive
rule of Ioffe & Szegedy (2015, section 2) (``invariants.naive.NaiveCenteringBatchNorm``).

scale_drift.png: gradient descent on the weights W of a linear layer before a
normalisation that also scales, proper against naive
(``invariants.naive.NaiveScalingBatchNorm``, which treats E[x] and Var[x] as constants).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bn_invariants.invariants.catalogue.drift import bias_descent  # noqa: E402
from bn_invariants.invariants.catalogue.scale_invariant_weights import (mix, mixing_weight,  # noqa: E402
                                                          weight_gradient)
from bn_invariants.invariants.harness import build  # noqa: E402
from bn_invariants.invariants.naive import NaiveCenteringBatchNorm, NaiveScalingBatchNorm  # noqa: E402
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject  # noqa: E402
from bn_invariants.strategies import Problem  # noqa: E402

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
PROPER = (REFERENCE_SUBJECT, Subject("torch.nn.BatchNorm1d", nn.BatchNorm1d))
NAIVE_CENTERING = Subject("naive rule (E[x] held constant)", NaiveCenteringBatchNorm)
NAIVE_SCALING = Subject("naive rule (E[x], Var[x] held constant)", NaiveScalingBatchNorm)
BIAS_PROBLEM = Problem(shape=(32, 3), dtype="float64", seed=4)
SCALE_PROBLEM = Problem(shape=(32, 3), dtype="float64", seed=2)


@dataclass(frozen=True)
class WeightTrajectory:
    """‖W_t‖ per output channel (steps+1, C) and the loss l_t (steps+1,), float64."""

    norm: torch.Tensor
    loss: torch.Tensor


def weight_descent(subject, problem, *, steps: int, lr: float) -> WeightTrajectory:
    """Run W <- W - lr * dl/dW for ``steps`` steps on l(W) = sum(g * BN(W u)), with the
    invariants' own W_0 (``mixing_weight``), mixing (``mix``) and gradient
    (``weight_gradient``) from invariants/catalogue/scale_invariant_weights.py.
    BN(a W u) = BN(W u) for a > 0, so a proper gradient is orthogonal to W."""
    weight = mixing_weight(problem)
    module = build(subject, problem)
    g = problem.cotangent()
    norms, losses = [], []
    for step in range(steps + 1):
        norms.append(weight.norm(dim=1))
        with torch.no_grad():
            y = module(mix(weight.to(problem.torch_dtype).to(problem.device), problem.input()))
        losses.append((y.to("cpu", torch.float64) * g).sum())
        if step == steps:
            break
        grad, _ = weight_gradient(subject, problem, weight, module=module)
        weight = weight - lr * grad
    return WeightTrajectory(torch.stack(norms), torch.stack(losses))


def _style(ax, title, ylabel):
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("gradient step t")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def bias_figure(path: Path, *, steps: int = 40, lr: float = 0.1) -> None:
    """b_t and l_t under the naive and the proper rule (bias_descent, as no-bias-drift)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    t = torch.arange(steps + 1)
    naive = bias_descent(NAIVE_CENTERING, BIAS_PROBLEM, steps=steps, lr=lr)
    colors = plt.cm.tab10.colors
    for c in range(BIAS_PROBLEM.num_features):
        left.plot(t, naive.bias[:, c], color=colors[c], lw=2,
                  label=f"naive rule, channel {c}")
    for subject, style in zip(PROPER, ("-", ":")):
        proper = bias_descent(subject, BIAS_PROBLEM, steps=steps, lr=lr)
        left.plot(t, proper.bias, color="black", ls=style, lw=1.5,
                  label=[f"proper: {subject.name}"] + [None] * (proper.bias.shape[1] - 1))
        right.plot(t, proper.loss, color="black", ls=style, lw=1.5,
                   label=f"proper: {subject.name}")
    right.plot(t, naive.loss, color=colors[3], ls="--", lw=2, label=NAIVE_CENTERING.name)
    _style(left, "bias $b_t$: grows linearly under the naive rule", "$b_t$ (per channel)")
    _style(right, r"loss $\ell(b_t)$: the same at every step, for every rule", r"$\ell$")
    spread = max(1.0, float(naive.loss.abs().max()))
    right.set_ylim(float(naive.loss[0]) - spread, float(naive.loss[0]) + spread)
    left.legend(fontsize=8, loc="lower left")
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Gradient descent on b in x = u + b, then x̂ = (x − E[x]) / s  "
                 f"(N = {BIAS_PROBLEM.shape[0]}, learning rate {lr})", fontsize=11)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def scale_figure(path: Path, *, steps: int = 300, lr: float = 0.1) -> None:
    """‖W_t‖ and l_t for a linear layer before a scaling normalisation, naive vs proper."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    t = torch.arange(steps + 1)
    runs = [(NAIVE_SCALING, plt.cm.tab10.colors[3], "--"),
            (PROPER[0], "black", "-"), (PROPER[1], "black", ":")]
    for subject, color, style in runs:
        path_ = weight_descent(subject, SCALE_PROBLEM, steps=steps, lr=lr)
        label = subject.name if subject is NAIVE_SCALING else f"proper: {subject.name}"
        left.plot(t, path_.norm[:, 0], color=color, ls=style, lw=2 if color != "black" else 1.5,
                  label=label)
        right.plot(t, path_.loss, color=color, ls=style, lw=2 if color != "black" else 1.5,
                   label=label)
    _style(left, r"$\|W_t\|$: grows without bound under the naive rule", r"$\|W_t\|$")
    _style(right, r"loss $\ell(W_t)$: the naive rule stalls above the proper one", r"$\ell$")
    left.legend(fontsize=8, loc="upper left")
    right.legend(fontsize=8, loc="center right")
    fig.suptitle(f"Gradient descent on W in x = W u, then x̂ = (x − E[x]) / √Var[x]  "
                 f"(N = {SCALE_PROBLEM.shape[0]}, learning rate {lr})", fontsize=11)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    bias_figure(IMG / "bias_drift.png")
    scale_figure(IMG / "scale_drift.png")
    print(f"wrote {IMG / 'bias_drift.png'} and {IMG / 'scale_drift.png'}")


if __name__ == "__main__":
    main()
