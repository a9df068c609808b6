"""A failure's reproduction: a few lines of Python that build the subject with the
drawn parameters, feed it the exact input and show the violation, without the suite.

The failing check is run once more with every module the subject builds recorded:
its constructor call, its state before each forward pass (parameters, buffers and
tensor attributes) and each input, bit for bit.  The forward pass whose output breaks
the reported bound against a plain float64 batch norm is written out; small tensors
inline as exact hexadecimal floats, larger ones in a ``torch.save`` file next to it.

The script is always written to ``bn-invariants-repro/`` (under the current directory,
which holds a ``.gitignore`` of its own), named by the invariant and a hash of the text,
and runs from anywhere: it puts the folder its subject's package was imported from on
``sys.path`` and loads its tensors from beside itself, so a report prints one line,
``python bn-invariants-repro/<name>.py`` (``reproduction_file``).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import shlex
import site
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bn_invariants.invariants.subjects import REFERENCE_SUBJECT, Subject

INLINE_LIMIT = 48
"""Tensors with more elements than this go to a saved file."""
SAVE_DIR = Path("bn-invariants-repro")
"""Where reproductions are written, relative to the current directory."""
GITIGNORE = "# Written by bn-invariants: failures' reproductions, each runnable on its own.\n*\n"
"""The folder's own .gitignore, so that ``git add -A`` leaves it out (as .pytest_cache does)."""

_VIOLATION = re.compile(r"^(?P<what>[^\[]+)\[(?P<index>[0-9, ]*)\]=(?P<got>\S+), but should be "
                        r"(?P<expected>\S+) ± (?P<tol>[0-9.e+-]+)")


def batch_norm64(x, weight, bias, running_mean, running_var, eps, training):
    """Batch norm in float64: batch statistics (of x divided per channel by a power of two
    near its largest |x|, exact, so no square overflows) or the running ones."""
    x = x.double()
    dims = [0, *range(2, x.dim())]
    view = [1, -1] + [1] * (x.dim() - 2)
    if training or running_mean is None:
        largest = x.abs().amax(dims, keepdim=True).clamp(min=2.0 ** -450)
        scale = 2.0 ** torch.frexp(largest).exponent.double()
        xs = x / scale
        mean = xs.mean(dims, keepdim=True)
        var = ((xs - mean) ** 2).mean(dims, keepdim=True)
        xhat = (xs - mean) / (var + eps / scale ** 2).sqrt()
    else:
        xhat = ((x - running_mean.detach().double().view(view))
                / (running_var.detach().double().view(view) + eps).sqrt())
    if weight is not None:
        xhat = xhat * weight.detach().double().view(view) + bias.detach().double().view(view)
    return xhat


@dataclass
class Call:
    """One forward pass of a recorded module."""

    training: bool
    state: dict
    input: torch.Tensor
    output: object = None
    cotangent: object = None
    """The gradient that reached the output in a backward pass (None without one)."""
    input_grad: object = None
    """dl/dx of that backward pass."""


@dataclass
class Built:
    """One module the subject built, and its forward passes."""

    kwargs: dict
    lazy: bool
    module: torch.nn.Module
    calls: list = field(default_factory=list)


def _tensor_state(module) -> dict:
    """Every tensor of the module's state: state_dict, then plain tensor attributes."""
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for name, value in vars(module).items():
        if isinstance(value, torch.Tensor) and name not in state:
            state[name] = value.detach().clone()
    return state


def recording(subject: Subject, log: list) -> Subject:
    """``subject``, with every module it builds, and each of its forward passes, in ``log``."""
    def factory(num_features, **kwargs):
        module = subject.factory(num_features, **kwargs)
        if isinstance(module, torch.nn.Module):
            lazy = any(isinstance(p, torch.nn.parameter.UninitializedParameter)
                       for p in module.parameters())
            built = Built({"num_features": num_features, **kwargs}, lazy, module)
            log.append(built)

            def before(mod, args):
                if args and isinstance(args[0], torch.Tensor):
                    built.calls.append(Call(mod.training, _tensor_state(mod), args[0].detach().clone()))

            def after(mod, args, output):
                if not built.calls or not isinstance(output, torch.Tensor):
                    return
                call = built.calls[-1]
                call.output = output.detach().clone()
                if output.requires_grad:
                    output.register_hook(lambda g: setattr(call, "cotangent", g.detach().clone()))
                if args[0].requires_grad:
                    args[0].register_hook(lambda g: setattr(call, "input_grad", g.detach().clone()))

            module.register_forward_pre_hook(before)
            module.register_forward_hook(after)
        return module
    return Subject(subject.name, factory)


def _expected(built: Built, call: Call, x=None):
    kw, state = built.kwargs, call.state
    return batch_norm64(call.input if x is None else x, state.get("weight"), state.get("bias"),
                        state.get("running_mean"), state.get("running_var"),
                        kw.get("eps", 1e-5), call.training or not kw.get("track_running_stats", True))


