"""SmoothGrad (Smilkov et al. 2017, Eq. 3) and its variants:

    plain:    M̂_c(x) = 1/n Σ_{k=1}^n ∂f_c(x + g_k)/∂x,   g_k ~ N(0, σ²),
    squared:  1/n Σ_k (∂f_c(x + g_k)/∂x)²   (SmoothGrad² of Hooker et al. 2019),
    vargrad:  1/n Σ_k (∂f_c(x + g_k)/∂x)² − M̂_c(x)²   (VarGrad, Adebayo et al. 2018),

with σ = ``sigma`` × (max x − min x) of each sample (the paper's noise level, 0.15 by default:
they found 10-20 % best). ``n`` defaults to 50, the paper's sample count (Captum's NoiseTunnel
defaults to 5). ``batch_size`` is a budget of images per forward/backward, as for Integrated
Gradients: a pass holds k = max(1, batch_size // N) noisy copies of each of the N samples, so
memory does not grow with the number of samples. The noise is drawn as Captum's NoiseTunnel
draws it (one ``torch.normal`` per chunk of k copies, each input repeated consecutively), from a
generator seeded with ``seed`` (the global random state is left as it was), so that with one
noise level per batch the result equals NoiseTunnel(Saliency(abs=False)) with
``nt_samples_batch_size=k`` run from the same seed. The noisy
batches reach the model in the channels-last layout, which oneDNN convolves fastest.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ChexplainError
from ..models.memory_format import channels_last
from ..targets import TargetSpec
from . import params as P
from .common import per_target, prepare

NAME = "smoothgrad"
VARIANTS = ("plain", "squared", "vargrad")
PARAMS = ("n", "sigma", "variant", "batch_size", "seed")


def check(n: Any = 50, sigma: Any = 0.15, variant: Any = "plain", batch_size: Any = 32,
          seed: Any = 0) -> None:
    """Refuse bad parameters in one line naming them, before any work."""
    P.positive_int(NAME, "n", n)
    P.real(NAME, "sigma", sigma, 0.0)
    P.choice(NAME, "variant", variant, VARIANTS)
    P.positive_int(NAME, "batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ChexplainError(f"{NAME}: parameter seed={seed!r} must be a non-negative integer")


def _gradients(model: nn.Module, xs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        xs = channels_last(xs).detach().requires_grad_(True)  # oneDNN's fastest layout
        out = model(xs)
        (g,) = torch.autograd.grad(out.gather(1, t.view(-1, 1)).sum(), xs)
    return g


def smoothgrad(model: nn.Module, x: torch.Tensor, target: TargetSpec = None,
               classes: Sequence[int] | None = None, n: int = 50, sigma: float = 0.15,
               variant: str = "plain", batch_size: int = 32, seed: int = 0) -> torch.Tensor:
    """SmoothGrad of ``model`` at ``x`` (x's shape, or (N, T, ...) for several targets);
    at most ``batch_size`` noisy images (at least one copy of each sample) per forward/backward."""
    check(n, sigma, variant, batch_size, seed)
    x = P.check_input(x)
    prep = prepare(model, x, target, classes)
    N, rest = x.shape[0], tuple(x.shape[1:])
    dims = tuple(range(1, x.ndim))
    spread = (x.amax(dim=dims) - x.amin(dim=dims)) * float(sigma)  # σ per sample
    per_pass = min(int(n), max(1, int(batch_size) // N))  # noisy copies of each sample
    chunks = [per_pass] * (int(n) // per_pass)
    if int(n) % per_pass:
        chunks.append(int(n) % per_pass)

    def attribute(t: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        total = torch.zeros_like(x)
        total_sq = torch.zeros_like(x)
        for k in chunks:
            std = spread.float().repeat_interleave(k).view(N * k, *([1] * len(rest))).expand(N * k, *rest)
            noise = torch.normal(torch.zeros_like(std), std, generator=gen)
            g = _gradients(prep.model, x.repeat_interleave(k, 0) + noise.to(x.dtype), t.repeat_interleave(k))
            g = g.reshape(N, k, *rest)
            total += g.sum(1)
            total_sq += (g * g).sum(1)
        mean, mean_sq = total / int(n), total_sq / int(n)
        if variant == "plain":
            return mean
        if variant == "squared":
            return mean_sq
        return mean_sq - mean * mean

    return per_target(prep, attribute)
