"""LRP-αβ (Bach et al. 2015, Eq. 60)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ...errors import ChexplainError
from ..ops.linear import LinearOp
from ..stabilizer import inverse_signed
from .base import SignedRule, check_empty
from .core import SignedState, forward_split, neg_part, pos_part, signed_sums, split_sign, weight_pairs

Tensor = torch.Tensor


@dataclass
class SignedSums:
    """αβ's positive and negative sums of a layer before they become 1/stab: x⁺, x⁻, w⁺, w⁻,
    z⁺ (positive products and b⁺), z⁻ (negative products and b⁻; None when not needed) and
    whether z⁺ has an empty neuron (``empty="conserve"``)."""

    xp: Tensor
    xn: Optional[Tensor]
    wp: Tensor
    wn: Tensor
    z_pos: Tensor
    z_neg: Optional[Tensor]
    empty_pos: bool


@dataclass(repr=False)
class AlphaBeta(SignedRule):
    """LRP-αβ (Bach et al. 2015, Eq. 60), α − β = 1, β ≥ 0.

    R_i = Σ_j (α z_ij⁺ / z_j⁺ − β z_ij⁻ / z_j⁻) R_j with z_ij = x_i w_ij split by the sign of the
    product (x⁺w⁺ + x⁻w⁻ positive, x⁺w⁻ + x⁻w⁺ negative) and the bias parts b⁺, b⁻ in the
    matching denominators; stab(·) with ``stabilizer`` (1e-6) guards them against zero.
    ``empty``: "literal" (default, Eq. 60 as written: an empty side contributes nothing, so a
    neuron without negative contributions passes α R_j, one without positive ones −β R_j) or
    "conserve" (all of R_j goes through the non-empty side, so the rule stays conservative).
    """

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6
    empty: str = "literal"
    name = "alpha-beta"
    fresh_result = True

    def __post_init__(self) -> None:
        if self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-12:
            raise ChexplainError(
                f"LRP-alpha-beta needs alpha - beta = 1 and beta >= 0, got alpha={self.alpha}, beta={self.beta}")
        check_empty("LRP-alpha-beta", self.empty)

    def _parts(self, layer: LinearOp, x: Tensor, nonnegative: bool, need_negative: bool) -> SignedSums:
        wp, wn = layer.signed_weights()
        xp, xn = split_sign(x, nonnegative)
        if xn is not None and need_negative and self.empty == "literal":  # two forwards, not four
            z_pos, z_neg = signed_sums(layer, x, xp, xn)
            z_pos, z_neg = layer.add_bias(z_pos, pos_part(layer.bias)), layer.add_bias(z_neg, neg_part(layer.bias))
            return SignedSums(xp, xn, wp, wn, z_pos, z_neg, False)
        z_pos = forward_split(layer, xp, xn, wp, wn, pos_part(layer.bias))  # ≥ 0: positive products and b⁺
        empty_pos = self.empty == "conserve" and bool(z_pos.amin() == 0)
        z_neg = None  # ≤ 0: negative products and b⁻
        if need_negative or empty_pos:
            z_neg = forward_split(layer, xp, xn, wn, wp, neg_part(layer.bias))
        return SignedSums(xp, xn, wp, wn, z_pos, z_neg, empty_pos)

    def prepare(self, layer, x, z, nonnegative=False):
        return self._state(layer, self._parts(layer, x, nonnegative, self.beta != 0))

    def forward_prepare(self, layer, x, nonnegative=False):
        """z = z⁺ + z⁻ (biases included): equal to the layer's output up to rounding."""
        sums = self._parts(layer, x, nonnegative, True)
        z = sums.z_pos + sums.z_neg  # before _state turns z⁺ and z⁻ into their inverses
        return z, self._state(layer, sums)

    def _state(self, layer, sums: SignedSums) -> SignedState:
        xp, xn, wp, wn, z_pos, z_neg = sums.xp, sums.xn, sums.wp, sums.wn, sums.z_pos, sums.z_neg
        empty_pos = sums.empty_pos
        if z_neg is None or (self.beta == 0 and self.empty == "literal"):  # α1β0: the positive side only
            return SignedState(xp, xn, wp, wn, inverse_signed(z_pos, self.stabilizer, 1.0).mul_(self.alpha))
        alpha = beta = None
        if self.empty == "conserve" and (empty_pos or bool(z_neg.amax() == 0)):
            # Eq. 60 where one side is empty, in the limit that keeps the rule conservative
            empty_neg, empty_pos = z_neg == 0, z_pos == 0
            alpha = torch.full_like(z_pos, self.alpha).masked_fill_(empty_neg, 1.0).masked_fill_(empty_pos, 0.0)
            beta = torch.full_like(z_neg, self.beta).masked_fill_(empty_neg, 0.0).masked_fill_(empty_pos, -1.0)
        inv_a = inverse_signed(z_pos, self.stabilizer, 1.0)
        inv_b = inverse_signed(z_neg, self.stabilizer, -1.0)
        if alpha is not None:
            inv_a.mul_(alpha), inv_b.mul_(beta.neg_())
        else:
            inv_a.mul_(self.alpha)
            inv_b = inv_b.mul_(-self.beta) if self.beta else None
        # the β-term enters with its sign folded into inv_b:
        # out = back(w⁺, w⁻, αs⁺) + back(w⁻, w⁺, −βs⁻)
        return SignedState(xp, xn, wp, wn, inv_a, inv_b,
                           None if inv_b is None else weight_pairs(layer, xn, wp, wn))
