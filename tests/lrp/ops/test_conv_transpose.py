"""Transposed convolutions (nn.ConvTranspose1d/2d/3d, F.conv_transpose*) as linear layers:
LRP-0 equals gradient × input on a bias-free ReLU network; every rule agrees with Zennit on a
network that upsamples with a strided, grouped transposed convolution. The per-neuron formulas
of each rule are checked on single layers in ``tests/lrp/rules/test_oracle.py``."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.errors import UnsupportedModelError
from chexplain.lrp import rules
from chexplain.lrp.composites import Composite


class FunctionalUp(nn.Module):
    """A transposed convolution written functionally, its weight a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3, 3, 3) * 0.3)  # groups 2: (C_in, C_out/g, K, K)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, None, stride=2, padding=1, output_padding=1, groups=2)


def _net(bias: bool, functional: bool = False) -> nn.Sequential:
    up = FunctionalUp() if functional else nn.ConvTranspose2d(6, 6, 3, stride=2, padding=1, output_padding=1,
                                                             groups=2, bias=bias)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=bias), nn.ReLU(), up, nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1, dilation=1, bias=bias), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 10 * 10, 5, bias=bias))


@pytest.mark.parametrize("functional", [False, True])
def test_lrp0_equals_gradient_times_input(functional):
    torch.manual_seed(3)
    model = _net(bias=False, functional=functional).double().eval()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    target = torch.tensor([1, 4])
    got = chexplain.explain(model, x, method="lrp-z", target=target)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    (grad,) = torch.autograd.grad(logits[torch.arange(2), target].sum(), xg)
    want = grad * x
    assert want.abs().max() > 1e-3  # the explanation is not trivially zero
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err <= 1e-7, f"relative error {err:.2e}"  # LRP-0's 1e-12 stabiliser at small z


def test_refuses_an_output_size_argument():
    class Sized(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(3, 2, 3, stride=2)

        def forward(self, x):
            return self.up(x, output_size=[10, 10]).flatten(1)

    with pytest.raises(UnsupportedModelError, match="ConvTranspose2d at 'up'.*output_size"):
        chexplain.LRP(Sized().eval(), "lrp-z")


zennit = pytest.importorskip("zennit")
from zennit.attribution import Gradient  # noqa: E402
from zennit.composites import LayerMapComposite  # noqa: E402
from zennit.rules import AlphaBeta, Epsilon, Gamma, Pass, WSquare, ZPlus  # noqa: E402
from zennit.types import Activation  # noqa: E402

CASES = {
    "epsilon": (lambda: Epsilon(1e-3), lambda: rules.Epsilon(1e-3)),
    "zplus": (lambda: ZPlus(zero_params="bias"), lambda: rules.ZPlus()),
    "alpha2beta1": (lambda: AlphaBeta(2.0, 1.0), lambda: rules.AlphaBeta(2, 1)),
    "gamma": (lambda: Gamma(0.25), lambda: rules.Gamma(0.25)),
    "wsquare": (lambda: WSquare(zero_params="bias"), lambda: rules.WSquare()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_zennit(case):
    torch.manual_seed(5)
    model = _net(bias=True).double().eval()
    for m in model.modules():
        if getattr(m, "bias", None) is not None:
            nn.init.uniform_(m.bias, -0.3, 0.3)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    target = torch.tensor([0, 3])
    with torch.no_grad():
        logits = model(x)
    grad_out = torch.zeros_like(logits)
    grad_out[torch.arange(2), target] = logits[torch.arange(2), target]
    theirs, ours = CASES[case]
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    composite = LayerMapComposite(layer_map=[(Activation, Pass()), (layers, theirs())])
    with Gradient(model=model, composite=composite) as attributor:
        _, want = attributor(x.clone(), grad_out)
    rule = ours()
    got = chexplain.LRP(model, Composite({"dense": rule, "conv": rule}))(x, target=target)
    assert want.abs().max() > 1e-3
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err <= 1e-8, f"{case}: relative error {err:.2e}"
