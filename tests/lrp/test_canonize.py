"""Canonization reproduces the original outputs (float64, rtol 1e-5) and merges every BatchNorm."""

import pytest
import torch
import torch.nn as nn
import torchvision

import chexplain
from chexplain.lrp import ops
from chexplain.lrp.values import forward_values as _forward

from .models import FunctionalHeadDenseNet, densenet121, randomize_batchnorm

MODELS = {
    "vgg16_bn": (lambda: torchvision.models.vgg16_bn(weights=None, num_classes=10), (3, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), (3, 48, 48)),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None, num_classes=10), (3, 48, 48)),
    "densenet121": (lambda: densenet121(3), (3, 64, 64)),
    "densenet121-1ch": (lambda: densenet121(1), (1, 64, 64)),
    "functional-head-densenet": (lambda: FunctionalHeadDenseNet(), (1, 40, 40)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_canonized_forward_equals_original(name):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    model = randomize_batchnorm(make(), seed=1).double().eval()
    x = torch.randn(2, *shape, dtype=torch.float64)
    lrp = chexplain.LRP(model, "lrp-epsilon")
    graph = lrp.canonized(x)
    assert not any(isinstance(n.op, ops.AffineOp) for n in graph.nodes), "a BatchNorm was left unmerged"
    got = _forward(graph, x)[graph.output]
    want = model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8 * want.abs().max().item())


def test_densenet_threshold_relu():
    """DenseNet's norm1 (after a concatenation) → relu1 → conv1 becomes T → conv1; norm2 merges into conv1."""
    model = randomize_batchnorm(densenet121(3)).eval()
    graph = chexplain.LRP(model, "lrp-epsilon").canonized(torch.zeros(1, 3, 64, 64))
    by_path = {n.path: n for n in graph.nodes}
    conv1 = by_path["features.denseblock1.denselayer1.conv1"].op
    assert conv1.bias.shape == (128,)  # 1×1 convolution without padding: a constant bias
    kinds = [type(n.op).__name__ for n in graph.nodes if n.path.endswith("denselayer1.relu1")]
    assert kinds == ["ThresholdReLUOp", "OffStateOp"] * 4  # the gate, and its off-state constant
    node = by_path["features.denseblock1.denselayer1.conv1"]
    assert [type(graph.by_name[i].op).__name__ for i in node.inputs] == ["ThresholdReLUOp", "OffStateOp"]
    head = next(n for n in graph.nodes if n.path == "classifier")  # norm5 → relu → pool → flatten → linear
    assert [graph.by_name[i].kind for i in head.inputs] == ["reshape", "reshape"]
    assert "features.norm5" not in by_path and "features.denseblock1.denselayer1.norm2" not in by_path


class _CatBNConv(nn.Module):
    """concat → BN → ReLU → 3×3 conv with zero padding: the BN can only be pushed forward."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 3, 1)
        self.bn = nn.BatchNorm2d(6)
        self.conv = nn.Conv2d(6, 4, 3, padding=1, bias=True)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        return self.fc(torch.flatten(self.conv(y), 1))


def test_spatial_bias_for_padded_convolution():
    torch.manual_seed(2)
    model = randomize_batchnorm(_CatBNConv()).double().eval()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    graph = chexplain.LRP(model, "lrp-epsilon").canonized(x)
    conv = next(n.op for n in graph.nodes if n.path == "conv")
    assert conv.bias.shape == (4, 5, 5)
    assert not torch.allclose(conv.bias[:, 0, 0], conv.bias[:, 2, 2])  # the border sees zero padding
    torch.testing.assert_close(_forward(graph, x)[graph.output], model(x), rtol=1e-10, atol=1e-12)


def test_bn_before_conv_with_zero_scale_channel():
    """A BatchNorm channel with scale 0 (constant ReLU(c) output) is merged exactly too."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1),
                          nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).double().eval()
    randomize_batchnorm(model)
    model[2].weight.data[1] = 0.0
    model[2].bias.data[1] = 0.7
    model[2].weight.data[2] = 0.0
    model[2].bias.data[2] = -0.4
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    graph = chexplain.LRP(model, "lrp-epsilon").canonized(x)
    torch.testing.assert_close(_forward(graph, x)[graph.output], model(x), rtol=1e-10, atol=1e-12)
