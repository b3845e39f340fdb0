"""Property tests (hypothesis): random bias-free ReLU networks conserve relevance under every
conservative rule, and batched explanations equal per-sample ones."""

import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import chexplain
from chexplain.lrp import rules
from chexplain.lrp.composites import Composite

TINY = 1e-12
# αβ and z⁺ conserve with the fallback for empty sides; Eq. 60 as written (the default) does not
RULES = [rules.Z(TINY), rules.AlphaBeta(1.0, 0.0, TINY, "conserve"), rules.AlphaBeta(2.0, 1.0, TINY, "conserve"),
         rules.ZPlus(TINY, "conserve"), rules.Gamma(0.5, TINY)]


@st.composite
def networks(draw):
    channels = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    kernel = draw(st.sampled_from([1, 3]))
    stride = draw(st.sampled_from([1, 2]))
    layers: list[nn.Module] = []
    c_in = draw(st.integers(1, 3))
    first = c_in
    for c in channels:
        layers += [nn.Conv2d(c_in, c, kernel, stride=stride, padding=kernel // 2, bias=False), nn.ReLU()]
        c_in = c
    pool = draw(st.sampled_from(["max", "avg"]))
    layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, draw(st.integers(2, 4)), bias=False)]
    return nn.Sequential(*layers), first


@settings(max_examples=40, deadline=None)
@given(net=networks(), rule=st.sampled_from(RULES), seed=st.integers(0, 2**16), batch=st.integers(1, 3))
def test_random_relu_networks_conserve(net, rule, seed, batch):
    model, c_in = net
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p)
    model = model.double().eval()
    x = torch.randn(batch, c_in, 12, 12, dtype=torch.float64)
    lrp = chexplain.LRP(model, Composite({"dense": rule, "conv": rule}, stabilizer=TINY))
    res = lrp.explain(x, target="all")
    assert torch.isfinite(res.relevance).all()
    sums = res.relevance.flatten(2).sum(-1)
    scale = res.logits.abs().max().item() + 1e-12
    assert torch.allclose(sums, res.logits, rtol=1e-6, atol=1e-9 * scale), (sums, res.logits)
    for i in range(batch):
        one = lrp(x[i:i + 1], target="all")
        assert torch.allclose(one[0], res.relevance[i], rtol=1e-9, atol=1e-12)
