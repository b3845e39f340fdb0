"""The model families of the coverage tests and of ``benchmarks/coverage.py``: builders with
random weights (no downloads) and the smallest input each architecture accepts.

``build(name, small=True)``: the tests use the smallest member of each family; three are cut
further to keep the suite fast (documented in ``SMALL_EXCEPTIONS``), and the benchmark builds
the real models (``small=False``). Weights are random; BatchNorm statistics and affine
parameters, LayerNorm parameters and layer scales are randomised so that every shift is
non-zero (:func:`randomize`); :func:`zero_biases` makes the bias-free version of the same
architecture (biases, BatchNorm means and shifts, LayerNorm shifts, embeddings set to zero).
"""

from __future__ import annotations

import re
from typing import Callable

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet

NUM_CLASSES = 5


def _tv(name: str, **kw) -> Callable[[], nn.Module]:
    return lambda: getattr(torchvision.models, name)(weights=None, num_classes=NUM_CLASSES, **kw)


def _timm(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import timm
        return timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES)
    return make


def xrv_densenet() -> nn.Module:
    import torchxrayvision as xrv
    return xrv.models.DenseNet(weights=None)  # 1 channel, 18 outputs, no download without weights


def xrv_resnet() -> nn.Module:
    """torchxrayvision's ResNet-50 without its download: its constructor always loads weights,
    so the instance is assembled as the constructor does (1-channel resnet50, 18 outputs)."""
    import torchxrayvision as xrv
    model = xrv.models.ResNet.__new__(xrv.models.ResNet)
    nn.Module.__init__(model)
    model.weights, model.apply_sigmoid = None, False
    model.model = torchvision.models.resnet50(num_classes=18, weights=None)
    model.model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model.eval()


def _small_vgg() -> nn.Module:
    model = torchvision.models.vgg11(weights=None, num_classes=NUM_CLASSES)
    model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, NUM_CLASSES))
    return model


def _small_alexnet() -> nn.Module:
    model = torchvision.models.alexnet(weights=None, num_classes=NUM_CLASSES)
    model.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 6 * 6, 64), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(64, 64), nn.ReLU(True), nn.Linear(64, NUM_CLASSES))
    return model


#: name → (builder of the real model, (channels, size) of the test input, family group)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], tuple[int, int], str]] = {
    "alexnet": (_tv("alexnet"), (3, 64), "torchvision"),
    "vgg11": (_tv("vgg11"), (3, 32), "torchvision"),
    "resnet18": (_tv("resnet18"), (3, 32), "torchvision"),
    "resnext50_32x4d": (_tv("resnext50_32x4d"), (3, 32), "torchvision"),
    "wide_resnet50_2": (_tv("wide_resnet50_2"), (3, 32), "torchvision"),
    "densenet121": (_tv("densenet121"), (3, 32), "torchvision"),
    "squeezenet1_1": (_tv("squeezenet1_1"), (3, 32), "torchvision"),
    "googlenet": (_tv("googlenet", aux_logits=False, init_weights=False), (3, 32), "torchvision"),
    "inception_v3": (_tv("inception_v3", aux_logits=False, init_weights=False), (3, 75), "torchvision"),
    "mnasnet0_5": (_tv("mnasnet0_5"), (3, 32), "torchvision"),
    "mobilenet_v2": (_tv("mobilenet_v2"), (3, 32), "torchvision"),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small"), (3, 32), "torchvision"),
    "efficientnet_b0": (_tv("efficientnet_b0"), (3, 32), "torchvision"),
    "efficientnet_v2_s": (_tv("efficientnet_v2_s"), (3, 32), "torchvision"),
    "regnet_x_400mf": (_tv("regnet_x_400mf"), (3, 32), "torchvision"),
    "regnet_y_400mf": (_tv("regnet_y_400mf"), (3, 32), "torchvision"),
    "shufflenet_v2_x0_5": (_tv("shufflenet_v2_x0_5"), (3, 32), "torchvision"),
    "convnext_tiny": (_tv("convnext_tiny"), (3, 32), "torchvision"),
    "xrv_densenet": (xrv_densenet, (1, 32), "torchxrayvision"),
    "xrv_resnet": (xrv_resnet, (1, 32), "torchxrayvision"),
    "timm_resnet50": (_timm("resnet50"), (3, 32), "timm"),
    "timm_efficientnet_b0": (_timm("efficientnet_b0"), (3, 32), "timm"),
    "timm_convnext_tiny": (_timm("convnext_tiny"), (3, 32), "timm"),
    "timm_densenet121": (_timm("densenet121"), (3, 32), "timm"),
    "timm_regnety_008": (_timm("regnety_008"), (3, 32), "timm"),
}

#: Test-only reductions (same blocks and ops, fewer or narrower layers), for the suite's time;
#: the real models run in ``benchmarks/coverage.py``.
SMALL_EXCEPTIONS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "alexnet": (_small_alexnet, "classifier 9216-64-64-5 instead of 9216-4096-4096"),
    "vgg11": (_small_vgg, "classifier 25088-64-64-5 instead of 25088-4096-4096"),
    "resnext50_32x4d": (lambda: ResNet(Bottleneck, [1, 1, 1, 1], groups=32, width_per_group=4,
                                       num_classes=NUM_CLASSES), "one bottleneck per stage instead of 3-4-6-3"),
    "wide_resnet50_2": (lambda: ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=128, num_classes=NUM_CLASSES),
                        "one bottleneck per stage instead of 3-4-6-3"),
    "xrv_resnet": (lambda: _xrv_resnet_small(), "one bottleneck per stage instead of 3-4-6-3"),
    "timm_resnet50": (lambda: _timm_small_resnet(), "timm ResNet with one bottleneck per stage"),
}


