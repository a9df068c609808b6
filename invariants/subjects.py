"""Subjects: the batch norms under test, each built like torch.nn.BatchNorm2d."""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import nn

from bn_invariants.invariants.assertions import is_device_fault
from bn_invariants.invariants.reference import ModelBatchNorm, ReferenceBatchNorm


REQUIRED_SIGNATURE = ("Name(num_features, eps=, momentum=, affine=, track_running_stats=, "
                      "device=, dtype=), torch.nn.BatchNorm2d's signature")
"""How the suite builds every subject."""


class SubjectError(Exception):
    """A --bn-impl / --bn-ref that cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class Subject:
    """A named factory ``factory(num_features, eps=, momentum=, affine=,
    track_running_stats=, device=, dtype=) -> nn.Module`` taking (N, C, *) input."""

    name: str
    factory: Callable[..., nn.Module]

    def build(self, num_features, *, options, device, dtype) -> nn.Module:
        """A fresh module; a factory that raises or returns a non-Module is a SubjectError
        (a device fault is not the factory's: it propagates as it is)."""
        kwargs = {**options.kwargs(), "device": device, "dtype": dtype}
        try:
            module = self.factory(num_features, **kwargs)
        except Exception as exc:
            if is_device_fault(exc):
                raise
            call = ", ".join([str(num_features)] + [f"{k}={v!r}" if k != "dtype" else f"{k}={v}"
                                                    for k, v in kwargs.items()])
            kind = "function" if inspect.isfunction(self.factory) else "class"
            raise SubjectError(
                f"{self.name}({call}) raised {type(exc).__name__}: {exc}; the suite calls "
                f"{self.name} (a {kind}) as {REQUIRED_SIGNATURE}") from exc
        if not isinstance(module, nn.Module):
            raise SubjectError(f"{self.name}(...) returned a {type(module).__name__}, "
                               f"but should return a torch.nn.Module")
        return module

    @property
    def spec(self) -> str:
        """The ``package.module:Name`` that ``load_subject`` takes for this subject."""
        if ":" in self.name:
            return self.name
        return f"{self.factory.__module__}:{self.factory.__qualname__}"

    def __str__(self) -> str:
        return self.name


class FunctionalBatchNorm(ModelBatchNorm):
    """torch.nn.functional.batch_norm behind BatchNorm2d's constructor and state."""

    def forward(self, x):
        use_batch = self.training or self.running_mean is None
        factor = self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch, 0.0 if factor is None else factor, self.eps)


REFERENCE_SUBJECT = Subject("reference(float64)", ReferenceBatchNorm)
"""The float64 oracle; the default of --bn-ref."""

TORCH_FACTORIES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, FunctionalBatchNorm)
"""torch's own batch norms, the factories a known deviation can name."""

BUILTIN_SUBJECTS = (
    Subject("torch.nn.BatchNorm1d", nn.BatchNorm1d),
    Subject("torch.nn.BatchNorm2d", nn.BatchNorm2d),
    Subject("torch.nn.BatchNorm3d", nn.BatchNorm3d),
    Subject("torch.nn.functional.batch_norm", FunctionalBatchNorm),
    REFERENCE_SUBJECT,
)
"""What a plain ``pytest`` checks."""


def load_subject(spec: str, option: str = "--bn-impl") -> Subject:
    """The subject named by ``package.module:Name``; bad specs raise SubjectError.

    The current directory is importable, as under ``python -m``.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SubjectError(f"{option}={spec!r} should look like package.module:Name")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SubjectError(f"module {module_name!r} of {spec!r} does not import: "
                           f"{type(exc).__name__}: {exc}") from exc
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SubjectError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise SubjectError(f"{spec!r} is a {type(target).__name__}, but should be a class "
                           f"or factory like torch.nn.BatchNorm2d")
    if inspect.isclass(target) and not issubclass(target, nn.Module):
        raise SubjectError(f"{spec!r} is a class that is not a torch.nn.Module")
    return Subject(spec, target)
