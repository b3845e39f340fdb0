"""Zennit (test-only oracle) agrees on vgg16_bn, resnet18 and resnet50 with its canonizers
(≤ 1e-5 relative) for every rule both libraries have: LRP-0 (Zennit's ε with ε = 1e-12), ε, z⁺,
αβ (Zennit applies Eq. 60 literally, chexplain's default), γ, w², flat and z^B. Zennit 1.0.0
needs Python ≥ 3.11.11 and does not install here, so the oracle is Zennit 0.5.1.

Zennit 0.5.1's BatchNorm merge leaves ``eps`` in the BatchNorm it turns into an identity, which
then scales by (1 + eps)^-1/2 (about 5e-6 per layer); the models here use eps = 0 so that
both libraries explain the same function.

Rules are matched to their definitions: chexplain's z⁺ and w² ignore biases (Montavon et al.
2017), which is Zennit's ``zero_params="bias"``; Zennit's ε, αβ, γ keep them, as chexplain does.
"""

import pytest
import torch
import torchvision

zennit = pytest.importorskip("zennit")
from zennit.attribution import Gradient  # noqa: E402
from zennit.layer import Sum  # noqa: E402
from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite  # noqa: E402
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZBox, ZPlus  # noqa: E402
from zennit.torchvision import ResNetCanonizer, VGGCanonizer  # noqa: E402
from zennit.types import Activation, AvgPool, Convolution, Linear  # noqa: E402

import chexplain  # noqa: E402
from chexplain.lrp import rules  # noqa: E402
from chexplain.lrp.composites import Composite  # noqa: E402

from .models import randomize_batchnorm  # noqa: E402

LOW, HIGH = -2.5, 2.8
# name -> (zennit rule for all linear layers, zennit first-layer rule, chexplain composite)
CASES = {
    "lrp-0": (lambda: Epsilon(1e-12), None, "lrp-z"),
    "epsilon": (lambda: Epsilon(0.25), None, Composite({"dense": rules.Epsilon(0.25), "conv": rules.Epsilon(0.25)})),
    "zplus": (lambda: ZPlus(zero_params="bias"), None, Composite({"dense": rules.ZPlus(), "conv": rules.ZPlus()})),
    "alpha1beta0": (lambda: AlphaBeta(1.0, 0.0), None,
                    Composite({"dense": rules.AlphaBeta(1, 0), "conv": rules.AlphaBeta(1, 0)})),
    "alpha2beta1": (lambda: AlphaBeta(2.0, 1.0), None,
                    Composite({"dense": rules.AlphaBeta(2, 1), "conv": rules.AlphaBeta(2, 1)})),
    "gamma": (lambda: Gamma(0.25), None, Composite({"dense": rules.Gamma(0.25), "conv": rules.Gamma(0.25)})),
    "epsilon-plus-flat": (None, lambda: Flat(), None),
    "zplus-wsquare": (lambda: ZPlus(zero_params="bias"), lambda: WSquare(zero_params="bias"),
                      Composite({"dense": rules.ZPlus(), "conv": rules.ZPlus()}, first=rules.WSquare())),
    "epsilon-gamma-box": (None, lambda: ZBox(LOW, HIGH), None),
}
NETS = {
    "vgg16_bn": (lambda: torchvision.models.vgg16_bn(weights=None, num_classes=10), VGGCanonizer, (3, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), ResNetCanonizer, (3, 40, 40)),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None, num_classes=10), ResNetCanonizer, (3, 32, 32)),
}


def _zennit_composite(case, canonizer):
    rule, first, _ = CASES[case]
    tiny = 1e-12 if case == "lrp-0" else 1e-6  # lrp-z's proportional rules only guard against 0 too
    base = [(Activation, Pass()), (Sum, Norm(tiny)), (AvgPool, Norm(tiny))]
    if case == "epsilon-plus-flat":
        layer_map = base + [(Convolution, ZPlus(zero_params="bias")), (torch.nn.Linear, Epsilon())]
    elif case == "epsilon-gamma-box":
        layer_map = base + [(Convolution, Gamma(0.25)), (torch.nn.Linear, Epsilon())]
    else:
        layer_map = base + [(Linear, rule())]
    if first is None:
        return LayerMapComposite(layer_map=layer_map, canonizers=[canonizer()])
    return SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=[(Linear, first())], canonizers=[canonizer()])


def _ours(case):
    if case == "epsilon-plus-flat":
        return "epsilon-plus-flat", {}
    if case == "epsilon-gamma-box":
        return "epsilon-gamma-box", {"low": LOW, "high": HIGH}
    if case == "lrp-0":
        return "lrp-z", {}
    return CASES[case][2], {}


@pytest.fixture(scope="module", params=list(NETS))
def net(request):
    make, canonizer, shape = NETS[request.param]
    torch.manual_seed(11)
    model = randomize_batchnorm(make(), seed=2).double().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 0.0
    x = (torch.rand(2, *shape, dtype=torch.float64) * (HIGH - LOW) + LOW)
    return request.param, model, canonizer, x


@pytest.mark.parametrize("case", list(CASES))
def test_matches_zennit(net, case):
    name, model, canonizer, x = net
    target = torch.tensor([3, 7])
    with torch.no_grad():
        logits = model(x)
    grad_out = torch.zeros_like(logits)
    grad_out[torch.arange(2), target] = logits[torch.arange(2), target]
    with Gradient(model=model, composite=_zennit_composite(case, canonizer)) as attributor:
        _, want = attributor(x.clone(), grad_out)
    composite, params = _ours(case)
    got = chexplain.explain(model, x, method=composite, target=target, **params) if isinstance(composite, str) \
        else chexplain.LRP(model, composite)(x, target=target)
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err <= 1e-5, f"{name}/{case}: relative error {err:.2e}"
