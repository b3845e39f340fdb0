"""Integrated Gradients (Sundararajan et al. 2017, Eq. 1 and its Riemann approximation Eq. 3):

    IG_i(x) = (x_i - x'_i) * ∫_0^1 ∂f_c(x' + α (x - x')) / ∂x_i dα

with x' the baseline. Completeness (their Proposition 1): Σ_i IG_i(x) = f_c(x) - f_c(x').
The integral is a quadrature over ``steps`` nodes α_j with weights w_j (``rule``: Gauss-Legendre
by default, as Captum, or Captum's Riemann rules), IG ≈ (x - x') Σ_j w_j ∂f_c(x' + α_j (x - x'))/∂x,
``batch_size`` interpolated images per forward pass (Captum's ``internal_batch_size``; 32 by
default: the memory of one forward + backward of 32 images), so that memory stays bounded
whatever ``steps``; each pass in the channels-last layout, which oneDNN
convolves fastest (:mod:`chexplain.models.memory_format`). Several targets share each forward pass (one backward
per target), where Captum runs the whole integral once per target; the result equals Captum's,
except for ``riemann_trapezoid``: Captum weights its n nodes (spaced 1/(n-1)) by 1/n (halved
at the ends), so that its weights sum to 1 - 1/n and its integral is short by that factor;
here the trapezoid weights are 1/(n-1) (halved at the ends) and sum to 1.

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
from ..models.memory_format import channels_last
from ..targets import TargetSpec
from . import params as P
from .common import prepare

NAME = "integrated-gradients"
RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
PARAMS = ("steps", "baseline", "rule", "batch_size", "blur_sigma")


def check(steps: Any = 50, baseline: Any = "zero", rule: Any = "gausslegendre",
          batch_size: Any = 32, blur_sigma: Any = 10.0) -> None:
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


def nodes(steps: int, rule: str) -> tuple[list[float], list[float]]:
    """Quadrature nodes α_j in [0, 1] and weights w_j of ``rule`` (Σ w_j = 1), as Captum's."""
    n = int(steps)
    if rule == "gausslegendre":
        import numpy as np

        x, w = np.polynomial.legendre.leggauss(n)
        return [float(a) for a in (x + 1) / 2], [float(b) for b in w / 2]
    if rule == "riemann_trapezoid":
        if n < 2:
            raise ChexplainError(f"{NAME}: rule riemann_trapezoid needs steps of at least 2, got {n}")
        w = [1.0 / (n - 1)] * n
        w[0] = w[-1] = 0.5 / (n - 1)
        return [i / (n - 1) for i in range(n)], w
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return [(i + shift) / n for i in range(n)], [1.0 / n] * n


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: TargetSpec = None,
                         classes: Sequence[int] | None = None, steps: int = 50,
                         baseline: str | torch.Tensor = "zero", rule: str = "gausslegendre",
                         batch_size: int = 32, blur_sigma: float = 10.0) -> torch.Tensor:
    """Integrated Gradients of ``model`` at ``x``: x's shape, or (N, T, *x.shape[1:]) for
    several targets; ``steps`` integration nodes, ``batch_size`` images per pass."""
    check(steps, baseline, rule, batch_size, blur_sigma)
    alphas, weights = nodes(int(steps), rule)
    x = P.check_input(x)
    base = make_baseline(x, baseline, float(blur_sigma))
    prep = prepare(model, x, target, classes)
    N, T = x.shape[0], prep.targets.count
    delta = x - base
    total = torch.zeros((T, *x.shape), dtype=x.dtype, device=x.device)
    per_pass = max(1, int(batch_size) // N)
    with torch.inference_mode(False), torch.enable_grad():
        for j0 in range(0, len(alphas), per_pass):
            a = torch.tensor(alphas[j0 : j0 + per_pass], dtype=x.dtype, device=x.device)
            w = torch.tensor(weights[j0 : j0 + per_pass], dtype=x.dtype, device=x.device)
            k, shape = a.numel(), (-1, *([1] * (x.ndim - 1)))
            xs = (base.unsqueeze(0) + a.view(-1, *([1] * x.ndim)) * delta.unsqueeze(0)).reshape(k * N, *x.shape[1:])
            xs = channels_last(xs).detach().requires_grad_(True)  # oneDNN's fastest layout
            out = prep.model(xs).view(k, N, -1)
            for t in range(T):
                (g,) = torch.autograd.grad(out.gather(2, prep.targets.index[:, t].view(1, N, 1).expand(k, N, 1)).sum(),
                                           xs, retain_graph=t + 1 < T)
                total[t] += (g.reshape(k, N, *x.shape[1:]) * w.view(shape).unsqueeze(1)).sum(0)
    attr = (total * delta.unsqueeze(0)).transpose(0, 1).detach()  # (N, T, ...)
    return attr[:, 0] if prep.targets.squeeze else attr
