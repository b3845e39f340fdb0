"""What every attribution method does around its own computation: an eval-mode model (the
caller's model is never changed), the targets resolved from one forward pass, and one map per
target stacked on a T axis (dropped when one class per sample is explained)."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import InputError, UnsupportedModelError
from ..targets import TargetSpec, Targets, resolve_targets


@dataclass(frozen=True)
class Prepared:
    """An eval-mode model, the checked input and its resolved targets."""

    model: nn.Module
    x: torch.Tensor
    targets: Targets


def eval_model(model: nn.Module) -> nn.Module:
    """``model`` itself when in eval mode, else an eval-mode copy (with a warning), so that
    BatchNorm statistics and dropout of the caller's model stay untouched."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(m.training for m in model.modules()):
        return model
    warnings.warn("the model is in training mode; explaining an eval-mode copy (call model.eval() "
                  "to explain it directly)", UserWarning, stacklevel=4)
    try:
        return copy.deepcopy(model).eval()
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedModelError(f"cannot copy the model to eval mode ({exc}); call model.eval()") from exc


def prepare(model: nn.Module, x: torch.Tensor, target: TargetSpec,
            classes: Sequence[int] | None) -> Prepared:
    """The model in eval mode and the targets of one forward pass at ``x``."""
    model = eval_model(model)
    try:
        with torch.no_grad():
            logits = model(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the model's forward failed on input of shape {tuple(x.shape)}: {first}") from None
    if not isinstance(logits, torch.Tensor):
        raise UnsupportedModelError(f"the model returns {type(logits).__name__}; attribution needs a logits tensor (N, classes)")
    return Prepared(model, x, resolve_targets(logits, target, classes))


def per_target(prepared: Prepared, attribute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``attribute(t)`` for each target column t (N,), stacked to (N, T, ...) or squeezed."""
    maps = [attribute(prepared.targets.index[:, j]) for j in range(prepared.targets.count)]
    out = torch.stack(maps, 1)
    return out[:, 0] if prepared.targets.squeeze else out
