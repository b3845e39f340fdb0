"""The ops of the wider timm zoo, each in a small model built here, against oracles (float64):

- the logits of the traced graph are the model's;
- LRP-0 equals gradient × input where theory says so (ReLU networks whose new op is linear:
  F.linear/F.conv, interpolation, signed sums, broadcast sums; with a norm statistic detached
  for GRN; half of it for a product of two degree-1 branches, the uniform bilinear rule);
- bias-free networks conserve relevance;
- the per-neuron formulas of the new rules (signed sum, bilinear product, interpolation);
- in-place tensor methods give the maps of the same model written out of place (LRP, Grad-CAM).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.errors import UnsupportedModelError
from chexplain.lrp.graph import trace
from chexplain.lrp.values import forward_values

from ..families import randomize, zero_biases


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


def lrp0(model: nn.Module, x: torch.Tensor) -> chexplain.lrp.engine.Explanation:
    return chexplain.LRP(model.eval(), "lrp-epsilon", epsilon=1e-12, stabilizer=1e-12).explain(x, target="topk:1")


def grad_x_input(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return g * x.detach()


def assert_logits(model: nn.Module, x: torch.Tensor) -> None:
    graph = trace(model.eval())
    with torch.no_grad():
        got, want = forward_values(graph, x)[graph.output], model(x)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def assert_conserves(res) -> None:
    sums, logits = res.relevance.flatten(1).sum(1), res.logits.gather(1, res.targets)[:, 0]
    assert torch.allclose(sums, logits, rtol=1e-7, atol=1e-12), (sums, logits)


# --------------------------------------------------------------------------- models
class FunctionalLinear(nn.Module):
    """Conv and dense layers written with F.conv2d / F.linear on parameters (timm's Linear)."""

    def __init__(self, functional: bool, bias: bool = True) -> None:
        super().__init__()
        self.functional = functional
        self.c1 = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=bias)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1, groups=2, bias=bias)
        self.fc = nn.Linear(6, 4, bias=bias)

    def forward(self, x):
        if not self.functional:
            return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).mean((2, 3)))
        h = torch.relu(F.conv2d(x, self.c1.weight, self.c1.bias, stride=2, padding=1))
        h = torch.relu(F.conv2d(h, self.c2.weight, self.c2.bias, padding="same", groups=2))
        return F.linear(h.mean((2, 3)), self.fc.weight, self.fc.bias)


class Resample(nn.Module):
    """conv → ReLU → interpolate (bilinear, by size) and Upsample (nearest) → x − avgpool(x)
    (PoolFormer's token mixer, a signed sum) → a broadcast sum x + g(mean(x)) (global context)."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=bias)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.ctx = nn.Conv2d(4, 4, 1, bias=bias)
        self.fc = nn.Linear(4 * 16 * 16, 3, bias=bias)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = F.interpolate(h, size=(12, 12), mode="bilinear", align_corners=False)
        h = self.up(F.interpolate(h, scale_factor=2 / 3, mode="bilinear"))
        h = h - self.pool(h)
        h = h + self.ctx(h.mean((2, 3), keepdim=True))  # (N, C, 1, 1) broadcast
        return self.fc(h.flatten(1))


class Product(nn.Module):
    """Two ReLU branches multiplied (CoaT's q ⊙ conv(v)): f is positively homogeneous of degree 2."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(3, 4, 1, bias=False)
        self.fc = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        return self.fc((torch.relu(self.a(x)) * self.b(x)).mean((2, 3)))


class GRN(nn.Module):
    """ConvNeXt-V2's global response norm (timm's GlobalResponseNorm, channels first)."""

    def __init__(self, detach: bool = False, bias: bool = True) -> None:
        super().__init__()
        from timm.layers.grn import GlobalResponseNorm
        self.c1 = nn.Conv2d(3, 6, 3, padding=1, bias=bias)
        self.grn = GlobalResponseNorm(6, channels_last=False)
        with torch.no_grad():
            self.grn.weight.uniform_(0.5, 1.5)
            self.grn.bias.uniform_(-0.5, 0.5) if bias else self.grn.bias.zero_()
        self.detach = detach
        self.fc = nn.Linear(6, 3, bias=bias)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        if self.detach:  # the oracle: the statistic held constant
            g = h.norm(p=2, dim=(2, 3), keepdim=True).detach()
            n = g / (g.mean(dim=1, keepdim=True) + self.grn.eps)
            h = h + torch.addcmul(self.grn.bias.view(1, -1, 1, 1), self.grn.weight.view(1, -1, 1, 1), h * n)
        else:
            h = self.grn(h)
        return self.fc(h.mean((2, 3)))


# --------------------------------------------------------------------------- tests
def test_functional_linear_layers_are_the_module_layers():
    x = torch.randn(2, 3, 8, 8)
    mod, fn = FunctionalLinear(False), FunctionalLinear(True)
    fn.load_state_dict(mod.state_dict())
    assert_logits(fn, x)
    for preset in ("lrp-epsilon", "epsilon-plus-flat", "lrp-alpha2beta1"):
        a = chexplain.LRP(mod.eval(), preset)(x, target=0)
        b = chexplain.LRP(fn.eval(), preset)(x, target=0)
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14), preset
    bias_free = FunctionalLinear(True, bias=False)
    res = lrp0(bias_free, x)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(bias_free, x, res.targets[:, 0]), atol=1e-12)


