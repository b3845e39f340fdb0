"""LRP-γ (Montavon et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops.linear import LinearOp
from ..stabilizer import inverse
from .base import SignedRule
from .core import SignedState, forward_split, neg_part, pos_part, split_sign, weight_pairs

Tensor = torch.Tensor


@dataclass(repr=False)
class Gamma(SignedRule):
    """LRP-γ (Montavon et al. 2019, "Layer-wise relevance propagation: an overview", Eq. 4).

    q_ij = x_i (w_ij + γ w_ij⁺) for outputs z_j > 0, generalised to signed inputs and outputs
    by favouring contributions of the output's sign: for z_j > 0 the weights w + γw⁺ act on
    x⁺ and w + γw⁻ on x⁻ (bias b + γb⁺); for z_j < 0 the roles swap (bias b + γb⁻).
    """

    gamma: float = 0.25
    stabilizer: float = 1e-6
    name = "gamma"
    fresh_result = True

    def _weights(self, layer: LinearOp) -> tuple[Tensor, Tensor]:
        w_pos, w_neg = layer.signed_weights()
        return layer.weight + self.gamma * w_pos, layer.weight + self.gamma * w_neg

    def prepare(self, layer, x, z, nonnegative=False):
        b, g = layer.bias, self.gamma
        wp, wn = self._weights(layer)
        xp, xn = split_sign(x, nonnegative)
        zg_p = forward_split(layer, xp, xn, wp, wn, None if b is None else b + g * pos_part(b))
        zg_n = None
        if bool((z < 0).any()):
            zg_n = forward_split(layer, xp, xn, wn, wp, None if b is None else b + g * neg_part(b))
        return self._state(layer, xp, xn, wp, wn, z, zg_p, zg_n)

    def forward_prepare(self, layer, x, nonnegative=False):
        """With the positive and negative products P = Σ z_ij⁺ + b⁺ and N = Σ z_ij⁻ + b⁻ (x split
        by sign as for αβ): z = P + N, and the denominators are z + γP (z > 0) and z + γN (z < 0),
        so two forwards serve what took three."""
        w_pos, w_neg = layer.signed_weights()
        xp, xn = split_sign(x, nonnegative)
        P = forward_split(layer, xp, xn, w_pos, w_neg, pos_part(layer.bias))
        N = forward_split(layer, xp, xn, w_neg, w_pos, neg_part(layer.bias))
        z = P + N
        zg_n = N.mul_(self.gamma).add_(z) if bool((z < 0).any()) else None
        wp, wn = self._weights(layer)
        return z, self._state(layer, xp, xn, wp, wn, z, P.mul_(self.gamma).add_(z), zg_n)

    def _state(self, layer, xp, xn, wp, wn, z, zg_p, zg_n) -> SignedState:
        inv_p = inverse(zg_p, self.stabilizer, (z > 0).to(z.dtype))
        if zg_n is None:
            return SignedState(xp, xn, wp, wn, inv_p)
        inv_n = inverse(zg_n, self.stabilizer, (z < 0).to(z.dtype))
        return SignedState(xp, xn, wp, wn, inv_p, inv_n, weight_pairs(layer, xn, wp, wn))
