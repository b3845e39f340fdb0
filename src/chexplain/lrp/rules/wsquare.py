"""w² (Montavon et al. 2017, Eq. 12) and flat (Lapuschkin et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stabilizer import inverse
from .base import Rule
from .core import fusable, scaled, vjp

Tensor = torch.Tensor


@dataclass
class WeightState:
    """w² and flat: the modified weights and 1/stab of their sums."""

    weight: Tensor
    inv: Tensor


@dataclass(repr=False)
class WSquare(Rule):
    """w² (Montavon et al. 2017, Eq. 12, unbounded inputs): R_i = Σ_j w_ij² / Σ_i w_ij² R_j."""

    stabilizer: float = 1e-6
    name = "w-square"
    fresh_result = True
    uses_bias = False
    uses_output = False

    def _weight(self, w: Tensor) -> Tensor:
        return w * w

    def prepare(self, layer, x, z, nonnegative=False):
        w2 = self._weight(layer.weight)
        return WeightState(w2, inverse(layer.forward_with(torch.ones_like(x[:1]), w2, None), self.stabilizer))

    def apply(self, layer, x, state: WeightState, R):
        return vjp(layer, R * state.inv, state.weight, x.shape)


class Flat(WSquare):
    """flat (Lapuschkin et al. 2019): the w² rule with all weights set to one."""

    name = "flat"

    def _weight(self, w: Tensor) -> Tensor:
        return torch.ones_like(w)

    def apply(self, layer, x, state, R):
        if not fusable(layer):
            return super().apply(layer, x, state, R)
        # all weights are one, so (Wᵀs)_i is the same for every input channel: sum s over the
        # output channels first, transpose onto one input channel, then broadcast
        n, t = R.shape[:2]
        s = scaled(R, state.inv).sum(2, keepdim=True)
        one = vjp(layer, s, state.weight[:1, :1], (n, 1, *x.shape[2:]))
        return one.expand(n, t, *x.shape[1:]).contiguous()
