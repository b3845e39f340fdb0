"""The worked example of docs/engine.md ("Adding a rule or an operation"), run: a new rule is
one class used in a Composite, a new operation one converter registered for its module; both
checked against the per-neuron formulas computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.errors import UnsupportedModelError
from chexplain.lrp import registry
from chexplain.lrp.composites import Composite
from chexplain.lrp.ops_base import Op
from chexplain.lrp.rule_parts import inverse, scaled, vjp
from chexplain.lrp.rules import Rule


# --- the new rule: LRP-ε whose denominators leave the bias out ------------------------------
@dataclass(repr=False)
class EpsilonNoBias(Rule):
    """R_i = Σ_j x_i w_ij / (Σ_i' x_i' w_i'j + ε·sign) · R_j: conservative with biases too."""

    epsilon: float = 1e-9
    name = "epsilon-no-bias"
    uses_bias = False

    def prepare(self, layer, x, z, nonnegative=False):
        return inverse(layer.forward_with(x, layer.weight, None), self.epsilon)

    def apply(self, layer, x, state, R):
        return vjp(layer, scaled(R, state), layer.weight, x.shape).mul_(x.unsqueeze(1))


# --- the new operation: Softsign, relevance passed through as for every activation ---------
class SoftsignOp(Op):
    kind = "activation"

    def forward(self, x):
        return F.softsign(x)

    def relevance(self, inputs, out, R, ctx):
        return [R], "identity (activation)"


def softsign_converter(ctx: registry.Context) -> Op:
    return SoftsignOp()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Softsign(), nn.Linear(5, 3)).double().eval()


def test_softsign_is_refused_until_its_converter_is_registered(monkeypatch):
    model, x = _model(), torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match="Softsign at '1'"):
        chexplain.explain(model, x, method="lrp-epsilon", target=0)
    monkeypatch.setitem(registry.MODULES, nn.Softsign, softsign_converter)
    R = chexplain.explain(model, x, method="lrp-epsilon", target=0)
    assert R.shape == x.shape and torch.isfinite(R).all()


def test_the_new_rule_and_op_match_the_formulas_by_hand(monkeypatch):
    monkeypatch.setitem(registry.MODULES, nn.Softsign, softsign_converter)
    model, x = _model(), torch.randn(3, 4, dtype=torch.float64)
    R = chexplain.LRP(model, composite=Composite({"dense": EpsilonNoBias()}))(x, target=0)
    W1, W2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    b1 = model[0].bias.detach().numpy()
    xs = x.numpy()
    a = xs @ W1.T + b1
    h = a / (1 + np.abs(a))
    out = model(x)[:, 0].detach().numpy()
    z2 = h @ W2[0]  # no bias in the denominator
    R_h = h * W2[0] / z2[:, None] * out[:, None]
    z1 = xs @ W1.T
    want = xs * ((R_h / z1) @ W1)
    assert np.allclose(R.numpy(), want, rtol=1e-6, atol=1e-12)  # ε = 1e-9 in the denominators
    assert np.allclose(R.sum(1).numpy(), out, rtol=1e-6)  # conservative despite the biases
