"""Localisation of relevance maps against ground-truth masks or boxes, batched with torch.

Every metric takes maps (N, H, W) and boolean masks (N, H, W) of the same size (one row per
*(image, positive finding)* pair: multi-label images contribute one row per finding) and
returns per-item values (N,) with **NaN where the item cannot be scored**:

* an **empty mask** (no box, no drawn finding) is never a hit: it is excluded and counted
  (:func:`localisation_metrics` reports ``n_empty``); Quantus' pointing game scores it as one;
* a map without positive relevance (all zero, or only negative: e.g. Grad-CAM after its ReLU
  when every channel weight points against the class) points at nothing: it is **not scored**
  by any metric, the pointing game included (NaN, counted as ``n_no_positive``), never a hit
  by the area share of its tied zeros.

Metrics
-------
* pointing game (Zhang et al. 2018): is the map's maximum inside the mask (optionally within
  ``tolerance`` pixels)? Tied maxima score the share of tied pixels inside, so a constant map
  scores the mask's area share instead of an arbitrary raster-order hit.
* relevance mass accuracy (Arras et al. 2022): share of the **positive** relevance inside the
  mask, sum(R⁺ in mask) / sum(R⁺) (Quantus divides by the signed sum, which can exceed 1).
* relevance rank accuracy (Arras et al. 2022): share of the K most relevant pixels inside the
  mask, K = mask size; only pixels with positive relevance count as ranked.
* IoU after thresholding: pixels with R⁺ ≥ ``threshold`` · max R⁺ against the mask.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError

METRICS = ("pointing_game", "relevance_mass", "relevance_rank", "iou")


def _check(maps: Any, masks: Any) -> tuple[torch.Tensor, torch.Tensor]:
    R = torch.as_tensor(maps)
    M = torch.as_tensor(masks, device=R.device)
    if R.ndim == 2:
        R, M = R[None], M[None] if M.ndim == 2 else M
    if R.ndim != 3 or M.shape != R.shape:
        raise InputError(f"maps {tuple(R.shape)} and masks {tuple(M.shape)} must both be (N, H, W) "
                         "of the same size; resize the maps to the mask first")
    if not R.is_floating_point():
        R = R.float()
    if not bool(torch.isfinite(R).all()):
        raise InputError("relevance maps hold NaN or infinite values")
    return R, M.bool()


def _nan_where(values: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    return torch.where(invalid, torch.full_like(values, float("nan")), values)


def pointing_game(maps: Any, masks: Any, tolerance: int = 0) -> torch.Tensor:
    """Per item: 1 if the map's maximum lies in the mask (dilated by ``tolerance`` pixels), 0
    if not; the share inside when the maximum is tied; NaN for an empty mask and for a map
    without positive relevance (its maximum marks no evidence)."""
    R, M = _check(maps, masks)
    if tolerance > 0:
        k = 2 * int(tolerance) + 1
        M = F.max_pool2d(M[:, None].float(), k, stride=1, padding=int(tolerance))[:, 0] > 0
    flat = R.flatten(1)
    top = flat == flat.max(dim=1, keepdim=True).values
    hits = (top & M.flatten(1)).sum(1).double() / top.sum(1).double()
    return _nan_where(hits, ~masks_nonempty(masks) | ~(flat > 0).any(1))


def masks_nonempty(masks: Any) -> torch.Tensor:
    """(N,) bool: which masks hold at least one pixel."""
    M = torch.as_tensor(masks)
    if M.ndim == 2:
        M = M[None]
    return M.flatten(1).bool().any(1)


def relevance_mass(maps: Any, masks: Any) -> torch.Tensor:
    """Per item: sum of positive relevance inside the mask / total positive relevance."""
    R, M = _check(maps, masks)
    pos = R.clamp(min=0).flatten(1).double()
    total = pos.sum(1)
    inside = (pos * M.flatten(1)).sum(1)
    out = inside / total.clamp(min=torch.finfo(torch.float64).tiny)
    return _nan_where(out, (total <= 0) | ~M.flatten(1).any(1))


def relevance_rank(maps: Any, masks: Any) -> torch.Tensor:
    """Per item: share of the K = |mask| highest positive-relevance pixels that lie inside."""
    R, M = _check(maps, masks)
    flat, m = R.flatten(1), M.flatten(1)
    k = m.sum(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    top = (rank < k[:, None]) & (flat > 0)
    out = (top & m).sum(1).double() / k.clamp(min=1).double()
    return _nan_where(out, (k == 0) | ~(flat > 0).any(1))


def iou(maps: Any, masks: Any, threshold: float = 0.5) -> torch.Tensor:
    """Per item: IoU of {R⁺ ≥ threshold · max R⁺} with the mask (CheXlocalize-style)."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"IoU threshold {threshold} must be in (0, 1]")
    R, M = _check(maps, masks)
    pos = R.clamp(min=0).flatten(1)
    peak = pos.max(1, keepdim=True).values
    binary = (pos >= threshold * peak) & (peak > 0)
    m = M.flatten(1)
    inter, union = (binary & m).sum(1).double(), (binary | m).sum(1).double()
    out = inter / union.clamp(min=1)
    return _nan_where(out, (peak[:, 0] <= 0) | ~m.any(1))


def localisation_metrics(maps: Any, masks: Any, tolerance: int = 0,
                         threshold: float = 0.5) -> dict[str, Any]:
    """All four metrics per item (numpy, NaN = not scored) and the counts of excluded items:
    ``{"pointing_game": (N,), ..., "n": N, "n_empty": .., "n_no_positive": ..}``."""
    R, M = _check(maps, masks)
    out: dict[str, Any] = {
        "pointing_game": pointing_game(R, M, tolerance).cpu().numpy(),
        "relevance_mass": relevance_mass(R, M).cpu().numpy(),
        "relevance_rank": relevance_rank(R, M).cpu().numpy(),
        "iou": iou(R, M, threshold).cpu().numpy(),
    }
    empty = ~masks_nonempty(M)
    out["n"] = int(R.shape[0])
    out["n_empty"] = int(empty.sum())
    out["n_no_positive"] = int((~(R.flatten(1) > 0).any(1) & ~empty).sum())
    return out

