"""The one public entry point, :func:`explain`, dispatching on the method's name."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .errors import ChexplainError
from .lrp.composites import PRESETS
from .lrp.engine import LRP
from .targets import TargetSpec

#: Methods giving class activation maps (N, H, W) of a feature layer (Score-CAM included).
CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "layercam", "scorecam")
#: Methods giving maps of the input's shape, beside LRP (chexplain.attribution).
ATTRIBUTION_METHODS = ("integrated-gradients", "smoothgrad", "occlusion")


def methods() -> tuple[str, ...]:
    """Names accepted by :func:`explain`: the LRP presets, the Grad-CAM family (with LayerCAM
    and Score-CAM), Integrated Gradients, SmoothGrad and Occlusion."""
    return tuple(PRESETS) + CAM_METHODS + ATTRIBUTION_METHODS


def check_method_params(method: str, params: dict[str, Any]) -> None:
    """Refuse an unknown method, or a parameter it does not take or of a wrong value, in one
    line before any model runs. An Integrated Gradients ``baseline`` that is neither ``zero``
    nor ``blur`` must name a readable image file (it is read as the model's input)."""
    from .evaluate.baselines import BASELINE_METHODS
    from .validate import check_param_types

    if method == "scorecam" or method in ATTRIBUTION_METHODS:
        from .attribution import check_params

        baseline = params.get("baseline")
        if method == "integrated-gradients" and isinstance(baseline, str) and \
                baseline not in ("zero", "blur"):
            from .data.images import read_image

            read_image(baseline)  # a one-line DataError naming the file
            params = {k: v for k, v in params.items() if k != "baseline"}
        check_params(method, params)
    elif method in CAM_METHODS:
        import inspect

        from .cam import explain_cam

        accepted = [n for n, p in inspect.signature(explain_cam).parameters.items()
                    if p.kind is p.POSITIONAL_OR_KEYWORD and n not in
                    ("model", "x", "method", "target", "classes")]
        extra = sorted(set(params) - set(accepted))
        if extra:
            raise ChexplainError(f"{method} has no parameter {extra[0]!r}; it takes: {', '.join(accepted)}")
        check_param_types(method, explain_cam, params)
    elif method in PRESETS:
        from .lrp.engine import check_composite_params

        check_composite_params(method, params)
    elif method in BASELINE_METHODS:
        if params:
            raise ChexplainError(f"{method} takes no parameter (got {', '.join(sorted(params))})")
    else:
        raise ChexplainError(f"unknown method {method!r}; choose from {', '.join(methods())}")


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
    if method == "scorecam" or method in ATTRIBUTION_METHODS:
        from .attribution import attribute

        return attribute(model, x, method, target=target, classes=classes, **params)
    if method in CAM_METHODS:
        from .cam import explain_cam

        check_param_types(method, explain_cam, params)
        return explain_cam(model, x, method=method, target=target, classes=classes, **params)
    return LRP(model, composite=method, **params)(x, target=target, classes=classes)
