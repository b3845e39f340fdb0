"""z⁺ (Montavon et al. 2017, Deep Taylor decomposition, Eq. 10)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stabilizer import inverse_signed
from .base import SignedRule, check_empty
from .core import SignedState, forward_split, signed_sums, split_sign, weight_pairs

Tensor = torch.Tensor


@dataclass(repr=False)
class ZPlus(SignedRule):
    """z⁺ (Montavon et al. 2017, Deep Taylor decomposition, Eq. 10): R_i = Σ_j z_ij⁺ / Σ_i z_ij⁺ R_j.

    z_ij⁺ = x_i⁺ w_ij⁺ + x_i⁻ w_ij⁻ (the positive products); biases are ignored; stab(·) with
    ``stabilizer`` (1e-6) guards the denominator. ``empty``: "literal" (default: a neuron
    without positive contributions, e.g. a negative logit, passes nothing) or "conserve" (it
    passes its relevance through its negative contributions instead).
    """

    stabilizer: float = 1e-6
    empty: str = "literal"
    name = "z-plus"
    fresh_result = True
    uses_bias = False
    uses_output = False

    def __post_init__(self) -> None:
        check_empty("z-plus", self.empty)

    def forward_prepare(self, layer, x, nonnegative=False):
        """For signed x: z and z⁺ from two forwards (Wx and |W||x|, see ``signed_sums``) instead
        of the layer's forward and two more; None (the usual path) otherwise."""
        if self.empty != "literal":
            return None
        xp, xn = split_sign(x, nonnegative)
        if xn is None:
            return None
        wp, wn = layer.signed_weights()
        z_pos, z_neg = signed_sums(layer, x, xp, xn)
        z = layer.add_bias(z_neg.add_(z_pos), layer.bias)
        return z, SignedState(xp, xn, wp, wn, inverse_signed(z_pos, self.stabilizer, 1.0))

    def prepare(self, layer, x, z, nonnegative=False):
        wp, wn = layer.signed_weights()
        xp, xn = split_sign(x, nonnegative)
        z_pos = forward_split(layer, xp, xn, wp, wn, None)  # ≥ 0
        if self.empty == "literal" or not bool(z_pos.amin() == 0):
            return SignedState(xp, xn, wp, wn, inverse_signed(z_pos, self.stabilizer, 1.0))
        empty = z_pos == 0
        inv_e = inverse_signed(forward_split(layer, xp, xn, wn, wp, None), self.stabilizer, -1.0).mul_(empty)
        inv = inverse_signed(z_pos, self.stabilizer, 1.0).mul_(~empty)
        return SignedState(xp, xn, wp, wn, inv, inv_e, weight_pairs(layer, xn, wp, wn))
