"""The one registry of explanation methods: every name the API, ``compare``, ``audit`` and the
CLI accept, its family, and the check of its parameters.

Families, each defined where its code is: ``lrp`` (the composites of
:data:`chexplain.lrp.composites.PRESETS`), ``cam`` (the Grad-CAM family of
:mod:`chexplain.cam.gradcam`, Score-CAM included), ``attribution`` (Integrated Gradients, SmoothGrad,
occlusion: :data:`chexplain.attribution.INPUT_SPACE`) and ``baseline`` (gradient × input and a
random map: references of the evaluation, not offered by :func:`chexplain.explain`).
"""

from __future__ import annotations

from typing import Any

from .attribution import BASELINE_METHODS, INPUT_SPACE
from .cam.methods import CAM_METHODS
from .errors import ChexplainError
from .lrp.composites import PRESETS

FAMILIES = ("lrp", "cam", "attribution", "baseline")


def registry() -> dict[str, str]:
    """name -> family, in the order the CLI lists them; read from the families' own tables at
    each call, so that a preset registered later (:func:`chexplain.lrp.composites.preset`) is
    offered too."""
    return {**{m: "lrp" for m in PRESETS}, **{m: "cam" for m in CAM_METHODS},
            **{m: "attribution" for m in INPUT_SPACE}, **{m: "baseline" for m in BASELINE_METHODS}}


def names(*families: str) -> tuple[str, ...]:
    """The methods of ``families`` (all families when none is given)."""
    wanted = families or FAMILIES
    return tuple(m for m, f in registry().items() if f in wanted)


def methods() -> tuple[str, ...]:
    """Names accepted by :func:`chexplain.explain`: the LRP presets, the Grad-CAM family (with
    LayerCAM and Score-CAM), Integrated Gradients, SmoothGrad and Occlusion."""
    return names("lrp", "cam", "attribution")


def all_methods() -> tuple[str, ...]:
    """Every registered method, the evaluation's baselines included."""
    return names()


def family(method: str) -> str:
    """The family of ``method``; an unknown name is refused in one line."""
    table = registry()
    if not isinstance(method, str) or method not in table:
        raise ChexplainError(f"unknown method {method!r}; choose from {', '.join(all_methods())}")
    return table[method]


def check_method_params(method: str, params: dict[str, Any]) -> None:
    """Refuse an unknown method, or a parameter it does not take or of a wrong value, in one
    line before any model runs. An Integrated Gradients ``baseline`` that is neither ``zero``
    nor ``blur`` must name a readable image file (it is read as the model's input)."""
    from .validate import check_param_types

    if method == "scorecam" or method in INPUT_SPACE:
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

        from .cam.gradcam import explain_cam

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