def test_interpolation_signed_and_broadcast_sums_lrp0_is_gradient_times_input():
    x = torch.randn(2, 3, 16, 16)
    assert_logits(Resample(), x)
    model = Resample(bias=False)
    res = lrp0(model, x)
    assert_conserves(res)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(model, x, res.targets[:, 0]), atol=1e-10)


def test_product_of_two_branches_uniform_rule_is_half_gradient_times_input():
    x = torch.randn(2, 3, 6, 6)
    model = Product()
    assert_logits(model, x)
    res = lrp0(model, x)
    assert_conserves(res)  # the two halves add up: R_a + R_b = R
    assert torch.allclose(res.relevance[:, 0], 0.5 * grad_x_input(model, x, res.targets[:, 0]), atol=1e-12)


def test_grn_statistic_constant_matches_detached_gradient_times_input():
    x = torch.randn(2, 3, 6, 6)
    assert_logits(GRN(), x)
    model, oracle = GRN(bias=False), GRN(detach=True, bias=False)
    oracle.load_state_dict(model.state_dict())
    res = lrp0(model, x)
    assert_conserves(res)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(oracle, x, res.targets[:, 0]), atol=1e-12)


def _op_relevance(op, inputs, R, stabilizer=1e-3):
    from chexplain.lrp.ops.generic import RelevanceContext
    out = op.forward(*inputs)
    return op.relevance(inputs, out, R, RelevanceContext(stabilizer, {}, False)), out


def _stab(z, eps=1e-3):
    return z + eps * torch.where(z >= 0, 1.0, -1.0)


def test_signed_sum_per_neuron_formula_with_broadcast():
    from chexplain.lrp.ops.generic import SignedSumOp
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 1, 1)
    R = torch.randn(2, 5, 3, 4, 4)
    (parts, _), y = _op_relevance(SignedSumOp((1.0, -1.0)), [a, b], R)
    s = R / _stab(a - b).unsqueeze(1)
    assert torch.allclose(parts[0], a.unsqueeze(1) * s)
    assert torch.allclose(parts[1], (-b.unsqueeze(1) * s).sum((3, 4), keepdim=True))


def test_bilinear_product_per_neuron_formula():
    from chexplain.lrp.ops.attention import BilinearOp
    a, b = torch.randn(2, 3, 4), torch.randn(2, 1, 4)
    R = torch.randn(2, 2, 3, 4)
    op = BilinearOp(torch.mul, (0, 1), None, "product")
    (parts, _), y = _op_relevance(op, [a, b], R)
    share = 0.5 * R * (a * b / _stab(a * b)).unsqueeze(1)  # each term a_i b_i gives half to each factor
    assert torch.allclose(parts[0], share)
    assert torch.allclose(parts[1], share.sum(2, keepdim=True))


