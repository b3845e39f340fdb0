"""Sum pooling of relevance maps: a map's total kept exactly at any size (the store's 32- and
64-px maps, the counterfactual grid, SpRAy's input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sum_pool(R: torch.Tensor, size: int) -> torch.Tensor:
    """(…, H, W) → (…, size, size) area pooling scaled so that each map's sum is kept exactly."""
    lead = R.shape[:-2]
    flat = R.reshape(-1, 1, *R.shape[-2:]).double()
    pooled = F.interpolate(flat, size=(size, size), mode="area") * (flat[0, 0].numel() / size**2)
    fix = flat.sum((-1, -2), keepdim=True) - pooled.sum((-1, -2), keepdim=True)
    pooled = pooled + fix / size**2  # float rounding of the area weights only
    return pooled.reshape(*lead, size, size).float()