def _compared(built: Built, call: Call, gradient: bool):
    """(got, float64 value) of the output, or of dl/dx for the recorded cotangent."""
    if not gradient:
        return call.output, _expected(built, call)
    if call.cotangent is None or call.input_grad is None:
        return None, None
    x64 = call.input.double().requires_grad_(True)
    _expected(built, call, x64).backward(call.cotangent.double())
    return call.input_grad, x64.grad


def find_call(log: list, message: str):
    """(built, call, index, tolerance) of the forward pass whose output is out of the
    violation's bound against batch_norm64 at the violation's index; None if none is."""
    match = _VIOLATION.match(message)
    if not match:
        return None
    index = tuple(int(i) for i in match["index"].split(",") if i.strip())
    tol = float(match["tol"])
    gradient = match["what"].startswith("dl/dx")
    for built in reversed(log):
        for call in reversed(built.calls):
            if not isinstance(call.input, torch.Tensor) or call.input.numel() == 0:
                continue  # an empty batch: no output element to compare
            y, expected = _compared(built, call, gradient)
            if not isinstance(y, torch.Tensor) or y.dim() != len(index) or \
                    any(i >= s for i, s in zip(index, y.shape)):
                continue
            got, want = float(y[index].double()), float(expected[index])
            if not abs(got - want) <= tol:
                return built, call, index, tol
    return None


def script(spec: str, built: Built, call: Call, index: tuple, tol: float, what: str,
           directory: Path = SAVE_DIR) -> str:
    """The reproduction's text: the forward pass, and for a dl/dx violation the backward
    pass of the recorded upstream gradient, against float64 autograd of batch_norm64.
    Tensors too large to inline are saved in ``directory``, where the script must be
    written: it loads them from beside itself."""
    gradient = what.startswith("dl/dx")
    saved, lines = {}, []

    def literal(name: str, t: torch.Tensor) -> str:
        if t.numel() <= INLINE_LIMIT:
            hexes = " ".join(float(v).hex() for v in t.detach().double().flatten().tolist())
            return f'exact("{hexes}", {tuple(t.shape)}, {t.dtype})'
        saved[name] = t.detach().cpu()
        return f'saved["{name}"].to({t.dtype})'

    module_name, _, attr = spec.partition(":")
    kwargs = dict(built.kwargs)
    num_features = kwargs.pop("num_features")
    args = ", ".join([str(num_features)] + [f"{k}={_py(v)}" for k, v in kwargs.items()])
    x = call.input
    state_lines = [f'    "{k}": {literal(k, v)},' for k, v in call.state.items()]
    lines += [
        "import sys",
        "from pathlib import Path",
        "",
        "import torch",
        "",
        *_path_lines(module_name),
        f"import {module_name}",
        "",
        'def exact(hexes, shape, dtype):',
        '    return torch.tensor([float.fromhex(h) for h in hexes.split()],',
        '                        dtype=torch.float64).reshape(shape).to(dtype)',
        "",
        inspect.getsource(batch_norm64).rstrip(),
        "",
        f"module = {module_name}.{attr}({args})",
    ]
    xs = literal("x", x)
    if built.lazy:
        lines.append(f"module.eval()(torch.zeros({tuple(x.shape)}, dtype={x.dtype}))  # materialise")
    lines += ["state = {", *state_lines, "}", "with torch.no_grad():",
              "    for name, value in state.items():",
              "        target = module",
              "        for part in name.split('.'):",
              "            target = getattr(target, part)",
              "        target.copy_(value)",
              f"leaf = {xs}{'.requires_grad_(True)' if gradient else ''}",
              f"x = leaf{_layout(x)}",
              f"y = module.train({call.training})(x)"]
    reference = (f"state.get('weight'), state.get('bias'), state.get('running_mean'), "
                 f"state.get('running_var'), {kwargs.get('eps', 1e-5)!r}, "
                 f"{call.training or not kwargs.get('track_running_stats', True)})")
    if gradient:
        lines += [f"g = {literal('g', call.cotangent)}",
                  "y.backward(g)",
                  "x64 = leaf.detach().double().requires_grad_(True)",
                  f"batch_norm64(x64, {reference}.backward(g.double())",
                  f"got, want = leaf.grad[{index}].item(), x64.grad[{index}].item()"]
    else:
        lines += [f"expected = batch_norm64(x, {reference}",
                  f"got, want = y[{index}].item(), expected[{index}].item()"]
    lines += [f'print("{what}{list(index)} =", got, "but float64 batch norm gives", want, '
              f'"(error", abs(got - want), ", tolerance {tol:.3g})")',
              f"assert abs(got - want) <= {tol!r}, 'violated'"]
    if saved:
        digest = hashlib.sha256()
        for k, v in sorted(saved.items()):
            digest.update(k.encode() + v.double().numpy().tobytes())
        name = f"{digest.hexdigest()[:12]}.pt"
        _make(directory)
        _atomically(directory / name, lambda tmp: torch.save(saved, tmp))
        at = lines.index(f"import {module_name}") + 1
        lines[at:at] = ["", f"saved = torch.load(Path(__file__).with_name({name!r}))"]
    return "\n".join(lines) + "\n"


