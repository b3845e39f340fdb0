"""Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency
maps", NeurIPS): re-initialise the model's layers from the output towards the input, one
group at a time and cumulatively, and measure how similar each map stays to the original.
An explanation that depends on what the model learned must change; one that stays similar
(high Spearman rank correlation / SSIM to the end) is closer to an edge detector.

Similarity per item and step, batched with torch:

* Spearman rank correlation of the maps (ties get average ranks), signed and of |map|
  (Adebayo et al. report both);
* SSIM (Wang et al. 2004; 11×11 Gaussian window, σ 1.5) of the maps min-max scaled to [0, 1].

Layer groups are the parameterised modules grouped by their first ``depth`` path components
(DenseNet-121: ``classifier``, ``features.norm5``, ``features.denseblock4``,
``features.transition3`` …, ``features.conv0``), ordered from the output to the input.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError


def layer_groups(model: torch.nn.Module, depth: int = 2) -> list[tuple[str, list[str]]]:
    """Groups of parameterised modules (name, [module paths]), from the output to the input."""
    groups: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            key = ".".join(name.split(".")[:depth])
            groups.setdefault(key, []).append(name)
    return list(reversed(list(groups.items())))


def merge_groups(groups: Sequence[tuple[str, list[str]]], k: int) -> list[tuple[str, list[str]]]:
    """At most ``k`` consecutive groups (order kept), as even as possible, so that a short
    cascade still ends with every layer randomised; names join the first and last merged."""
    groups = list(groups)
    if k >= len(groups) or k < 1:
        return groups
    edges = np.linspace(0, len(groups), k + 1).round().astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        part = groups[a:b]
        name = part[0][0] if len(part) == 1 else f"{part[0][0]} … {part[-1][0]}"
        out.append((name, [p for _, paths in part for p in paths]))
    return out


def _reinit(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Adebayo et al.'s re-initialisation: weights ~ truncated normal (He scale), biases 0;
    norm layers to weight 1, bias 0 and fresh running statistics."""
    with torch.no_grad():
        if isinstance(module, torch.nn.modules.batchnorm._NormBase):
            module.reset_parameters()
            return
        for name, p in module.named_parameters(recurse=False):
            if name == "bias":
                p.zero_()
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                std = math.sqrt(2.0 / max(fan_in, 1))
                v = torch.randn(p.shape, generator=generator).clamp_(-2, 2) * std
                p.copy_(v.to(p))


def ranks(a: torch.Tensor) -> torch.Tensor:
    """Average ranks (0-based) along the last axis, ties averaged; batched over rows."""
    n = a.shape[-1]
    v, order = a.sort(dim=-1, stable=True)
    idx = torch.arange(n, device=a.device).expand_as(v)
    new = torch.ones_like(v, dtype=torch.bool)
    new[..., 1:] = v[..., 1:] != v[..., :-1]
    start = torch.where(new, idx, torch.zeros_like(idx)).cummax(-1).values
    last = torch.ones_like(new)
    last[..., :-1] = new[..., 1:]
    end = torch.where(last, idx, torch.full_like(idx, n - 1)).flip(-1).cummin(-1).values.flip(-1)
    out = torch.empty_like(v, dtype=torch.float64)
    out.scatter_(-1, order, (start + end).double() / 2)
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per row of (N, ...) maps; NaN where a map is constant."""
    ra, rb = ranks(a.flatten(1)), ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp(min=1e-300),
                       torch.full_like(den, float("nan")))


def _unit(m: torch.Tensor) -> torch.Tensor:
    flat = m.flatten(1).double()
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp(min=1e-12)).view_as(m)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per item of (N, H, W) maps after min-max scaling each to [0, 1]."""
    x, y = _unit(a)[:, None], _unit(b)[:, None]
    w = min(window, x.shape[-1], x.shape[-2])
    w -= (w + 1) % 2  # odd
    t = torch.arange(w, dtype=torch.float64, device=x.device) - (w - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum())
    k = (g[:, None] * g[None, :])[None, None]
    mu_x, mu_y = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mu_x ** 2
    syy = F.conv2d(y * y, k) - mu_y ** 2
    sxy = F.conv2d(x * y, k) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def cascading_randomisation(model: torch.nn.Module, x: torch.Tensor, target: Any,
                            explainer: Callable[[torch.nn.Module], Callable[..., torch.Tensor]],
                            depth: int = 2, max_steps: int | None = None, seed: int = 0,
                            n_groups: int | None = None,
                            groups: Sequence[tuple[str, list[str]]] | None = None) -> dict[str, Any]:
    """Similarity of each item's map to the original as groups are randomised top-down.

    ``explainer(model)`` returns a callable ``(x, target) -> (N, H, W)`` (e.g.
    ``lambda m: Attributor(m, "lrp-epsilon", norm)``); it is built anew for every randomised
    copy (the caller's model is never changed). ``max_steps`` keeps the first groups only.
    Returns ``{"layers": [group names], "spearman": (N, S), "spearman_abs": (N, S),
    "ssim": (N, S)}`` (numpy) with S = number of groups; step s has groups 0..s randomised.
    """
    return cascading_randomisation_many(model, x, target, {"map": explainer}, depth, max_steps,
                                        seed, n_groups, groups)["map"]


def cascading_randomisation_many(model: torch.nn.Module, x: torch.Tensor, target: Any,
                                 explainers: dict[str, Callable[[torch.nn.Module], Callable[..., torch.Tensor]]],
                                 depth: int = 2, max_steps: int | None = None, seed: int = 0,
                                 n_groups: int | None = None,
                                 groups: Sequence[tuple[str, list[str]]] | None = None,
                                 originals: dict[str, Callable[..., torch.Tensor]] | None = None
                                 ) -> dict[str, dict[str, Any]]:
    """:func:`cascading_randomisation` for several methods on **one** cascade: the model is
    copied once and each group re-initialised once per step for all methods (the same seeded
    weights every method would get on its own cascade). ``originals[name]``: an explainer
    already built on ``model`` for the original maps (saves building it again)."""
    if model.training:
        raise InputError("cascading randomisation needs the model in eval mode")
    groups = list(groups if groups is not None else layer_groups(model, depth))
    if n_groups is not None:
        groups = merge_groups(groups, n_groups)
    if max_steps is not None:
        groups = groups[:max_steps]
    if not groups:
        raise InputError(f"{type(model).__name__} has no parameters to randomise")
    t = torch.as_tensor(target, dtype=torch.long, device=x.device)
    originals = originals or {}
    original = {name: (originals[name] if name in originals else make(model))(x, t).double()
                for name, make in explainers.items()}
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())
    g = torch.Generator().manual_seed(int(seed))
    sims: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in explainers}
    for _, paths in groups:
        for path in paths:
            _reinit(modules[path], g)
        for name, make in explainers.items():
            m = make(work)(x, t).double()
            sp, spa, ss = sims[name]
            sp.append(spearman(original[name], m))
            spa.append(spearman(original[name].abs(), m.abs()))
            ss.append(ssim(original[name], m))
    stack = lambda v: torch.stack(v, 1).cpu().numpy()  # noqa: E731
    return {name: {"layers": [n for n, _ in groups], "spearman": stack(sp),
                   "spearman_abs": stack(spa), "ssim": stack(ss)}
            for name, (sp, spa, ss) in sims.items()}
