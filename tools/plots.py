"""The docs' figures, computed by the suite's own code and data.

    python3 -m tools.plots                      # writes all three figures in docs/img/
                                                # (only those whose picture changed)
    python3 -m tools.plots --only kill_matrix   # just one

kill_matrix.png: the kill matrix (docs/data/kill_matrix.json, written by
``python3 -m tools.kill_matrix``) as a heatmap, invariant x mutant, with each mutant's
quickest catcher from docs/data/time_to_detect.json ringed. The PNG carries a digest
of what it shows (``tools.kill_matrix.figure_stamp``); tests/test_docs.py fails when
the data has moved on without the figure.

bias_drift.png: gradient descent on a bias b before the normalisation
(``invariants.catalogue.drift.bias_descent``, the code of the no-bias-drift
invariant), for the float64 reference and torch's BatchNorm1d against the naive
rule of Ioffe & Szegedy (2015, section 2) (``bn_invariants.zoo.detached_mean.DetachedMeanBatchNorm``).

scale_drift.png: gradient descent on the weights W of a linear layer before a
normalisation that also scales, proper against naive
(``bn_invariants.zoo.detached_mean.DetachedStatisticsBatchNorm``, which treats E[x] and Var[x] as constants).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bn_invariants.invariants.catalogue.drift import bias_descent  # noqa: E402
from bn_invariants.invariants.mixing import mix, mixing_weight, weight_gradient
from bn_invariants.invariants.step import build
from bn_invariants.zoo.detached_mean import DetachedMeanBatchNorm, DetachedStatisticsBatchNorm  # noqa: E402
from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject  # noqa: E402
from bn_invariants.strategies import Problem  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
DATA = ROOT / "docs" / "data"
STAMP_KEY = "Data-digest"
"""The PNG text key under which kill_matrix.png records ``figure_stamp`` of its data."""
PROPER = (REFERENCE_SUBJECT, Subject("torch.nn.BatchNorm1d", nn.BatchNorm1d))
NAIVE_CENTERING = Subject("naive rule (E[x] held constant)", DetachedMeanBatchNorm)
NAIVE_SCALING = Subject("naive rule (E[x], Var[x] held constant)", DetachedStatisticsBatchNorm)
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


PIXEL_NOISE = 1
"""Levels (of 255) by which a pixel may differ in a picture that shows the same thing: a
last-bit change in the plotted floats moves a line's antialiasing by one level (measured:
bias_drift.png, 184 pixels by 1 after the cotangent refactor); anything visible moves more."""


def same_picture(old: bytes, new: bytes) -> bool:
    """Whether two PNGs show the same picture: the same size, mode and text chunks (the
    kill matrix's data digest among them), every pixel within PIXEL_NOISE levels."""
    import io

    import numpy as np
    from PIL import Image
    with Image.open(io.BytesIO(old)) as a, Image.open(io.BytesIO(new)) as b:
        if (a.size, a.mode, a.text) != (b.size, b.mode, b.text):
            return False
        diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return int(diff.max(initial=0)) <= PIXEL_NOISE


def save(fig, path: Path, metadata: dict | None = None) -> bool:
    """Write ``fig`` to ``path`` as a PNG (no software tag) and close it, unless the file
    there already shows the same picture (``same_picture``): rerunning the plots on
    unchanged data leaves the repository unchanged.  Returns whether it wrote."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None, **(metadata or {})})
    plt.close(fig)
    new = buffer.getvalue()
    if path.exists() and same_picture(path.read_bytes(), new):
        return False
    path.write_bytes(new)
    return True


def _style(ax, title, ylabel):
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("gradient step t")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def bias_figure(path: Path, *, steps: int = 40, lr: float = 0.1) -> bool:
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
    return save(fig, path)


def scale_figure(path: Path, *, steps: int = 300, lr: float = 0.1) -> bool:
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
    return save(fig, path)


VERDICT_COLORS = {"caught": "#b2182b", "passed": "#f4f4f4", "unsupported": "#fddbc7",
                  "n/a": "#ffffff"}
VERDICT_LABELS = {"caught": "caught", "passed": "passed (not caught)",
                  "unsupported": "subject declined (unsupported)",
                  "n/a": "not applicable (no input the invariant applies to)"}


def kill_matrix_figure(path: Path) -> bool:
    """The kill matrix as a heatmap: one row per invariant (grouped by family), one column
    per subject (controls first), each mutant's quickest catcher ringed."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from bn_invariants.invariants import REGISTRY
    from tools.kill_matrix import controls_of, figure_stamp, quickest, short
    doc = json.loads((DATA / "kill_matrix.json").read_text(encoding="utf-8"))
    ttd_path = DATA / "time_to_detect.json"
    ttd = json.loads(ttd_path.read_text(encoding="utf-8")) if ttd_path.exists() else None
    names = list(doc["matrix"])
    controls = controls_of(doc)
    ids = sorted({i for row in doc["matrix"].values() for i in row},
                 key=lambda i: (REGISTRY[i].family if i in REGISTRY else "~", i))
    verdicts = list(VERDICT_COLORS)
    grid = [[verdicts.index(doc["matrix"][n].get(i, "n/a")) for n in names] for i in ids]
    fig, ax = plt.subplots(figsize=(8, 11.5), constrained_layout=True)
    ax.imshow(grid, cmap=ListedColormap(list(VERDICT_COLORS.values())), vmin=0,
              vmax=len(verdicts) - 1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(names)), [short(n) for n in names], rotation=70, ha="right",
                  rotation_mode="anchor", fontsize=10)
    for label, name in zip(ax.get_xticklabels(), names):
        label.set_fontstyle("italic" if name in controls else "normal")
    ax.set_yticks(range(len(ids)), ids, fontsize=10)
    ax.set_xticks([x - 0.5 for x in range(1, len(names))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(ids))], minor=True)
    ax.grid(which="minor", color="#cccccc", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.axvline(len(controls) - 0.5, color="black", lw=2)
    families = [REGISTRY[i].family if i in REGISTRY else "?" for i in ids]
    for y in range(1, len(ids)):
        if families[y] != families[y - 1]:
            ax.axhline(y - 0.5, color="#555555", lw=1.2)
    secondary = ax.secondary_yaxis("right")
    starts = [y for y in range(len(ids)) if y == 0 or families[y] != families[y - 1]]
    ends = starts[1:] + [len(ids)]
    secondary.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends)],
                         [families[a].replace(", ", ",\n").replace(" ", "\n", 1) if len(families[a]) > 12
                          else families[a] for a in starts], fontsize=9, color="#444444")
    secondary.tick_params(length=0)
    column = {n: k for k, n in enumerate(names)}
    row = {i: k for k, i in enumerate(ids)}
    for mutant, first in quickest(ttd).items():
        if mutant in column and first["invariant"] in row:
            ax.scatter(column[mutant], row[first["invariant"]], s=46, facecolors="none",
                       edgecolors="white", linewidths=1.6)
    ax.set_title(f"{len(ids)} invariants × {len(names) - len(controls)} broken batch norms\n"
                 f"({len(controls)} correct controls first, in italics)", fontsize=11)
    handles = [Patch(facecolor=VERDICT_COLORS[v], edgecolor="#999999", label=VERDICT_LABELS[v])
               for v in verdicts]
    handles.append(plt.Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                              markeredgecolor=VERDICT_COLORS["caught"], markeredgewidth=1.6,
                              markersize=8, label="ringed: the mutant's quickest catcher"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    return save(fig, path, {STAMP_KEY: figure_stamp(doc, ttd)})


def figure_digest(path: Path) -> str | None:
    """The data digest a kill-matrix PNG records, or None."""
    from PIL import Image
    with Image.open(path) as image:
        return image.text.get(STAMP_KEY)


FIGURES = {"bias_drift": bias_figure, "scale_drift": scale_figure,
           "kill_matrix": kill_matrix_figure}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(FIGURES), action="append",
                        help="draw only this figure (repeatable; default: all)")
    args = parser.parse_args(argv)
    IMG.mkdir(parents=True, exist_ok=True)
    for name in args.only or FIGURES:
        wrote = FIGURES[name](IMG / f"{name}.png")
        print(f"{'wrote' if wrote else 'unchanged:'} {(IMG / f'{name}.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
