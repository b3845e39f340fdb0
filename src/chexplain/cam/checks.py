"""Checks of the caller's model for the Grad-CAM family (:mod:`chexplain.cam.gradcam`): a final
sigmoid/softmax is skipped (the logits are explained, as LRP does), and forward hooks that the
traced model does not apply are named in a warning."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

_SQUASH_FN = {torch.sigmoid, F.sigmoid, torch.softmax, F.softmax, torch.log_softmax, F.log_softmax}
_SQUASH_MOD = (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)


def _is_squash(gm: fx.GraphModule, n: Any) -> bool:
    if not isinstance(n, fx.Node):
        return False
    return (n.op == "call_function" and n.target in _SQUASH_FN) or (
        n.op == "call_method" and n.target in ("sigmoid", "softmax", "log_softmax")) or (
        n.op == "call_module" and isinstance(gm.get_submodule(str(n.target)), _SQUASH_MOD))


def strip_squash(gm: fx.GraphModule, out: fx.Node) -> None:
    """A model whose forward ends in sigmoid/softmax: explain the logits before it, with a
    warning (as LRP does); the gradient of a probability saturates and mixes the classes."""
    final = out.args[0]
    while _is_squash(gm, final):
        what = type(gm.get_submodule(str(final.target))).__name__ if final.op == "call_module" else \
            getattr(final.target, "__name__", str(final.target))
        warnings.warn(f"the model ends with {what} ('{final.name}'): Grad-CAM explains the logits "
                      "before it", stacklevel=6)
        final = final.args[0] if final.args else final.kwargs.get("input")
    out.args = (final,)


def warn_hooks(model: nn.Module, called: set[str]) -> None:
    """Forward hooks run only on the modules the traced graph calls; warn about the others."""
    skipped = [name or "(the model itself)" for name, m in model.named_modules()
               if (m._forward_hooks or m._forward_pre_hooks) and name not in called]
    if skipped:
        warnings.warn(f"forward hooks on {', '.join(skipped[:5])} are not applied by Grad-CAM's traced "
                      "model (hooks on the layers it calls are); the explained logits may differ from "
                      "model(x)", stacklevel=6)
