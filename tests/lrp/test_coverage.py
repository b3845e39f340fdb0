"""Graph coverage: every supported layer kind, module and functional, through the engine."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.lrp import ops, rules
from chexplain.lrp.composites import Composite
from chexplain.lrp.values import forward_values as _forward

from .models import bach_mlp, randomize_batchnorm


class Zoo1d(nn.Module):
    """Conv1d, BatchNorm1d (merged and standalone), LeakyReLU, tanh, max/avg/adaptive pooling
    (module and functional), mean, dropout (module and functional), identity, flatten, view."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(2, 6, 5, padding=2, bias=bias)
        self.bn1 = nn.BatchNorm1d(6)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(6, 8, 3, dilation=2, padding=2, groups=2, bias=bias)
        self.bn_alone = nn.BatchNorm1d(8)  # after max pooling, before a fork: cannot be merged
        self.avg = nn.AvgPool1d(2)
        self.adapt = nn.AdaptiveAvgPool1d(3)
        self.fc1 = nn.Linear(24, 10, bias=bias)
        self.bn2 = nn.BatchNorm1d(10)
        self.drop = nn.Dropout(0.3)
        self.ident = nn.Identity()
        self.fc2 = nn.Linear(10, 4, bias=bias)
        self.fc3 = nn.Linear(8, 4, bias=bias)

    def forward(self, x):
        h = self.pool(self.act(self.bn1(self.conv1(x))))
        h = self.bn_alone(F.max_pool1d(self.conv2(torch.tanh(h)), 2)).relu()
        side = h.mean(dim=2)  # (N, 8)
        h = self.adapt(self.avg(F.avg_pool1d(h, 1)))
        h = torch.relu(self.bn2(self.fc1(h.view(h.size(0), -1))))
        h = self.ident(F.dropout(self.drop(h), 0.2, training=self.training))
        return self.fc2(h) + self.fc3(side)


def test_zoo_forward_and_rules():
    torch.manual_seed(0)
    model = randomize_batchnorm(Zoo1d()).double().eval()
    model.bn_alone.eps = 1e-5
    x = torch.randn(3, 2, 32, dtype=torch.float64)
    lrp = chexplain.LRP(model, "epsilon-alpha2beta1-flat")
    graph = lrp.canonized(x)
    torch.testing.assert_close(_forward(graph, x)[graph.output], model(x), rtol=1e-10, atol=1e-12)
    kinds = {type(n.op).__name__ for n in graph.nodes}
    assert {"ConvOp", "DenseOp", "AffineOp", "ActivationOp", "MaxPoolOp", "PoolOp", "ReshapeOp", "IdentityOp",
            "AddOp", "MetaOp"} <= kinds
    standalone = [n.path for n in graph.nodes if isinstance(n.op, ops.AffineOp)]
    assert standalone == ["bn_alone"]
    R = lrp(x, target="all")
    assert R.shape == (3, 4, 2, 32) and bool(torch.isfinite(R).all())


@pytest.mark.parametrize("maxpool", ["wta", "proportional"])
def test_zoo_conserves_without_biases(maxpool):
    torch.manual_seed(1)
    model = randomize_batchnorm(Zoo1d(bias=False), zero_shift=True).double().eval()
    x = torch.randn(2, 2, 32, dtype=torch.float64)
    tiny = 1e-12
    comp = Composite({"dense": rules.Z(tiny), "conv": rules.Z(tiny), "affine": rules.Z(tiny)}, maxpool=maxpool,
                     stabilizer=tiny)
    res = chexplain.LRP(model, comp).explain(x, target="all")
    torch.testing.assert_close(res.relevance.flatten(2).sum(-1), res.logits, rtol=1e-7, atol=1e-10)


def test_tanh_mlp_of_bach_et_al():
    """784-400-400-400-10 tanh: relevance passes through tanh; ε rule conserves up to the biases."""
    torch.manual_seed(2)
    model = bach_mlp().double().eval()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64) * 2 - 1
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12).explain(x, target="all", report=True)
    assert res.relevance.shape == (2, 10, 1, 28, 28)
    torch.testing.assert_close(res.report.input_relevance + res.report.absorbed, res.logits, rtol=1e-9, atol=1e-9)
    nobias = bach_mlp(bias=False).double().eval()
    res = chexplain.LRP(nobias, "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12).explain(x, target="all")
    torch.testing.assert_close(res.relevance.flatten(2).sum(-1), res.logits, rtol=1e-7, atol=1e-10)


def test_max_pool_winner_takes_all_and_proportional():
    torch.manual_seed(3)
    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 2, bias=False)).double().eval()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64) + 0.1
    wta = chexplain.explain(model, x, method="lrp-epsilon", target=0, epsilon=1e-12, stabilizer=1e-12)
    prop = chexplain.explain(model, x, method="lrp-epsilon", target=0, epsilon=1e-12, stabilizer=1e-12,
                             maxpool="proportional")
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 1, 4, 4, 4)
    is_max = (windows == windows.amax(-1, keepdim=True)).reshape(1, 1, 4, 4, 2, 2).permute(0, 1, 2, 4, 3, 5)
    is_max = is_max.reshape(1, 1, 8, 8)
    assert bool((wta[~is_max] == 0).all()) and bool((wta[is_max] != 0).all())
    assert bool((prop != 0).all())
    # within a window the proportional rule shares in proportion to the inputs
    ratio = (prop / x).unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 1, 4, 4, 4)
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))
    logit = model(x)[0, 0]
    torch.testing.assert_close(wta.sum(), logit)
    torch.testing.assert_close(prop.sum(), logit)