def import_root(module_name: str) -> Path | None:
    """The folder that ``module_name``'s top-level package (or module) was imported from,
    which must be on ``sys.path`` to import it again; None for one that Python finds on
    its own (the standard library, site-packages) or one with no file."""
    top = module_name.split(".")[0]
    try:
        module = sys.modules.get(top) or importlib.import_module(top)
    except Exception:  # noqa: BLE001  (the script will say so when it is run)
        return None
    package = list(getattr(module, "__path__", None) or [])
    where = package[0] if package else getattr(module, "__file__", None)
    if not where:
        return None
    root = Path(where).resolve().parent
    installed = {*sysconfig.get_paths().values(), *site.getsitepackages(), site.getusersitepackages()}
    if any(root == Path(p).resolve() for p in installed if p):
        return None
    return root


def _path_lines(module_name: str) -> list:
    """The script's lines that make ``module_name`` importable from any directory: the
    folder it was imported from, then, should that be gone, the folder that holds the
    script's own folder (the directory the run was started in)."""
    root = import_root(module_name)
    if root is None:
        return []
    top = module_name.split(".")[0]
    return [f"sys.path.insert(0, {str(root)!r})  # where {top} was imported from",
            "sys.path.append(str(Path(__file__).resolve().parent.parent))  # the run's directory",
            ""]


def _make(directory: Path) -> None:
    """``directory``, with a .gitignore that keeps it out of the user's commits."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)


def write(invariant_id: str, text: str, directory: Path = SAVE_DIR) -> Path:
    """The reproduction ``text`` written to ``directory`` as ``<invariant>-<hash>.py``
    (its absolute path): the same failure gets the same file."""
    _make(directory)
    path = directory / f"{invariant_id}-{hashlib.sha256(text.encode()).hexdigest()[:8]}.py"
    if not path.exists() or path.read_text() != text:
        _atomically(path, lambda tmp: tmp.write_text(text))
    return path.absolute()


def _atomically(path: Path, save) -> None:
    """``save(temporary)``, then the temporary file renamed to ``path``: workers of a
    parallel run (``pytest -n``) writing the same reproduction never leave half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save(temporary)
    os.replace(temporary, path)


def command(path: Path) -> str:
    """The shell line that runs the script at ``path``: relative to the current directory
    when it lies under it, absolute otherwise."""
    path = Path(path).absolute()
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    return f"python {shlex.quote(shown.as_posix())}"


def _layout(x: torch.Tensor) -> str:
    """The code that gives the exact tensor ``x``'s memory layout."""
    if x.is_contiguous():
        return ""
    if x.dim() >= 3 and x.stride(1) == 1:
        return ".movedim(1, -1).contiguous().movedim(-1, 1)  # channels last"
    return "  # (the check used a strided view of these values; the values are what matter)"


def _py(value) -> str:
    if isinstance(value, torch.dtype):
        return str(value)
    return repr(value)


def _build(invariant, subject: Subject, case, message: str, reference: Subject,
           directory: Path) -> tuple:
    """(path, text): the reproduction written to ``directory`` and its text; (None, '')
    when the violation is not an output or dl/dx out of bounds, (None, a sentence) when
    building it raised."""
    from bn_invariants.invariants.runner import check_case
    log: list = []
    try:
        check_case(invariant, recording(subject, log), case, reference)
    except Exception:  # noqa: BLE001  (the violation again, as expected)
        pass
    try:
        found = find_call(log, message)
        if found is None:
            return None, ""
        built, call, index, tol = found
        text = script(subject.spec, built, call, index, tol, _VIOLATION.match(message)["what"],
                      directory)
        return write(invariant.id, text, directory), text
    except Exception as exc:  # noqa: BLE001  (the violation stands; only its script is lost)
        return None, (f"(no stand-alone reproduction: building it raised {type(exc).__name__}: "
                      f"{exc}; a bug in the suite, the replay above still holds)")


def reproduce(invariant, subject: Subject, case, message: str,
              reference: Subject = REFERENCE_SUBJECT, directory: Path = SAVE_DIR) -> str:
    """The reproduction of ``message`` (a violation of ``invariant`` by ``subject`` on
    ``case``), also written to ``directory``; '' when it is not a forward output or dl/dx
    out of bounds."""
    return _build(invariant, subject, case, message, reference, Path(directory))[1]


def reproduction_file(invariant, subject: Subject, case, message: str,
                      reference: Subject = REFERENCE_SUBJECT,
                      directory: Path = SAVE_DIR) -> tuple:
    """(path, line): the reproduction of ``message`` written to ``directory`` and the one
    shell line that runs it, ``python bn-invariants-repro/<invariant>-<hash>.py``;
    (None, '') when there is none, (None, a sentence) when building it raised."""
    path, text = _build(invariant, subject, case, message, reference, Path(directory))
    return (path, command(path)) if path is not None else (None, text)
