"""Grad-CAM family: oracles are Captum's LayerGradCam, pytorch-grad-cam and torch.autograd.grad."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from chexplain.cam.gradcam import GradCAM, explain_cam
from chexplain.errors import ChexplainError, InputError, TargetError, UnsupportedModelError
from chexplain.viz.render import normalize

torch.set_num_threads(1)


def _small_cnn(in_ch: int = 1, classes: int = 14) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_ch, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )  # fmt: skip


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_bn(torchvision.models.resnet18(weights=None, num_classes=14)).double().eval()


@pytest.fixture(scope="module")
def densenet() -> nn.Module:
    torch.manual_seed(1)
    return _randomise_bn(torchvision.models.densenet121(weights=None, num_classes=14)).double().eval()


class _DenseNetOutOfPlace(torchvision.models.DenseNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x), inplace=False)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def _hand_cam(method: str, A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Independent transcription of the papers' equations (no ReLU)."""
    if method == "hirescam":
        return torch.einsum("nkhw,nkhw->nhw", G, A)
    if method == "gradcam":
        w = G.sum((2, 3)) / (G.shape[2] * G.shape[3])
    else:
        S = A.sum((2, 3))[:, :, None, None]
        den = 2 * G**2 + S * G**3
        alpha = torch.where(den == 0, torch.zeros_like(den), G**2 / den)
        w = (alpha * torch.relu(G)).sum((2, 3))
    return torch.einsum("nk,nkhw->nhw", w, A)


def _hand_densenet(model: nn.Module, x: torch.Tensor, cls: list[int], method: str, post_relu: bool) -> torch.Tensor:
    feats = model.features(x).detach().requires_grad_(True)
    a = F.relu(feats)
    logits = model.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
    if post_relu:  # explain the ReLU's output: a fresh leaf after the ReLU
        a = a.detach().requires_grad_(True)
        logits = model.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
        wrt = a
    else:
        wrt = feats
    sel = logits[torch.arange(len(cls)), torch.tensor(cls)].sum()
    (G,) = torch.autograd.grad(sel, wrt)
    return _hand_cam(method, wrt.detach(), G)


# --- Captum: raw maps on the same layer -----------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "vgg16", "cnn1ch"])
def test_raw_maps_equal_captum_layergradcam(arch: str, resnet: nn.Module) -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    torch.manual_seed(2)
    if arch == "resnet18":
        model, layer, ch = resnet, resnet.layer4, 3
    elif arch == "vgg16":
        model = torchvision.models.vgg16(weights=None, num_classes=14)
        model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 14))  # same features, small head
        model = model.double().eval()
        layer, ch = model.features[29], 3
    else:
        model, ch = _randomise_bn(_small_cnn(1)).double().eval(), 1
        layer = model[5]
    x = torch.randn(3, ch, 48, 48, dtype=torch.float64)
    targets = [1, 7, 13]
    ref = LayerGradCam(model, layer).attribute(x, target=targets, relu_attributions=False).detach()
    path = {id(m): n for n, m in model.named_modules()}[id(layer)]
    ours = explain_cam(model, x, target=targets, layer=path, relu=False, upsample=False)
    assert ours.shape == ref[:, 0].shape and ours.dtype == torch.float64
    assert ref.abs().max() > 1e-6  # a meaningful comparison
    assert (ours - ref[:, 0]).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    assert (ours - ref[:, 0]).abs().max() <= 1e-5
    # ReLU + bilinear upsampling = Captum's relu_attributions + LayerAttribution.interpolate
    ref_up = LayerAttribution.interpolate(
        LayerGradCam(model, layer).attribute(x, target=targets, relu_attributions=True), (48, 48), "bilinear"
    ).detach()
    ours_up = GradCAM(model, layer=layer)(x, target=targets)
    assert ours_up.shape == (3, 48, 48)
    assert torch.allclose(ours_up, ref_up[:, 0], atol=1e-10)


def test_default_layers(resnet: nn.Module, densenet: nn.Module) -> None:
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    cams = {name: GradCAM(m) for name, m in [("resnet", resnet), ("densenet", densenet)]}
    shapes = {name: cam(x, target=0).shape for name, cam in cams.items()}
    assert cams["resnet"].layer == "layer4"
    assert cams["densenet"].layer == "relu"  # DenseNet.forward's functional ReLU, after norm5
    assert shapes == {"resnet": (2, 64, 64), "densenet": (2, 64, 64)}
    vgg = torchvision.models.vgg11(weights=None, num_classes=3)
    vgg.classifier = nn.Linear(512 * 49, 3)
    cam = GradCAM(vgg.eval(), upsample=False)
    assert cam(torch.randn(1, 3, 64, 64)).shape == (1, 2, 2)
    assert cam.layer == "features"  # before the adaptive (7x7) pool, not its resampled output