def _xrv_resnet_small() -> nn.Module:
    model = xrv_resnet()
    model.model = ResNet(Bottleneck, [1, 1, 1, 1], num_classes=18)
    model.model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _timm_small_resnet() -> nn.Module:
    from timm.models.resnet import Bottleneck as TimmBottleneck, ResNet as TimmResNet
    return TimmResNet(TimmBottleneck, [1, 1, 1, 1], num_classes=NUM_CLASSES)


def _tv_vit(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = _tv(name)()
        with torch.no_grad():  # torchvision zero-initialises the head: every relevance would be zero
            model.heads.head.weight.normal_(0.0, 0.02)
        return model
    return make


#: The attention families (branch lrp-attention): real models for benchmarks/coverage.py only; the
#: suite tests small configurations of the same classes (tests/transformer_zoo.py, test_attention.py).
ATTENTION: dict[str, tuple[Callable[[], nn.Module], tuple[int, int], str]] = {
    "vit_b_16": (_tv_vit("vit_b_16"), (3, 224), "torchvision"),
    "swin_t": (_tv("swin_t"), (3, 64), "torchvision"),
    "swin_v2_t": (_tv("swin_v2_t"), (3, 64), "torchvision"),
    "maxvit_t": (_tv("maxvit_t"), (3, 224), "torchvision"),
    "timm_vit_small_patch16_224": (_timm("vit_small_patch16_224"), (3, 224), "timm"),
    "timm_deit_tiny_patch16_224": (_timm("deit_tiny_patch16_224"), (3, 224), "timm"),
    "timm_swin_tiny_patch4_window7_224": (_timm("swin_tiny_patch4_window7_224"), (3, 224), "timm"),
}
ALL = {**FAMILIES, **ATTENTION}


def build(name: str, small: bool = True, seed: int = 0) -> nn.Module:
    """The family's model with random weights and randomised statistics, in eval mode."""
    torch.manual_seed(seed)
    make = SMALL_EXCEPTIONS[name][0] if small and name in SMALL_EXCEPTIONS else ALL[name][0]
    return randomize(make(), seed, input_shape(name)).eval()


def input_shape(name: str) -> tuple[int, int]:
    return ALL[name][1]


#: layer-scale parameter names (ConvNeXt ``gamma``, CaiT ``gamma_1``, XCiT ``gamma1``, EdgeNeXt
#: ``gamma_xca``): initialised near 0 (1e-5, 1e-6), they would leave residual branches too small
#: for a check at ε = 1e-9
_LAYER_SCALE = re.compile(r"layer_scale|gamma(_?\d+|_xca)?")


def randomize(model: nn.Module, seed: int = 0, calibrate: tuple[int, int] | None = None) -> nn.Module:
    """Random BatchNorm statistics and affine parameters (some scales negative), random LayerNorm
    and GroupNorm affine parameters, layer scales (:data:`_LAYER_SCALE`) in [0.5, 1.5]: every shift is non-zero.

    ``calibrate`` (channels, size): the BatchNorm variances are first set by one train-mode
    forward of 8 random inputs (so activations stay of order one through deep random networks,
    where default initialisations make them vanish), then the means and affine parts randomised."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if calibrate is not None and bns:
        c, size = calibrate
        saved = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(torch.randn(8, c, size, size, generator=g))
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    with torch.no_grad():
        for m in bns:
            c = m.num_features
            if calibrate is None:
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5 * m.running_var.sqrt())
            m.weight.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
            m.weight[torch.rand(c, generator=g) < 0.1] *= -1
            m.bias.copy_(torch.randn(c, generator=g) * 0.5)
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
        for name, p in model.named_parameters():
            if _LAYER_SCALE.fullmatch(name.rsplit(".", 1)[-1]):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return model


def zero_biases(model: nn.Module, tokens: bool = True) -> nn.Module:
    """The bias-free version (in place): every bias, BatchNorm mean and shift, LayerNorm and
    GroupNorm shift, and embedding-like parameter (class/distillation tokens, position
    embeddings such as ``pos_embed`` or TNT's ``pixel_pos``/``patch_pos``, relative position
    and attention biases) set to zero, and the parameters of a Fourier position encoding
    (XCiT, EdgeNeXt: a projection of sines of the token grid, an input-independent term added
    to the tokens) too. Only additive terms: layer scales and XCA's temperature stay.
    ``tokens=False`` keeps the class/distillation tokens (concatenated, not added: a model that
    reads its logits from a class token which nothing else reaches, CoaT, has zero logits
    without it)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
            fourier = type(m).__name__.startswith("PositionalEncodingFourier")
            for pname, p in m.named_parameters(recurse=fourier):
                if fourier or "bias" in pname or "embed" in pname or ("token" in pname and tokens) \
                        or pname.startswith("pos_") or pname.endswith("_pos"):
                    p.zero_()
    return model
