"""LRP rules for linear layers (dense, convolution, per-channel affine).

Every rule maps the relevance R_j of a layer's outputs to its inputs,

    R_i = Σ_j  q_ij / Σ_i' q_i'j · R_j,

for a rule-specific contribution q_ij. All are computed with the layer's own transposed
operation: z = Σ_k f(a_k; w_k) + b (a forward with modified inputs a_k and weights w_k),
s = R / stab(z), R_i = Σ_k a_k,i · (w_kᵀ s)_i — never by materialising q_ij.

Shapes: x (N, *in) the layer input, z (N, *out) its output, R (N, T, *out) the relevance of T
targets; a rule returns (N, T, *in).

stab(z) = z + ε·sign(z), with sign(0) = +1 (the convention of Bach et al. 2015 Eq. 58).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import ChexplainError
from .ops import LinearOp

Tensor = torch.Tensor


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """z + ε·sign(z) with sign(0) = +1: safe division, sign preserved."""
    return torch.where(z >= 0, z + epsilon, z - epsilon)


def _vjp(layer: LinearOp, s: Tensor, weight: Tensor, x_shape: torch.Size) -> Tensor:
    n, t = s.shape[:2]
    g = layer.vjp(s.reshape(n * t, *s.shape[2:]), weight, x_shape)
    return g.view(n, t, *g.shape[1:])


def _ratio(R: Tensor, z: Tensor, epsilon: float) -> Tensor:
    return R / stabilize(z, epsilon).unsqueeze(1)


def _split(x: Tensor, nonnegative: bool = False) -> tuple[Tensor, Optional[Tensor]]:
    """(x⁺, x⁻); x⁻ is None when x has no negative entry (the usual case after a ReLU)."""
    if not nonnegative and bool((x < 0).any()):
        return x.clamp(min=0), x.clamp(max=0)
    return x, None


def _z(layer: LinearOp, xp: Tensor, xn: Optional[Tensor], wp: Tensor, wn: Tensor, bias: Optional[Tensor]) -> Tensor:
    """Σ_i x⁺_i w^(p)_ij + Σ_i x⁻_i w^(n)_ij + b_j."""
    z = layer.forward_with(xp, wp, bias)
    if xn is not None:
        z = z + layer.forward_with(xn, wn, None)
    return z


def _back(layer: LinearOp, xp: Tensor, xn: Optional[Tensor], wp: Tensor, wn: Tensor, s: Tensor) -> Tensor:
    """x⁺_i (w^(p)ᵀ s)_i + x⁻_i (w^(n)ᵀ s)_i."""
    r = _vjp(layer, s, wp, xp.shape).mul_(xp.unsqueeze(1))  # in place: no second N·T-sized tensor
    if xn is not None:
        r.add_(_vjp(layer, s, wn, xn.shape).mul_(xn.unsqueeze(1)))
    return r


def _pos(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.clamp(min=0)


def _neg(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.clamp(max=0)


class Rule:
    """A relevance rule for linear layers."""

    name = "rule"

    def __call__(self, layer: LinearOp, x: Tensor, z: Tensor, R: Tensor, nonnegative: bool = False) -> Tensor:
        """Relevance of the inputs; ``nonnegative`` says that x ≥ 0 is known (after a ReLU)."""
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not isinstance(v, Tensor))
        return f"{type(self).__name__}({params})"


@dataclass(repr=False)
class Epsilon(Rule):
    """LRP-ε (Bach et al. 2015, Eq. 58): R_i = Σ_j x_i w_ij / (z_j + ε·sign(z_j)) · R_j, z_j with bias."""

    epsilon: float = 1e-6
    name = "epsilon"

    def __call__(self, layer, x, z, R, nonnegative=False):
        return _vjp(layer, _ratio(R, z, self.epsilon), layer.weight, x.shape).mul_(x.unsqueeze(1))


class Z(Epsilon):
    """LRP-0 (Bach et al. 2015, Eq. 56): LRP-ε with ε only a stabiliser."""

    name = "z"

    def __init__(self, stabilizer: float = 1e-6) -> None:
        super().__init__(epsilon=stabilizer)


@dataclass(repr=False)
class Gamma(Rule):
    """LRP-γ (Montavon et al. 2019, "Layer-wise relevance propagation: an overview", Eq. 4).

    q_ij = x_i (w_ij + γ w_ij⁺) for outputs z_j > 0, generalised to signed inputs and outputs
    by favouring contributions of the output's sign: for z_j > 0 the weights w + γw⁺ act on
    x⁺ and w + γw⁻ on x⁻ (bias b + γb⁺); for z_j < 0 the roles swap (bias b + γb⁻).
    """

    gamma: float = 0.25
    stabilizer: float = 1e-6
    name = "gamma"

    def __call__(self, layer, x, z, R, nonnegative=False):
        w, b, g = layer.weight, layer.bias, self.gamma
        w_pos, w_neg = layer.signed_weights()
        wp, wn = w + g * w_pos, w + g * w_neg
        bp = None if b is None else b + g * b.clamp(min=0)
        bn = None if b is None else b + g * b.clamp(max=0)
        xp, xn = _split(x, nonnegative)
        pos = (z > 0).to(R.dtype).unsqueeze(1)
        s = _ratio(R * pos, _z(layer, xp, xn, wp, wn, bp), self.stabilizer)
        out = _back(layer, xp, xn, wp, wn, s)
        if bool((z < 0).any()):
            neg = (z < 0).to(R.dtype).unsqueeze(1)
            s = _ratio(R * neg, _z(layer, xp, xn, wn, wp, bn), self.stabilizer)
            out = out + _back(layer, xp, xn, wn, wp, s)
        return out


@dataclass(repr=False)
class AlphaBeta(Rule):
    """LRP-αβ (Bach et al. 2015, Eq. 60), α − β = 1, β ≥ 0.

    R_i = Σ_j (α z_ij⁺ / z_j⁺ − β z_ij⁻ / z_j⁻) R_j with z_ij = x_i w_ij split by the sign of the
    product (x⁺w⁺ + x⁻w⁻ positive, x⁺w⁻ + x⁻w⁺ negative) and the bias parts b⁺, b⁻ in the
    matching denominators. A neuron without negative (positive) contributions passes all its
    relevance through the positive (negative) ones, so the rule stays conservative.
    """

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6
    name = "alpha-beta"

    def __post_init__(self) -> None:
        if self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-12:
            raise ChexplainError(
                f"LRP-alpha-beta needs alpha - beta = 1 and beta >= 0, got alpha={self.alpha}, beta={self.beta}")

    def __call__(self, layer, x, z, R, nonnegative=False):
        b = layer.bias
        wp, wn = layer.signed_weights()
        xp, xn = _split(x, nonnegative)
        z_pos = _z(layer, xp, xn, wp, wn, _pos(b))
        # Where one side is empty (z_j⁺ = 0 or z_j⁻ = 0) Eq. 60 is 0/0; the limit that keeps the
        # rule conservative gives the whole R_j to the other side.
        alpha = torch.full_like(z_pos, self.alpha)
        beta = None
        need_negative = self.beta != 0 or bool((z_pos == 0).any())
        if need_negative:
            z_neg = _z(layer, xp, xn, wn, wp, _neg(b))
            empty_neg, empty_pos = z_neg == 0, z_pos == 0
            alpha = torch.where(empty_neg, 1.0, alpha).masked_fill(empty_pos, 0.0)
            beta = torch.where(empty_neg, 0.0, self.beta).to(alpha.dtype).masked_fill(empty_pos, -1.0)
        s = _ratio(R * alpha.unsqueeze(1), z_pos, self.stabilizer)
        out = _back(layer, xp, xn, wp, wn, s)
        if beta is not None:
            s = _ratio(R * beta.unsqueeze(1), z_neg, self.stabilizer)
            out = out - _back(layer, xp, xn, wn, wp, s)
        return out


@dataclass(repr=False)
class ZPlus(Rule):
    """z⁺ (Montavon et al. 2017, Deep Taylor decomposition, Eq. 10): R_i = Σ_j z_ij⁺ / Σ_i z_ij⁺ R_j.

    z_ij⁺ = x_i⁺ w_ij⁺ + x_i⁻ w_ij⁻ (the positive products); biases are ignored. A neuron
    without positive contributions (e.g. a negative logit) passes its relevance through its
    negative ones, so the rule stays conservative.
    """

    stabilizer: float = 1e-6
    name = "z-plus"

    def __call__(self, layer, x, z, R, nonnegative=False):
        wp, wn = layer.signed_weights()
        xp, xn = _split(x, nonnegative)
        z_pos = _z(layer, xp, xn, wp, wn, None)
        out = _back(layer, xp, xn, wp, wn, _ratio(R, z_pos, self.stabilizer))
        empty = z_pos == 0
        if bool(empty.any()):
            s = _ratio(R * empty.to(R.dtype).unsqueeze(1), _z(layer, xp, xn, wn, wp, None), self.stabilizer)
            out = out + _back(layer, xp, xn, wn, wp, s)
        return out


@dataclass(repr=False)
class WSquare(Rule):
    """w² (Montavon et al. 2017, Eq. 12, unbounded inputs): R_i = Σ_j w_ij² / Σ_i w_ij² R_j."""

    stabilizer: float = 1e-6
    name = "w-square"

    def _weight(self, w: Tensor) -> Tensor:
        return w * w

    def __call__(self, layer, x, z, R, nonnegative=False):
        w2 = self._weight(layer.weight)
        ones = torch.ones_like(x)
        s = _ratio(R, layer.forward_with(ones, w2, None), self.stabilizer)
        return _vjp(layer, s, w2, x.shape)


class Flat(WSquare):
    """flat (Lapuschkin et al. 2019): the w² rule with all weights set to one."""

    name = "flat"

    def _weight(self, w: Tensor) -> Tensor:
        return torch.ones_like(w)


@dataclass(repr=False)
class ZBox(Rule):
    """z^B (Montavon et al. 2017, Eq. 14) for inputs bounded by low ≤ x ≤ high (per channel).

    R_i = Σ_j (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) / Σ_i (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) R_j.
    """

    low: object = None
    high: object = None
    stabilizer: float = 1e-6
    name = "z-box"

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

    def __call__(self, layer, x, z, R, nonnegative=False):
        w = layer.weight
        wp, wn = layer.signed_weights()
        low, high = self._bound(self.low, x), self._bound(self.high, x)
        zb = layer.forward_with(x, w, None) - layer.forward_with(low, wp, None) - layer.forward_with(high, wn, None)
        s = _ratio(R, zb, self.stabilizer)
        return (x.unsqueeze(1) * _vjp(layer, s, w, x.shape) - low.unsqueeze(1) * _vjp(layer, s, wp, x.shape)
                - high.unsqueeze(1) * _vjp(layer, s, wn, x.shape))
