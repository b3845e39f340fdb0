"""The one public entry point, :func:`explain`, dispatching on the method's name."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .errors import ChexplainError
from .lrp.engine import LRP
from .registry import check_method_params, methods, registry
from .targets import TargetSpec

__all__ = ["explain", "methods", "check_method_params"]


def explain(
    model: torch.nn.Module,
    x: torch.Tensor,
    method: str = "epsilon-plus-flat",
    target: TargetSpec = None,
    classes: Sequence[int] | None = None,
    **params: Any,
) -> torch.Tensor:
    """Explain ``model``'s logits for input ``x`` with ``method``.

    ``target`` is an int, a per-sample list/tensor, ``"all"``, ``"topk:K"`` or None (the top
    class); ``classes=[...]`` explains the listed classes of every sample. With one class per
    sample the result has ``x``'s shape (the Grad-CAM family: (N, H, W)); otherwise it is
    (N, T, *x.shape[1:]) for LRP, integrated-gradients, smoothgrad and occlusion, and
    (N, T, H, W) for the Grad-CAM family. ``params`` are the method's parameters (LRP:
    epsilon, gamma, alpha, beta, low, high; Grad-CAM and LayerCAM: layer, relu, upsample;
    Score-CAM: layer, batch_size, weights, relu, upsample; integrated-gradients: steps,
    baseline, rule, batch_size, blur_sigma; smoothgrad: n, sigma, variant, batch_size, seed;
    occlusion: window, stride, baseline, batch_size), each checked before any work.
    """
    from .validate import check_param_types

    if not isinstance(method, str):
        raise ChexplainError(f"method must be a name (one of {', '.join(methods())}), got "
                             f"{type(method).__name__}")
    kind = registry().get(method)
    if kind is None:
        raise ChexplainError(f"unknown method {method!r}; choose from {', '.join(methods())}")
    if kind == "baseline":
        raise ChexplainError(f"{method} is a baseline of the evaluation, not offered by explain; "
                             f"choose from {', '.join(methods())}")
    if kind == "attribution" or method == "scorecam":
        from .attribution import attribute

        return attribute(model, x, method, target=target, classes=classes, **params)
    if kind == "cam":
        from .cam.gradcam import explain_cam

        check_param_types(method, explain_cam, params)
        return explain_cam(model, x, method=method, target=target, classes=classes, **params)
    return LRP(model, composite=method, **params)(x, target=target, classes=classes)