def test_interpolation_per_neuron_formula():
    from chexplain.lrp.ops.generic import AffineCallOp
    fn = lambda v: F.interpolate(v, scale_factor=2, mode="bilinear")  # noqa: E731
    x, R = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 2, 6, 6)
    (parts, _), y = _op_relevance(AffineCallOp(fn, fn, 0, "interpolate"), [x], R)
    A = torch.autograd.functional.jacobian(fn, x).reshape(y.numel(), x.numel())  # y = A x
    zij = A * x.reshape(1, -1)  # z_ij = A_ji x_i
    s = R.reshape(2, -1) / _stab(y.reshape(-1))
    want = (zij.unsqueeze(0) * s.unsqueeze(-1)).sum(1)  # Σ_j z_ij R_j / stab(y_j)
    assert torch.allclose(parts[0].reshape(2, -1), want)


# --------------------------------------------------------------------------- in-place methods
class InPlace(nn.Module):
    def __init__(self, inplace: bool, bias: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.c1 = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=bias)
        self.c3 = nn.Conv2d(4, 4, 1, bias=bias)
        self.fc = nn.Linear(4, 3, bias=bias)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h2 = self.c2(h)
        h2 = h2 + h
        g = self.c3(h2)
        if self.inplace:
            h2.relu_()
            h2.mul_(2.0)
            h2.clamp_(max=50.0)
            h2.sub_(0.5)
            h2.div_(3.0)
            h2.add_(h)
            g.sigmoid_()
            h2.mul_(g)
        else:
            h2 = torch.relu(h2)
            h2 = h2 * 2.0
            h2 = h2.clamp(max=50.0)
            h2 = h2 - 0.5
            h2 = h2 / 3.0
            h2 = h2 + h
            g = torch.sigmoid(g)
            h2 = h2 * g
        return self.fc(h2.mean((2, 3)))


def test_in_place_methods_give_the_out_of_place_maps():
    x = torch.randn(2, 3, 8, 8)
    a, b = InPlace(True), InPlace(False)
    b.load_state_dict(a.state_dict())
    assert_logits(a, x)
    for preset in ("lrp-epsilon", "epsilon-plus-flat"):
        assert torch.allclose(chexplain.LRP(a.eval(), preset)(x, target=1),
                              chexplain.LRP(b.eval(), preset)(x, target=1), atol=1e-12)
    cam = [chexplain.GradCAM(m.eval(), layer="add")(x, target=1) for m in (a, b)]
    assert torch.allclose(*cam, atol=1e-12)


def test_in_place_relu_conserves_on_a_bias_free_model():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.fc = nn.Linear(4, 2, bias=False)

        def forward(self, x):
            h = torch.relu(self.c1(x))
            h2 = self.c2(h)
            h2 = h2 + h
            h2.relu_()
            return self.fc(h2.mean((2, 3)))

    x, model = torch.randn(2, 3, 8, 8), M()
    res = lrp0(model, x)
    with torch.no_grad():
        assert torch.allclose(res.logits, model(x))
    assert_conserves(res)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(model, x, res.targets[:, 0]), atol=1e-12)


def test_in_place_write_into_a_view_is_refused_by_name():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            h = self.c(x)
            h[:, :2].relu_()
            return h.mean((2, 3))

    with pytest.raises(UnsupportedModelError, match=r"in-place Tensor\.relu_ .*view"):
        chexplain.LRP(M(), "lrp-epsilon")(torch.randn(1, 3, 4, 4), target=0)


