"""The private copy of a model that tracing reads: deep-copied, in eval mode, without hooks,
with the modules of :data:`registry.SUBSTITUTES` swapped for traceable equivalents. The
caller's model is only read (deep-copied) here."""

from __future__ import annotations

import copy
import warnings

import torch.nn as nn

from ..errors import UnsupportedModelError
from . import registry

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
          "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks")


class SymbolicTraceError(UnsupportedModelError):
    """torch.fx could not trace the forward symbolically (it branches on sizes or values)."""


def snapshot(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode, hooks removed, substitutes swapped in."""
    try:
        clone = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - anything that stops the copy
        raise UnsupportedModelError(f"cannot copy {type(model).__name__} for tracing: {first_line(exc)}") from None
    clone.eval()
    for m in clone.modules():
        for hooks in _HOOKS:
            if isinstance(getattr(m, hooks, None), dict):
                getattr(m, hooks).clear()
    registry.load()
    return registry.substitute(clone)  # e.g. nn.MultiheadAttention as explicit ops


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def warn_hooks(model: nn.Module) -> None:
    """Forward (pre-)hooks are not part of the explained function: warn, naming the modules."""
    from torch.nn.modules import module as _module

    hooked = [name or "(the model itself)" for name, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks]
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        hooked.append("(global hooks)")
    if hooked:
        warnings.warn(f"forward hooks on {', '.join(hooked[:5])}{' ...' if len(hooked) > 5 else ''} are not part "
                      "of the function LRP explains: it explains the model without them, so its logits may "
                      "differ from model(x)", stacklevel=3)