# --- pytorch-grad-cam: normalised maps ------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam"])
def test_normalised_maps_equal_pytorch_grad_cam(method: str) -> None:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(3)
    model = _randomise_bn(torchvision.models.resnet18(weights=None, num_classes=14)).eval()
    with torch.no_grad():  # pytorch-grad-cam adds eps=1e-6 to Grad-CAM++'s denominator: keep G^2 >> eps
        model.fc.weight.mul_(100.0)
    x = torch.randn(3, 3, 64, 64)
    targets = [2, 9, 4]
    cls = {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "hirescam": pgc.HiResCAM}[method]
    with cls(model=model, target_layers=[model.layer4]) as peer:
        ref = peer(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    ours = explain_cam(model, x, method=method, target=targets)
    assert ours.shape == (3, 64, 64) and ours.dtype == torch.float32
    ours_n = np.stack([normalize(m.numpy(), "minmax") for m in ours])
    assert ref.max() == pytest.approx(1.0, abs=1e-4)
    assert np.abs(ours_n - ref).max() <= 1e-3


# --- DenseNet-121: the functional in-place ReLU --------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam"])
def test_densenet_inplace_relu_and_hand_computation(method: str, densenet: nn.Module) -> None:
    out_of_place = _DenseNetOutOfPlace(num_classes=14).double().eval()
    out_of_place.load_state_dict(densenet.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    cls = [3, 11]
    a = explain_cam(densenet, x, method=method, target=cls, relu=False, upsample=False)
    b = explain_cam(out_of_place, x, method=method, target=cls, relu=False, upsample=False)
    hand = _hand_densenet(out_of_place, x, cls, method, post_relu=True)
    assert hand.abs().max() > 1e-8
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert torch.allclose(a, hand, rtol=1e-9, atol=1e-12)
    # norm5 (before the in-place ReLU) is a different, pre-ReLU map and is not clobbered by it
    pre = explain_cam(densenet, x, method=method, target=cls, layer="features.norm5", relu=False, upsample=False)
    hand_pre = _hand_densenet(out_of_place, x, cls, method, post_relu=False)
    assert torch.allclose(pre, hand_pre, rtol=1e-9, atol=1e-12)
    if method == "hirescam":  # G*A is the same before and after a ReLU (G = 0 where A <= 0)
        assert torch.allclose(pre, hand, rtol=1e-9, atol=1e-12)
    else:
        assert not torch.allclose(pre, hand, atol=1e-6)


# --- targets --------------------------------------------------------------------------------


def test_all_topk_classes_equal_per_class_loop(densenet: nn.Module) -> None:
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    cam = GradCAM(densenet, method="gradcam++")
    every = cam(x, target="all")
    assert every.shape == (3, 14, 64, 64)
    for c in range(14):
        assert torch.allclose(every[:, c], cam(x, target=c), rtol=0, atol=1e-12)
    logits = densenet(x)
    top = cam(x, target="topk:3")
    idx = logits.topk(3, dim=1).indices
    for n in range(3):
        for j in range(3):
            assert torch.equal(top[n, j], every[n, idx[n, j]])
    sub = cam(x, classes=[5, 0])
    assert torch.equal(sub, every[:, [5, 0]])
    per = cam(x, target=[4, 2, 9])
    assert torch.equal(per, every[torch.arange(3), torch.tensor([4, 2, 9])])
    assert torch.equal(cam(x), every[torch.arange(3), logits.argmax(1)])


# --- cost: the backward pass stops at the layer; the model is never modified ---------------


def test_prefix_runs_without_autograd(resnet: nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)  # layer4 is 2x2 (at 32 px it is 1x1: layer3 is used)
    cam = GradCAM(resnet)
    cam(x)  # traces once; the trace calls the model's own leaf modules
    seen: dict[str, bool] = {}
    hooks = [
        resnet.layer4[1].bn2.register_forward_hook(lambda m, i, o: seen.__setitem__("prefix", o.requires_grad)),
        resnet.fc.register_forward_hook(lambda m, i, o: seen.__setitem__("head", o.requires_grad)),
    ]
    try:
        cam(x, target="all")
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"prefix": False, "head": True}


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()],
    }


def _same(a: dict, b: dict) -> bool:
    return (
        a["state"].keys() == b["state"].keys()
        and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        and all(a[k] == b[k] for k in ("training", "requires_grad", "hooks"))
        and all(g is None for g in b["grads"])
    )


