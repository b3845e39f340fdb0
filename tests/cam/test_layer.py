"""Grad-CAM's automatic layer on every family; oracle: pytorch-grad-cam on the same layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import transformer_zoo as zoo
from chexplain.cam.gradcam import GradCAM, explain_cam
from chexplain.cam.layer import Layout, layout_of, token_grid

torch.set_num_threads(1)
tvm = torchvision.models


def _tv(name: str, **kw) -> nn.Module:
    return getattr(tvm, name)(weights=None, num_classes=5, **kw)


def _resnet(groups: int, width: int) -> nn.Module:  # ResNeXt / Wide ResNet: the family's class, one block a stage
    return tvm.ResNet(tvm.resnet.Bottleneck, [1, 1, 1, 1], num_classes=5, groups=groups, width_per_group=width)


# family -> (model, input size, default layer, map size); every torchvision family, the timm models
FAMILIES = {
    "alexnet": (lambda: _tv("alexnet"), 127, "features", (3, 3)),
    "convnext": (zoo.tv_convnext, 32, "features", (4, 4)),
    "densenet": (lambda: _tv("densenet121"), 64, "relu", (2, 2)),
    "efficientnet": (lambda: _tv("efficientnet_b0"), 64, "features", (2, 2)),
    "efficientnet_v2": (lambda: _tv("efficientnet_v2_s"), 64, "features", (2, 2)),
    "googlenet": (lambda: _tv("googlenet", aux_logits=False, init_weights=False), 64, "inception5b", (2, 2)),
    "inception_v3": (lambda: _tv("inception_v3", aux_logits=False, init_weights=False), 139, "Mixed_7c", (3, 3)),
    "maxvit": (zoo.tv_maxvit, 32, "blocks.1", (4, 4)),
    "mnasnet": (lambda: _tv("mnasnet0_5"), 64, "layers", (2, 2)),
    "mobilenet_v2": (lambda: _tv("mobilenet_v2"), 64, "features", (2, 2)),
    "mobilenet_v3": (lambda: _tv("mobilenet_v3_small"), 64, "features", (2, 2)),
    "regnet_x": (lambda: _tv("regnet_x_400mf"), 64, "trunk_output", (2, 2)),
    "regnet_y": (lambda: _tv("regnet_y_400mf"), 64, "trunk_output", (2, 2)),
    "resnet": (lambda: _tv("resnet18"), 64, "layer4", (2, 2)),
    "resnext": (lambda: _resnet(4, 4), 64, "layer4", (2, 2)),
    "wide_resnet": (lambda: _resnet(1, 16), 64, "layer4", (2, 2)),
    "shufflenet_v2": (lambda: _tv("shufflenet_v2_x0_5"), 64, "conv5", (2, 2)),
    "squeezenet": (lambda: _tv("squeezenet1_1"), 64, "classifier.2", (3, 3)),  # the class maps: CAM's own layer
    "swin": (zoo.tv_swin, 32, "permute", (4, 4)),
    "swin_v2": (lambda: zoo.tv_swin(v2=True), 32, "permute", (4, 4)),
    "vgg": (lambda: tvm.VGG(tvm.vgg.make_layers([8, "M", 16, "M", 512, "M"]), num_classes=5), 32, "features", (4, 4)),
    "vit": (zoo.tv_vit, 32, "encoder.layers.encoder_layer_1.ln_1", (4, 4)),
    "timm_vit": (zoo.timm_vit, 32, "blocks.1.norm1", (4, 4)),
    "timm_deit": (zoo.timm_deit, 32, "blocks.1.norm1", (4, 4)),
    "timm_swin": (zoo.timm_swin, 32, "norm", (4, 4)),
    "timm_mobilenetv3": (lambda: __import__("timm").create_model("mobilenetv3_small_050", num_classes=5), 64, "blocks", (2, 2)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_default_layer_is_the_last_spatial_map(family: str) -> None:
    build, size, layer, grid = FAMILIES[family]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, size, size)
    cam = GradCAM(model, relu=False, upsample=False)
    raw = cam(x, target=[1, 3])
    assert cam.layer == layer
    assert raw.shape == (2, *grid) and min(grid) > 1
    assert torch.isfinite(raw).all() and raw.abs().max() > 0
    named = GradCAM(model, layer=cam.layer, relu=False, upsample=False)  # the layout read from the output's shape
    assert torch.allclose(named(x, target=[1, 3]), raw, rtol=1e-5, atol=1e-6)
    assert explain_cam(model, x, target=1).shape == (2, size, size)


def test_layouts() -> None:
    assert token_grid(196, (224, 224)) == (14, 14) and token_grid(392, (224, 448)) == (14, 28)
    assert token_grid(197, (224, 224)) is None and token_grid(50, (224, 224)) is None
    assert layout_of((1, 768, 7, 7), (224, 224), 1) == Layout("first")
    assert layout_of((1, 7, 7, 768), (224, 224), 1) == Layout("last")
    assert layout_of((1, 768, 1, 1), (224, 224), 1) is None and layout_of((1, 1, 1, 768), (224, 224), 1) is None
    assert layout_of((1, 197, 384), (224, 224), 1) == Layout("tokens", 1)
    assert layout_of((1, 198, 192), (224, 224), 1) == Layout("tokens", 2)  # DeiT's class + distillation token
    assert layout_of((1, 201, 192), (224, 224), 1) == Layout("tokens", 5)  # + 4 registers
    assert layout_of((2, 197, 384), (224, 224), 1) is None  # not the batch
    t = torch.arange(2 * 5 * 3.0).reshape(2, 5, 3)  # a class token + a 2x2 grid, 3 channels
    m = Layout("tokens", 1).to_map(t, (32, 32))
    assert m.shape == (2, 3, 2, 2) and torch.equal(m[1, 2, 1, 0], t[1, 1 + 2, 2])  # token 1 + (1*2+0), channel 2
    assert torch.equal(Layout("last").to_map(t.reshape(2, 1, 5, 3), (8, 32)), t.reshape(2, 1, 5, 3).permute(0, 3, 1, 2))


def _to_map(kind: str, prefix: int = 0):
    def transform(t: torch.Tensor) -> torch.Tensor:  # pytorch-grad-cam's reshape_transform
        if kind == "last":
            return t.permute(0, 3, 1, 2)
        side = int(round((t.shape[1] - prefix) ** 0.5))
        return t[:, prefix:].reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    return transform if kind != "first" else None


# family -> (model, the same layer as a module for pytorch-grad-cam, its reshape_transform)
PEERS = {
    "resnet": (lambda: _tv("resnet18"), lambda m: m.layer4[-1], _to_map("first")),
    "convnext": (zoo.tv_convnext, lambda m: m.features, _to_map("first")),
    "swin": (zoo.tv_swin, lambda m: m.permute, _to_map("first")),
    "vit": (zoo.tv_vit, lambda m: m.encoder.layers[-1].ln_1, _to_map("tokens", 1)),
    "timm_vit": (zoo.timm_vit, lambda m: m.blocks[-1].norm1, _to_map("tokens", 1)),
    "timm_swin": (zoo.timm_swin, lambda m: m.norm, _to_map("last")),
}


@pytest.mark.parametrize("family", sorted(PEERS))
def test_equals_pytorch_grad_cam_on_the_same_layer(family: str) -> None:
    """Also: pytorch-grad-cam's forward hooks stay on the model while we trace it (no cache yet)."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class NoResize(pgc.GradCAM):
        def get_target_width_height(self, input_tensor):  # compare at the layer's resolution
            return None

    build, module, transform = PEERS[family]
    torch.manual_seed(1)
    model = build().double().eval()
    size = 64 if family == "resnet" else 32
    x = torch.randn(3, 3, size, size, dtype=torch.float64)
    targets = [0, 4, 2]
    with NoResize(model=model, target_layers=[module(model)], reshape_transform=transform) as peer:
        ref = peer(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
        ours = GradCAM(model, upsample=False)(x, target=targets)  # traced with the peer's hooks on
    assert ours.shape == ref.shape

    def scale(m: torch.Tensor) -> torch.Tensor:  # its min-max scaling, applied per layer and once more overall
        low = m.amin((1, 2), keepdim=True)
        return (m - low) / (1e-7 + (m - low).amax((1, 2), keepdim=True))

    assert ours.amax() > 1e-4 and ref.max() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(scale(scale(ours)).numpy() - ref).max() <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, layer",
    [
        ("convnext_tiny", "features"), ("inception_v3", "Mixed_7c"), ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1"),
        ("swin_t", "permute"), ("swin_v2_t", "permute"), ("maxvit_t", "blocks.3"), ("vgg11", "features"),
        ("timm:vit_small_patch16_224", "blocks.11.norm1"), ("timm:deit_tiny_patch16_224", "blocks.11.norm1"),
        ("timm:swin_tiny_patch4_window7_224", "norm"), ("timm:mobilenetv3_small_100", "blocks"),
        ("timm:convnext_tiny", "norm_pre"),
    ],
)  # fmt: skip
def test_default_layer_full_size_224px(name: str, layer: str) -> None:
    import timm

    if name.startswith("timm:"):
        model = timm.create_model(name[5:], pretrained=False, num_classes=5)
    else:
        kw = dict(aux_logits=False, init_weights=False) if name == "inception_v3" else {}
        model = _tv(name, **kw)
    size = 299 if name == "inception_v3" else 224
    cam = GradCAM(model.eval(), upsample=False)
    out = cam(torch.randn(1, 3, size, size), target=0)
    assert cam.layer == layer and min(out.shape[1:]) >= 7
