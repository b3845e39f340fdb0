"""Integrated Gradients (Sundararajan et al. 2017, Eq. 1 and its Riemann approximation Eq. 3):

    IG_i(x) = (x_i - x'_i) * ∫_0^1 ∂f_c(x' + α (x - x')) / ∂x_i dα

with x' the baseline. Completeness (their Proposition 1): Σ_i IG_i(x) = f_c(x) - f_c(x').
The integral is computed by Captum's IntegratedGradients (Gauss-Legendre nodes by default, as
Captum), ``batch_size`` interpolated images per forward/backward (Captum's
``internal_batch_size``), so that memory stays bounded whatever ``steps``.

Baselines: ``"zero"`` (the all-zero input, i.e. the mean image after mean/std normalisation),
``"blur"`` (the input blurred by a Gaussian of ``blur_sigma`` pixels, Sturmfels et al. 2020)
or a tensor broadcastable to the input.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ChexplainError
from ..targets import TargetSpec
from . import params as P
from .common import per_target, prepare

NAME = "integrated-gradients"
RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
PARAMS = ("steps", "baseline", "rule", "batch_size", "blur_sigma")


def check(steps: Any = 50, baseline: Any = "zero", rule: Any = "gausslegendre",
          batch_size: Any = 64, blur_sigma: Any = 10.0) -> None:
    """Refuse bad parameters in one line naming them, before any work."""
    P.positive_int(NAME, "steps", steps)
    P.positive_int(NAME, "batch_size", batch_size)
    P.choice(NAME, "rule", rule, RULES)
    P.real(NAME, "blur_sigma", blur_sigma, 0.0, strict=True)
    if not isinstance(baseline, torch.Tensor):
        P.choice(NAME, "baseline", baseline, ("zero", "blur"))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel (kernel radius 3σ, reflected borders)."""
    radius = max(1, min(int(3 * sigma + 0.5), min(x.shape[2:]) - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_baseline(x: torch.Tensor, baseline: str | torch.Tensor, blur_sigma: float) -> torch.Tensor:
    """The baseline x' as a tensor of ``x``'s shape."""
    if isinstance(baseline, torch.Tensor):
        try:
            return torch.broadcast_to(baseline.to(dtype=x.dtype, device=x.device), x.shape).contiguous()
        except RuntimeError:
            raise ChexplainError(f"{NAME}: parameter baseline of shape {tuple(baseline.shape)} does "
                                 f"not broadcast to the input's {tuple(x.shape)}") from None
    if baseline == "blur":
        if x.ndim != 4:
            raise ChexplainError(f"{NAME}: baseline='blur' needs images (N, C, H, W), got {x.ndim} axes")
        return gaussian_blur(x, blur_sigma)
    return torch.zeros_like(x)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: TargetSpec = None,
                         classes: Sequence[int] | None = None, steps: int = 50,
                         baseline: str | torch.Tensor = "zero", rule: str = "gausslegendre",
                         batch_size: int = 64, blur_sigma: float = 10.0) -> torch.Tensor:
    """Integrated Gradients of ``model`` at ``x``: x's shape, or (N, T, *x.shape[1:]) for
    several targets; ``steps`` integration nodes, ``batch_size`` images per pass."""
    from captum.attr import IntegratedGradients

    check(steps, baseline, rule, batch_size, blur_sigma)
    from .params import check_input

    x = check_input(x)
    base = make_baseline(x, baseline, float(blur_sigma))
    prep = prepare(model, x, target, classes)
    ig = IntegratedGradients(prep.model)

    def attribute(t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            return ig.attribute(x, baselines=base, target=t.tolist(), n_steps=int(steps), method=rule,
                                internal_batch_size=max(int(batch_size), x.shape[0])).detach()

    return per_target(prep, attribute)