def test_model_is_never_modified_and_training_mode_warns() -> None:
    torch.manual_seed(4)
    model = _randomise_bn(_small_cnn(3)).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = explain_cam(model.eval(), x, target=1)
    model.train()
    before = _snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        got = explain_cam(model, x, target=1)
    assert torch.equal(got, expected)  # explained in eval mode (BatchNorm running statistics)
    assert _same(before, _snapshot(model))
    with pytest.raises(TargetError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explain_cam(model, x, target=99)
    assert _same(before, _snapshot(model))
    model.eval()
    before = _snapshot(model)
    explain_cam(model, x, target="all", method="hirescam")
    assert _same(before, _snapshot(model))


def test_cache_follows_weight_updates_and_module_replacement() -> None:
    import copy

    torch.manual_seed(5)
    model = _small_cnn(1).double().eval()
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    cam = GradCAM(model, relu=False)
    first = cam(x, target=0)
    assert torch.equal(explain_cam(model, x, target=0, relu=False), first)  # fills the cache
    with torch.no_grad():
        model[8].weight.mul_(-1.0)  # weights are shared: a flipped head flips the map
    assert torch.allclose(cam(x, target=0), -first, atol=1e-12)
    flipped = explain_cam(model, x, target=0, relu=False)
    assert torch.allclose(flipped, -first, atol=1e-12)
    model[8] = nn.Linear(16, 14).double().eval()  # a replaced module: the cached trace is rebuilt
    replaced = explain_cam(model, x, target=0, relu=False)
    assert torch.equal(replaced, GradCAM(copy.deepcopy(model), relu=False)(x, target=0))
    assert torch.equal(cam(x, target=0), replaced)
    assert not torch.allclose(replaced, flipped, atol=1e-6)


# --- other models and the hook fallback -----------------------------------------------------


def test_1d_model_matches_hand_computation() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Conv1d(2, 6, 5, padding=2), nn.ReLU(), nn.Conv1d(6, 8, 3), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 4),
    ).double().eval()  # fmt: skip
    x = torch.randn(3, 2, 40, dtype=torch.float64)
    raw = explain_cam(model, x, target=[0, 3, 1], relu=False, upsample=False)
    A = model[:4](x).detach().requires_grad_(True)
    (G,) = torch.autograd.grad(model[4:](A)[torch.arange(3), torch.tensor([0, 3, 1])].sum(), A)
    assert torch.allclose(raw, (G.mean(2, keepdim=True) * A).sum(1), atol=1e-12)
    assert explain_cam(model, x, target=1).shape == (3, 40)
    assert explain_cam(model, x, classes=[0, 1], upsample=False).shape == (3, 2, 38)


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = _small_cnn(1, 5)[:6]
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e9:  # data-dependent control flow: torch.fx cannot trace this
            x = self.body(x)
        return self.head(x.mean((2, 3)))


def test_untraceable_model_via_module_hooks() -> None:
    torch.manual_seed(7)
    model = _Untraceable().double().eval()
    x = torch.randn(2, 1, 24, 24, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match="layer="):
        explain_cam(model, x)
    before = _snapshot(model)
    got = explain_cam(model, x, layer="body", target=[1, 4], relu=False, upsample=False)
    A = model.body(x).detach().requires_grad_(True)
    (G,) = torch.autograd.grad(model.head(A.mean((2, 3)))[[0, 1], [1, 4]].sum(), A)
    assert torch.allclose(got, _hand_cam("gradcam", A, G), atol=1e-12)
    with pytest.raises(TargetError):
        explain_cam(model, x, layer="body", target=7)
    assert _same(before, _snapshot(model))


# --- user mistakes: one-line errors ---------------------------------------------------------


def test_errors_are_one_line(resnet: nn.Module) -> None:
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    cases = [
        (dict(layer="layer5"), InputError, "did you mean layer4"),
        (dict(layer="fc"), InputError, "not a spatial feature map"),
        (dict(layer="layer4.1.relu"), InputError, "called 2 times"),
        (dict(method="scorecam"), ChexplainError, "unknown Grad-CAM method"),
        (dict(target="topk:99"), TargetError, "K must be"),
        (dict(epsilon=0.1), ChexplainError, "unknown parameter"),
    ]
    for kwargs, err, text in cases:
        with pytest.raises(err, match=text) as info:
            explain_cam(resnet, x, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="float32 but the model is torch.float64"):
        explain_cam(resnet, x.float())
    for bad in (x[0, 0], x[:0]):
        with pytest.raises(InputError, match="non-empty batch"):
            explain_cam(resnet, bad)
    with pytest.raises(InputError, match="forward failed"):
        explain_cam(resnet, torch.randn(1, 1, 32, 32, dtype=torch.float64))
    with pytest.raises(InputError, match="not a submodule"):
        GradCAM(resnet, layer=nn.Conv2d(1, 1, 1))
    assert GradCAM(resnet, layer="layer4_1_relu_1").layer == "layer4"  # a graph node name


def test_public_api_shapes_dtype_inference_mode_and_weak_cache() -> None:
    import gc

    import chexplain
    from chexplain.cam import gradcam as cam_module

    torch.manual_seed(8)
    model = _randomise_bn(_small_cnn(1, 6)).eval()
    x = torch.randn(2, 1, 20, 20)
    via_api = chexplain.explain(model, x, method="hirescam", target=[1, 2], layer="3")
    assert torch.equal(via_api, explain_cam(model, x, method="hirescam", target=[1, 2], layer="3"))
    assert via_api.shape == (2, 20, 20) and via_api.dtype == torch.float32
    assert explain_cam(model, x, classes=[0, 5, 2], upsample=False).shape == (2, 3, 10, 10)
    with torch.inference_mode():
        x_inf = torch.randn(2, 1, 20, 20)
        in_mode = explain_cam(model, x_inf, target=3)
    assert torch.allclose(in_mode, explain_cam(model, x_inf.clone(), target=3))
    assert torch.is_grad_enabled() and model[0].weight.grad is None
    assert model in cam_module._CACHE
    ref = __import__("weakref").ref(model)
    del model
    gc.collect()
    assert ref() is None  # the cache does not keep models alive