# --------------------------------------------------------------------------- getattr, shape-only modules
class ShapeEncoding(nn.Module):
    """A position encoding computed from the input's shape through a module, cast to a
    parameter's dtype read in forward (EdgeNeXt's PositionalEncodingFourier)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.proj = nn.Conv2d(2, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.c(x)
        grid = torch.ones(h.shape).cumsum(2)[:, :2].to(dtype=self.proj.weight.dtype, device=self.proj.weight.device)
        return self.fc(torch.relu(h + self.proj(grid)).mean((2, 3)))


def test_getattr_on_parameters_and_shape_only_modules():
    x = torch.randn(2, 3, 5, 5)
    model = ShapeEncoding()
    assert_logits(model, x)
    R = chexplain.LRP(model.eval(), "epsilon-plus-flat")(x.float(), target=0)  # graph cast to float32
    assert torch.isfinite(R).all() and R.abs().sum() > 0


# --------------------------------------------------------------------------- timm models
def _timm(name: str, **kw) -> nn.Module:
    import timm
    return timm.create_model(name, pretrained=False, num_classes=3, **kw)


def _convnext_v2() -> nn.Module:
    from timm.models.convnext import ConvNeXt
    return ConvNeXt(num_classes=3, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), use_grn=True, ls_init_value=None, conv_mlp=True)


def _poolformer() -> nn.Module:
    from timm.models.metaformer import MetaFormer
    return MetaFormer(num_classes=3, depths=(1, 1), dims=(8, 16))


def _gc_block() -> nn.Module:
    from timm.layers import GlobalContext
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), GlobalContext(8, fuse_add=True, fuse_scale=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


@pytest.mark.parametrize("make", [lambda: _timm("mobilenetv3_small_050"), lambda: _timm("lcnet_050"),
                                  _convnext_v2, _poolformer, _gc_block],
                         ids=["mobilenetv3_small_050", "lcnet_050", "convnextv2_grn", "poolformer", "gc_block"])
def test_timm_models_explain_with_logits_and_conservation(make):
    x = torch.randn(2, 3, 32, 32)
    model = randomize(make(), calibrate=(3, 32)).eval()
    assert_logits(model, x)
    res = lrp0(zero_biases(model), x)
    assert_conserves(res)


class TalkingHeads(nn.Module):
    """Attention whose weights are mixed over heads by a linear layer after the softmax (CaiT,
    EfficientFormerV2); ``detach``: the oracle with the mixed weights held constant (CP-LRP)."""

    def __init__(self, detach: bool = False) -> None:
        super().__init__()
        self.detach, self.heads = detach, 2
        self.embed = nn.Conv2d(3, 4, 2, stride=2, bias=False)
        self.qkv = nn.Linear(4, 12, bias=False)
        self.mix = nn.Linear(2, 2, bias=False)
        self.fc = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (N, L, 4)
        n, length, _ = t.shape
        q, k, v = self.qkv(t).reshape(n, length, 3, self.heads, 2).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        attn = self.mix(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # mixed over heads
        attn = attn.detach() if self.detach else attn
        return self.fc((attn @ v).transpose(1, 2).reshape(n, length, 4).mean(1))


def test_talking_heads_weights_are_constant_under_cp_lrp():
    x = torch.randn(2, 3, 6, 6)
    model, oracle = TalkingHeads(), TalkingHeads(detach=True)
    oracle.load_state_dict(model.state_dict())
    assert_logits(model, x)
    res = lrp0(model, x)
    assert_conserves(res)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(oracle, x, res.targets[:, 0]), atol=1e-12)


def test_dtype_casts_pass_relevance():
    class Cast(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.fc = nn.Conv2d(3, 4, 3, bias=False), nn.Linear(4, 2, bias=False)

        def forward(self, x):
            h = torch.relu(self.c(x)).to(x.dtype).type_as(x).double()
            return self.fc(h.mean((2, 3)))

    x, model = torch.randn(2, 3, 6, 6), Cast()
    assert_logits(model, x)
    res = lrp0(model, x)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(model, x, res.targets[:, 0]), atol=1e-12)


def test_max_values_over_a_feature_dim_is_winner_takes_all():
    class MaxHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.fc = nn.Conv2d(3, 4, 3, bias=False), nn.Linear(4, 2, bias=False)

        def forward(self, x):
            h = torch.relu(self.c(x)).flatten(2).amax(2)  # (N, 4)
            return self.fc(h.unsqueeze(1).expand(-1, 3, -1).max(1)[0])

    x, model = torch.randn(2, 3, 6, 6), MaxHead()
    assert_logits(model, x)
    res = lrp0(model, x)
    assert_conserves(res)
    assert torch.allclose(res.relevance[:, 0], grad_x_input(model, x, res.targets[:, 0]), atol=1e-12)
