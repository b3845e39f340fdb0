"""LRP rules for linear layers (dense, convolution, per-channel affine).

Every rule maps the relevance R_j of a layer's outputs to its inputs,

    R_i = Σ_j  q_ij / Σ_i' q_i'j · R_j,

for a rule-specific contribution q_ij. All are computed with the layer's own transposed
operation: z = Σ_k f(a_k; w_k) + b (a forward with modified inputs a_k and weights w_k),
s = R / stab(z), R_i = Σ_k a_k,i · (w_kᵀ s)_i — never by materialising q_ij.

Shapes: x (N, *in) the layer input, z (N, *out) its output, R (N, T, *out) the relevance of T
targets; a rule returns (N, T, *in).

Every rule is linear in R: ``prepare`` computes what does not depend on R (modified forwards,
1/stab(z), masks) once per layer and explanation, ``apply`` maps any number of targets, so that
the engine can process targets in chunks without repeating the forwards.

stab(z) = z + ε·sign(z), with sign(0) = +1 (the convention of Bach et al. 2015 Eq. 58).
Stabilisers: LRP-ε's ε is a parameter of the method; in every other rule ε (``stabilizer``)
only keeps denominators away from zero: 1e-12 for LRP-0 (so it is Eq. 56, not LRP-ε with a
small ε), 1e-6 for γ, αβ, z⁺, w², flat and z^B (as in Zennit, whose denominators are sums of
same-signed terms, where ε matters only when they vanish).

Empty sides (αβ, z⁺): where a neuron has no positive (negative) contributions the literal
formula gives that side nothing (its numerators are zero), as in Bach et al. 2015 Eq. 60, the
LRP Toolbox, Zennit and iNNvestigate; ``empty="conserve"`` instead sends all of R_j through
the other side, which keeps the rule conservative (chexplain's earlier default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..errors import ChexplainError
from .ops_linear import LinearOp
from .rule_parts import (SignedState, forward_split, fusable, inverse, inverse_signed, neg_part, pos_part,
                         scaled, signed_sums, split_sign, vjp, weight_pairs)

Tensor = torch.Tensor
#: LRP-0's default stabiliser: only a guard against division by zero
LRP0_STABILIZER = 1e-12
EMPTY_MODES = ("literal", "conserve")


def _check_empty(rule: str, empty: str) -> None:
    if empty not in EMPTY_MODES:
        raise ChexplainError(f"{rule}: empty must be 'literal' (Bach et al. 2015 Eq. 60) or 'conserve', got {empty!r}")


class Rule:
    """A relevance rule for linear layers."""

    name = "rule"
    #: whether the rule reads ``layer.bias`` (False: it takes the bias from z only)
    uses_bias = True
    #: whether ``prepare`` reads the layer's output z (False: a ReLU after the layer may then
    #: overwrite it, see :func:`chexplain.lrp.values.inplace_relus`)
    uses_output = True
    #: whether ``apply`` returns a tensor it allocated, which the engine may add into in place
    fresh_result = False

    def prepare(self, layer: LinearOp, x: Tensor, z: Tensor, nonnegative: bool = False) -> Any:
        """What does not depend on R (once per layer); ``nonnegative``: x ≥ 0 is known."""
        raise NotImplementedError  # pragma: no cover

    def apply(self, layer: LinearOp, x: Tensor, state: Any, R: Tensor) -> Tensor:
        """Relevance of the inputs (N, T, *in) for R (N, T, *out)."""
        raise NotImplementedError  # pragma: no cover

    def forward_prepare(self, layer: LinearOp, x: Tensor, nonnegative: bool = False) -> Optional[tuple[Tensor, Any]]:
        """(z, state) when the rule's modified forwards also give the layer's output z (saving
        its own forward), else None."""
        return None

    def __call__(self, layer: LinearOp, x: Tensor, z: Tensor, R: Tensor, nonnegative: bool = False) -> Tensor:
        return self.apply(layer, x, self.prepare(layer, x, z, nonnegative), R)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not isinstance(v, Tensor))
        return f"{type(self).__name__}({params})"


class SignedRule(Rule):
    """A rule whose state is a :class:`~chexplain.lrp.rule_parts.SignedState` (γ, αβ, z⁺): the
    relevance of the inputs is its :meth:`~chexplain.lrp.rule_parts.SignedState.back`."""

    def apply(self, layer, x, state: SignedState, R):
        return state.back(layer, R)


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
        _check_empty("LRP-alpha-beta", self.empty)

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
        _check_empty("z-plus", self.empty)

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
