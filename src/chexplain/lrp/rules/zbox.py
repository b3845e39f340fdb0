"""z^B (Montavon et al. 2017, Eq. 14) for bounded inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ...errors import ChexplainError
from ..stabilizer import inverse
from .base import Rule
from .core import fusable, scaled, vjp

Tensor = torch.Tensor


@dataclass
class BoxState:
    """z^B: the bounds as tensors of the input's shape, 1/stab(z^B), and [w, w⁺, w⁻] stacked
    along the input channels for one transposed op (None where the layer cannot fuse)."""

    low: Tensor
    high: Tensor
    inv: Tensor
    stacked: Optional[Tensor]


@dataclass(repr=False)
class ZBox(Rule):
    """z^B (Montavon et al. 2017, Eq. 14) for inputs bounded by low ≤ x ≤ high (per channel).

    R_i = Σ_j (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) / Σ_i (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) R_j.
    """

    low: object = None
    high: object = None
    stabilizer: float = 1e-6
    name = "z-box"
    fresh_result = True
    uses_output = False
    uses_bias = False

    def __post_init__(self) -> None:
        if self.low is None or self.high is None:
            raise ChexplainError("the z^B rule needs the input bounds low= and high=")

    def _bound(self, value: object, x: Tensor) -> Tensor:
        t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        if t.ndim == 1 and x.ndim > 2 and t.numel() == x.shape[1]:
            t = t.view(-1, *([1] * (x.ndim - 2)))
        try:
            return t.expand(x.shape[1:]).unsqueeze(0).expand_as(x)
        except RuntimeError:
            raise ChexplainError(
                f"z^B bounds of shape {tuple(t.shape)} do not fit the input of shape {tuple(x.shape)}; give a "
                "float, one value per channel, or a tensor of the input's shape") from None

    def prepare(self, layer, x, z, nonnegative=False):
        w = layer.weight
        wp, wn = layer.signed_weights()
        low, high = self._bound(self.low, x), self._bound(self.high, x)
        # the bounds are the same for every sample: their forwards once, broadcast over the batch
        bounds = layer.forward_with(low[:1], wp, None).add_(layer.forward_with(high[:1], wn, None))
        zb = layer.forward_with(x, w, None).sub_(bounds)
        # the three transposed ops as one, on [w, w⁺, w⁻] stacked along the input channels
        stacked = torch.cat([w, wp, wn], 1) if fusable(layer) else None
        return BoxState(low, high, inverse(zb, self.stabilizer), stacked)

    def apply(self, layer, x, state: BoxState, R):
        low, high, stacked = state.low, state.high, state.stacked
        s = scaled(R, state.inv)
        if stacked is not None:
            g, g_low, g_high = vjp(layer, s, stacked, (x.shape[0], 3 * x.shape[1], *x.shape[2:])).chunk(3, 2)
        else:
            wp, wn = layer.signed_weights()
            g, g_low, g_high = (vjp(layer, s, w, x.shape) for w in (layer.weight, wp, wn))
        out = g * x.unsqueeze(1)
        out.addcmul_(g_low, low.unsqueeze(1), value=-1.0)
        return out.addcmul_(g_high, high.unsqueeze(1), value=-1.0)
