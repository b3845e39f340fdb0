"""Conservation (Bach et al. 2015, Eq. 2) and LRP-0 = gradient × input on bias-free ReLU nets."""

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.lrp import rules
from chexplain.lrp.composites import Composite

from .models import SmallResCNN, bach_mlp, densenet121, lenet_avg, randomize_batchnorm

TINY = 1e-12
CONSERVATIVE = {
    "z": rules.Z(TINY),
    "epsilon->0": rules.Epsilon(TINY),
    # αβ and z⁺ with the conservative fallback for empty sides (empty="conserve"); Eq. 60 as
    # written, the default, passes α·R_j (or nothing) where one side is empty
    "alpha1beta0": rules.AlphaBeta(1.0, 0.0, TINY, "conserve"),
    "alpha2beta1": rules.AlphaBeta(2.0, 1.0, TINY, "conserve"),
    "zplus": rules.ZPlus(TINY, "conserve"),
    "wsquare": rules.WSquare(TINY),
    "flat": rules.Flat(TINY),
    "gamma": rules.Gamma(0.25, TINY),
}
NETS = {
    "bach-relu-mlp": (lambda: bach_mlp((784, 1296, 1296, 1296, 10), nn.ReLU, bias=False), (1, 28, 28)),
    "lenet-avgpool": (lambda: lenet_avg(bias=False), (1, 28, 28)),
    "res-cat-maxpool-cnn": (lambda: SmallResCNN(bias=False), (3, 16, 16)),
}


def _composite(rule_name, net):
    rule = CONSERVATIVE[rule_name]
    if rule_name in ("wsquare", "flat") and net != "bach-relu-mlp":
        # input-layer rules: they give relevance to inactive neurons, which pooling cannot pass on
        return Composite({"dense": rules.Z(TINY), "conv": rules.Z(TINY)}, first=rule, stabilizer=TINY)
    return Composite({"dense": rule, "conv": rule, "affine": rule}, stabilizer=TINY)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("rule", list(CONSERVATIVE))
def test_input_relevance_sums_to_logit(net, rule):
    torch.manual_seed(5)
    make, shape = NETS[net]
    model = make().double().eval()
    x = torch.rand(3, *shape, dtype=torch.float64) * 2 - 0.5  # mixed-sign input
    res = chexplain.LRP(model, _composite(rule, net)).explain(x, target="all")
    sums = res.relevance.flatten(2).sum(-1)
    torch.testing.assert_close(sums, res.logits, rtol=1e-6, atol=1e-9 * res.logits.abs().max().item())


@pytest.mark.parametrize("net", list(NETS))
def test_lrp0_equals_gradient_times_input(net):
    torch.manual_seed(6)
    make, shape = NETS[net]
    model = make().double().eval()
    x = torch.randn(2, *shape, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([3, 1])
    out = model(x)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    R = chexplain.explain(model, x.detach(), method="lrp-z", target=target, stabilizer=TINY)
    torch.testing.assert_close(R, grad * x.detach(), rtol=1e-7, atol=1e-10)


def test_report_accounts_for_bias_absorption():
    """With biases the per-layer report says what each layer absorbs; the totals add up."""
    torch.manual_seed(7)
    model = bach_mlp((20, 16, 12, 5), nn.ReLU, bias=True).double().eval()
    x = torch.randn(4, 20, dtype=torch.float64)
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=TINY, stabilizer=TINY).explain(x, target="all", report=True)
    rep = res.report
    assert [r.path for r in rep.layers] == ["3", "1", "0"][::-1][::-1] or len(rep.layers) == 3
    absorbed = sum(r.absorbed for r in rep.layers)
    torch.testing.assert_close(absorbed, rep.absorbed, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(rep.input_relevance, res.relevance.flatten(2).sum(-1))
    # the output layer (LRP-0): what it absorbs is exactly the target's bias, b_t R_t / z_t = b_t
    top = rep.layers[0]
    assert top.path == "5"
    torch.testing.assert_close(top.absorbed, model[5].bias.detach().expand(4, 5), rtol=1e-8, atol=1e-10)
    # a layer's incoming relevance is what the layer above passed on
    for upper, lower in zip(rep.layers, rep.layers[1:]):
        torch.testing.assert_close(lower.relevance_out, upper.relevance_in, rtol=1e-9, atol=1e-12)
    assert "absorbed" in rep.table()


def _zero_shift_densenet(channels):
    model = randomize_batchnorm(densenet121(channels), seed=3, zero_shift=True).eval()
    nn.init.zeros_(model.classifier.bias)
    return model


@pytest.mark.parametrize("channels", [3, 1])
def test_densenet121_conservation_without_shifts(channels):
    """All BatchNorm shifts and means zero, ε = 1e-9: the input relevance sums to the logit."""
    torch.manual_seed(8)
    model = _zero_shift_densenet(channels).double()
    x = torch.randn(2, channels, 64, 64, dtype=torch.float64)
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9).explain(x, classes=[0, 7, 13])
    sums = res.relevance.flatten(2).sum(-1)
    torch.testing.assert_close(sums, res.logits.gather(1, res.targets), rtol=1e-5, atol=1e-7)


PRESET_PARAMS = {"dtd": {"low": -2.2, "high": 2.7}, "epsilon-gamma-box": {"low": -2.2, "high": 2.7}}


@pytest.mark.parametrize("preset", sorted(chexplain.PRESETS))
def test_densenet121_every_preset_is_finite(preset):
    torch.manual_seed(9)
    model = randomize_batchnorm(densenet121(3), seed=4).eval()
    x = torch.randn(2, 3, 64, 64)
    R = chexplain.explain(model, x, method=preset, target="topk:2", **PRESET_PARAMS.get(preset, {}))
    assert R.shape == (2, 2, 3, 64, 64) and R.dtype == torch.float32
    assert bool(torch.isfinite(R).all()) and R.abs().sum() > 0
