"""Region perturbation / pixel flipping (Samek et al. 2017, IEEE TNNLS 28(11)), batched.

The map is pooled into non-overlapping ``patch`` × ``patch`` regions; regions are removed in
order of relevance, most relevant first (MoRF) or least relevant first (LeRF), and the
**logit** of the explained class is tracked. Step k (0..steps) has removed
round(k · fraction · P / steps) of the P regions. AOPC (area over the perturbation curve):

    AOPC = 1/(L+1) Σ_{k=0..L} ( f(x⁰) − f(xᵏ) )

A faithful map has a large MoRF AOPC (the logit falls fast) and a small LeRF AOPC.

Every perturbed input of every step is built at once from a per-sample region ranking (no
Python loop over regions or samples) and evaluated in chunks of ``batch_size`` on the
model's device. Removed regions take a **baseline** suited to radiographs:

* ``"blur"``: the image blurred with a Gaussian (σ = ``patch``): removes detail, keeps the
  anatomy's grey levels in distribution (default);
* ``"mean"``: the image's own mean per channel;
* ``"noise"``: uniform grey values within the normalised image range [low, high] of the
  preprocessing (``Normalization.bounds()``), the same grey on every channel, seeded
  (Samek et al.'s choice; Quantus' "uniform" assumes [0, 1] inputs instead);
* ``"road"``: ROAD's noisy linear imputation (Rong et al. 2022, :mod:`.road`): the removed
  pixels of each perturbed input are imputed from the remaining ones, plus Gaussian noise
  (σ = ``road_noise``); with every region removed, the image's mean per channel plus noise.

Ties in the relevance order are broken at random (seeded), never in raster order.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.memory_format import channels_last
from .road import ROAD_NOISE, noisy_linear_imputation

BASELINES = ("blur", "mean", "noise", "road")
ORDERS = ("morf", "lerf")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def baseline_image(x: torch.Tensor, kind: str = "blur", patch: int = 8,
                   bounds: tuple[Any, Any] | None = None,
                   generator: torch.Generator | None = None,
                   road_noise: float = ROAD_NOISE) -> torch.Tensor:
    """The image that removed regions take, shaped like ``x`` (N, C, H, W). For ``"road"``,
    whose imputation depends on the mask, the image with every pixel removed."""
    if kind == "blur":
        return _gaussian_blur(x, float(max(patch, 1)))
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if kind == "noise":
        if bounds is None:
            raise InputError("the noise baseline needs the preprocessing's bounds (low, high); "
                             "pass bounds=Normalization.bounds()")
        low = torch.as_tensor(bounds[0], dtype=x.dtype).to(x.device).reshape(1, -1, 1, 1)
        high = torch.as_tensor(bounds[1], dtype=x.dtype).to(x.device).reshape(1, -1, 1, 1)
        u = torch.rand((x.shape[0], 1, *x.shape[2:]), generator=generator, dtype=x.dtype)
        return low + u.to(x.device) * (high - low)
    if kind == "road":
        return noisy_linear_imputation(x, torch.ones(x.shape[0], *x.shape[2:], dtype=torch.bool),
                                       road_noise, generator)
    raise InputError(f"unknown perturbation baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def region_ranking(maps: torch.Tensor, patch: int, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """(N, P) rank of each region (0 = most relevant) after average pooling into patches."""
    pooled = F.avg_pool2d(maps[:, None].double(), patch, stride=patch, ceil_mode=True)[:, 0]
    score = pooled.flatten(1)
    perm = torch.randperm(score.shape[1], generator=generator).to(score.device)
    order = perm[score[:, perm].argsort(dim=1, descending=True, stable=True)]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(score.shape[1], device=score.device).expand_as(order))
    return rank


def region_perturbation(model: torch.nn.Module, x: torch.Tensor, maps: Any, target: Sequence[int] | torch.Tensor,
                        patch: int = 8, steps: int = 16, fraction: float = 1.0,
                        baseline: str = "blur", orders: Sequence[str] = ORDERS,
                        bounds: tuple[Any, Any] | None = None, batch_size: int = 64,
                        seed: int = 0, shared: dict[int, torch.Tensor] | None = None,
                        road_noise: float = ROAD_NOISE) -> dict[str, Any]:
    """Perturbation curves and AOPC of ``maps`` (N, H, W) for the logits ``target`` (N,).

    ``shared``: a dict kept by the caller across calls with the same model, images, targets,
    baseline and seed that differ only in ``maps`` (several methods): the logits of the
    unperturbed and of the fully perturbed images do not depend on the map, so they are
    computed by the first call and read by the others.

    ``baseline="road"`` imputes every perturbed input from its own mask (:mod:`.road`), with
    noise of std ``road_noise`` drawn from the seeded generator.

    Returns ``{"morf": {"curve": (N, steps+1) logits, "drop": (N, steps+1) f(x⁰) − f(xᵏ),
    "aopc": (N,)}, "lerf": {...}, "removed_fraction": (steps+1,), "patch", "steps",
    "baseline"}`` as numpy arrays. The model must be in eval mode (it is not changed).
    """
    if x.ndim != 4:
        raise InputError(f"region perturbation needs images (N, C, H, W), got {tuple(x.shape)}")
    R = torch.as_tensor(maps).to(x.device)
    if R.shape != (x.shape[0], *x.shape[2:]):
        raise InputError(f"maps {tuple(R.shape)} must be (N, H, W) = {(x.shape[0], *x.shape[2:])}")
    if patch < 1 or steps < 1 or not 0 < fraction <= 1:
        raise InputError(f"patch ({patch}) and steps ({steps}) must be positive and fraction "
                         f"({fraction}) in (0, 1]")
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        raise InputError(f"unknown perturbation order {bad[0]!r}; use morf or lerf")
    if model.training:
        raise InputError("region perturbation needs the model in eval mode (call model.eval())")
    t = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1)
    if t.numel() != x.shape[0]:
        raise InputError(f"{t.numel()} targets for {x.shape[0]} images")
    g = torch.Generator().manual_seed(int(seed))
    base = baseline_image(x, baseline, patch, bounds, g, road_noise)
    rank = region_ranking(R, patch, g)  # (N, P)
    n, (h, w) = x.shape[0], x.shape[2:]
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    n_regions = gh * gw
    removed = torch.tensor([round(k * fraction * n_regions / steps) for k in range(steps + 1)],
                           device=x.device)
    result: dict[str, Any] = {"patch": patch, "steps": steps, "baseline": baseline,
                              "removed_fraction": (removed.cpu().numpy() / n_regions)}
    # step 0 (nothing removed) and, with fraction 1, the last step (everything replaced by the
    # baseline) are the same inputs for both orders: their logits are computed once
    ends_at = [0] + ([steps] if int(removed[-1]) == n_regions else [])
    inner = torch.tensor([k for k in range(steps + 1) if k not in ends_at], device=x.device)
    with torch.no_grad():
        cache = {} if shared is None else shared
        for k in ends_at:
            if k not in cache:
                cache[k] = _logits(model, x if k == 0 else base, t, batch_size)
        ends = {k: cache[k] for k in ends_at}
        for order in orders:
            r = rank if order == "morf" else (n_regions - 1 - rank)
            curve = torch.empty(n, steps + 1, dtype=torch.float64, device=x.device)
            for k, logits in ends.items():
                curve[:, k] = logits
            # every other (image, step) pair is one perturbed input; chunks of batch_size on the device
            flat = torch.arange(n * len(inner), device=x.device)
            for lo in range(0, flat.numel(), batch_size):
                idx = flat[lo:lo + batch_size]
                item, k = idx // len(inner), inner[idx % len(inner)]
                gone = (r[item] < removed[k][:, None]).view(-1, 1, gh, gw).to(x.dtype)
                gone = gone.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w]
                if baseline == "road":
                    xs = noisy_linear_imputation(x[item], gone[:, 0] > 0.5, road_noise, g)
                else:
                    xs = x[item] * (1 - gone) + base[item] * gone
                xs = channels_last(xs)
                curve[item, k] = model(xs).gather(1, t[item][:, None])[:, 0].double()
            result[order] = _curves(curve)
    return result


def _logits(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The logits ``t`` (N,) of ``x`` (N, ...), in chunks of ``batch_size``, as float64."""
    return torch.cat([model(channels_last(x[lo:lo + batch_size])).gather(1, t[lo:lo + batch_size, None])[:, 0].double()
                      for lo in range(0, x.shape[0], batch_size)])


def _curves(curve: torch.Tensor) -> dict[str, np.ndarray]:
    """The logit curve (N, steps+1), its drop f(x⁰) − f(xᵏ) and the AOPC (mean drop)."""
    drop = curve[:, :1] - curve
    return {"curve": curve.cpu().numpy(), "drop": drop.cpu().numpy(), "aopc": drop.mean(1).cpu().numpy()}


def aopc_summary(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per item: ``aopc_morf``, ``aopc_lerf`` and their difference ``aopc_gap`` (LeRF − MoRF
    is negative for a faithful map; reported as MoRF − LeRF so that larger is better)."""
    out = {}
    for order in ORDERS:
        if order in result:
            out[f"aopc_{order}"] = result[order]["aopc"]
    if "morf" in result and "lerf" in result:
        out["aopc_gap"] = result["morf"]["aopc"] - result["lerf"]["aopc"]
    return out
