"""LRP-0 (Bach et al. 2015, Eq. 56) and LRP-ε (Eq. 58)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stabilizer import inverse
from .base import LRP0_STABILIZER, Rule
from .core import scaled, vjp

Tensor = torch.Tensor


@dataclass(repr=False)
class Epsilon(Rule):
    """LRP-ε (Bach et al. 2015, Eq. 58): R_i = Σ_j x_i w_ij / (z_j + ε·sign(z_j)) · R_j, z_j with bias."""

    epsilon: float = 1e-6
    name = "epsilon"
    fresh_result = True
    uses_bias = False

    def prepare(self, layer, x, z, nonnegative=False) -> Tensor:
        """1/stab(z): the whole state."""
        return inverse(z, self.epsilon)

    def apply(self, layer, x, state: Tensor, R):
        return vjp(layer, scaled(R, state), layer.weight, x.shape).mul_(x.unsqueeze(1))


class Z(Epsilon):
    """LRP-0 (Bach et al. 2015, Eq. 56): R_i = Σ_j x_i w_ij / z_j · R_j; the stabiliser (default
    1e-12) only prevents division by zero."""

    name = "z"

    def __init__(self, stabilizer: float = LRP0_STABILIZER) -> None:
        super().__init__(epsilon=stabilizer)
