"""Models for the engine tests: the Bach et al. MLPs, a LeNet-style CNN, torchvision nets with
random weights (no downloads) and random BatchNorm statistics, and a DenseNet with a
functional head like torchxrayvision's."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def randomize_batchnorm(model: nn.Module, seed: int = 0, zero_shift: bool = False) -> nn.Module:
    """Random running statistics and affine parameters (negative scales included)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
            m.weight.data[torch.rand(c, generator=g) < 0.1] *= -1
            if zero_shift:
                m.running_mean.zero_()
                m.bias.data.zero_()
            else:
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.5)
    return model


def bach_mlp(widths=(784, 400, 400, 400, 10), act=nn.Tanh, bias=True) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def lenet_avg(bias=True, channels=1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2, bias=bias), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5, bias=bias), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120, bias=bias), nn.ReLU(), nn.Linear(120, 84, bias=bias), nn.ReLU(),
        nn.Linear(84, 10, bias=bias),
    )


class SmallResCNN(nn.Module):
    """Bias-free ReLU CNN with max pooling, a residual sum, a concatenation, functional ops."""

    def __init__(self, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=bias)
        self.conv3 = nn.Conv2d(16, 8, 3, stride=2, padding=1, bias=bias)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5, bias=bias)

    def forward(self, x):
        a = self.pool(F.relu(self.conv1(x)))
        b = F.relu(self.conv2(a)) + a
        c = torch.cat([a, b], dim=1)
        d = F.relu(self.conv3(c), inplace=True)
        d = F.avg_pool2d(d, 2)
        d = F.adaptive_avg_pool2d(d, 1)
        return self.fc(d.view(d.size(0), -1))


def densenet121(channels: int = 3, num_classes: int = 14) -> nn.Module:
    model = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    if channels != 3:
        model.features.conv0 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


class FunctionalHeadDenseNet(nn.Module):
    """The torchxrayvision layout: features, then F.relu → F.adaptive_avg_pool2d → view → classifier."""

    def __init__(self, num_classes: int = 18) -> None:
        super().__init__()
        base = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 3, 2), num_init_features=16,
                                           num_classes=num_classes)
        base.features.conv0 = nn.Conv2d(1, 16, kernel_size=7, stride=2, padding=3, bias=False)
        self.features = base.features
        self.classifier = base.classifier

    def features2(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1)).view(features.size(0), -1)
        return out

    def forward(self, x):
        return self.classifier(self.features2(x))


def small_densenet(num_classes: int = 6) -> nn.Module:
    """A torchvision DenseNet with few layers (same code path as densenet121, faster)."""
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16,
                                       num_classes=num_classes)


def calibrated_batchnorm(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """A trained-looking float64 model: BatchNorm scales U[0.5, 1.5], shifts N(0, 0.5), running
    statistics set by one train-mode forward on random inputs of ``shape`` (then eval mode)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.momentum = 1.0  # the running statistics become this batch's
    model.double().train()
    with torch.no_grad():
        model(torch.randn(8, *shape, generator=g, dtype=torch.float64))
    return model.eval()


def one_block(channels: int = 3, size: int = 8, classes: int = 3) -> nn.Module:
    """BN → ReLU → conv (zero padding) → linear: the BatchNorm can only be pushed forward through
    the ReLU, so the threshold ReLU's off units see the network's input directly."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, 4, 3, padding=1), nn.Flatten(),
                         nn.Linear(4 * size * size, classes))
