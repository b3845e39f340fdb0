"""Each new op rule against its per-neuron formula, written out with explicit contributions
z_ij (float64, ≤ 1e-8): activations pass R; gates and layer scale R_x = x c R / stab(x c);
shifts R_x = x R / stab(x + c); LayerNorm / GroupNorm with σ constant
R_i = Σ_j x_i A_ji R_j / stab(y_j), A_ji = w_j / σ (δ_ij − 1/m); functional BatchNorm
R_i = x_i a_i R_i / stab(a_i x_i + c_i); index ops move each R_j to the input it came from.

The networks end in a dense layer explained with LRP-ε (ε = 0.05); the proportional rules use
the stabiliser 1e-3, large enough that a wrong stabiliser would show."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.lrp import rules
from chexplain.lrp.composites import Composite

EPS, STAB = 0.05, 1e-3
COMPOSITE = Composite({"dense": rules.Epsilon(EPS), "conv": rules.Epsilon(EPS), "affine": rules.Epsilon(EPS)},
                      stabilizer=STAB)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0)


def dense_eps(a: torch.Tensor, fc: nn.Linear, R: torch.Tensor) -> torch.Tensor:
    """Eq. 58 with explicit z_ij = a_i w_ji: a (N, I), R (N, J) → (N, I)."""
    zij = a[:, None, :] * fc.weight[None]  # (N, J, I)
    z = zij.sum(-1) + fc.bias
    return (zij / stab(z, EPS)[..., None] * R[..., None]).sum(1)


def top(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    R = torch.zeros_like(out)
    return R.scatter_(1, target[:, None], out.gather(1, target[:, None]))


def explain(model, x, target):
    return chexplain.LRP(model.eval(), COMPOSITE)(x, target=target)


class Head(nn.Module):
    """h = body(x), a dense layer on flatten(h); ``value(x)`` gives h for the formulas."""

    def __init__(self, body, features: int) -> None:
        super().__init__()
        self.body, self.fc = body, nn.Linear(features, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))

    def relevance_of_h(self, x, target):
        h = self.body(x).flatten(1)
        return dense_eps(h, self.fc, top(self.fc(h), target)).view_as(self.body(x))


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


ACTIVATIONS = [nn.SiLU(), nn.GELU(), nn.GELU("tanh"), nn.Hardswish(), nn.ReLU6(), nn.ELU(), nn.Mish(),
               nn.Hardtanh(-0.5, 0.7), nn.Sigmoid(), nn.Tanh(), nn.Softplus(),
               nn.ReLU6(inplace=True), nn.SiLU(inplace=True), nn.Hardswish(inplace=True)]  # in place: the
# layer output below must not be overwritten


class ActNet(nn.Module):
    def __init__(self, act) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(6, 5), act, nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda m: repr(m))
def test_activation_passes_relevance(act):
    torch.manual_seed(0)
    model = ActNet(act).eval()
    x, target = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    h = model.fc1(x)
    R_h = dense_eps(model.act(h), model.fc2, top(model(x), target))  # R at the activation = R below it
    want = dense_eps(x, model.fc1, R_h)
    torch.testing.assert_close(explain(model, x, target), want, rtol=1e-8, atol=1e-10)


class Gated(nn.Module):
    def __init__(self, form: str) -> None:
        super().__init__()
        self.form, self.se, self.sig = form, nn.Linear(3, 3), nn.Sigmoid()

    def forward(self, x):
        if self.form == "silu-as-product":
            return x * torch.sigmoid(x)
        s = self.se(x.mean((2, 3)))
        if self.form == "module":
            return self.sig(s).view(-1, 3, 1, 1) * x
        g = torch.sigmoid(s) if self.form == "functional" else s.sigmoid()
        return x * g[:, :, None, None]


@pytest.mark.parametrize("form", ["module", "functional", "method", "silu-as-product"])
def test_gate_weights_the_signal(form):
    """y = x · g with g = sigmoid(W mean(x)) (squeeze-excitation) or x · sigmoid(x): R_x = x g R / stab(x g)."""
    torch.manual_seed(1)
    model = Head(Gated(form), 3 * 4 * 4)
    x, target = torch.randn(2, 3, 4, 4), torch.tensor([2, 0])
    y = model.body(x)
    want = y / stab(y, STAB) * model.relevance_of_h(x, target)  # x g R / stab(x g)
    torch.testing.assert_close(explain(model, x, target), want, rtol=1e-8, atol=1e-10)


class LayerScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.randn(3, 1, 1))
        self.pos = nn.Parameter(torch.randn(3, 4, 4))

    def forward(self, x):
        return self.gamma * x + self.pos


def test_layer_scale_and_additive_parameter():
    """y = γ x + p with γ, p read in forward: R_x = γ x / stab(γ x) · (γ x) R / stab(γ x + p)·…"""
    torch.manual_seed(2)
    body = LayerScale()
    model = Head(body, 48)
    x, target = torch.randn(2, 3, 4, 4), torch.tensor([1, 2])
    R_y = model.relevance_of_h(x, target)
    u = body.gamma * x
    R_u = u * R_y / stab(u + body.pos, STAB)  # the shift p absorbs p R / stab(y)
    want = u / stab(u, STAB) * R_u
    res = chexplain.LRP(model.eval(), COMPOSITE).explain(x, target=target, report=True)
    torch.testing.assert_close(res.relevance, want, rtol=1e-8, atol=1e-10)
    rep = res.report
    torch.testing.assert_close(rep.input_relevance + sum(r.absorbed for r in rep.layers), rep.logits)


def _norm_formula(x, R_y, y, w, groups_of, rstd):
    """R_i = Σ_j x_i A_ji R_j / stab(y_j), A_ji = w_j rstd_j (δ_ij − 1/m_j) within j's group."""
    n, d = x.shape
    out = torch.zeros_like(x)
    for s in range(n):
        for i in range(d):
            total = 0.0
            for j in range(d):
                if groups_of[i] != groups_of[j]:
                    continue
                m = sum(1 for g in groups_of if g == groups_of[j])
                a = w[j] * rstd[s, j] * ((1.0 if i == j else 0.0) - 1.0 / m)
                total += x[s, i] * a * R_y[s, j] / stab(y[s, j], STAB)
            out[s, i] = total
    return out


def test_layer_norm_sigma_constant():
    torch.manual_seed(3)
    norm = nn.LayerNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.5)
    model = Head(norm, 5)
    x, target = torch.randn(3, 5) * 2 + 1, torch.tensor([0, 1, 2])
    y = norm(x)
    rstd = (x.var(1, unbiased=False, keepdim=True) + norm.eps).rsqrt().expand(3, 5)
    want = _norm_formula(x, model.relevance_of_h(x, target), y, norm.weight, [0] * 5, rstd)
    torch.testing.assert_close(explain(model, x, target), want, rtol=1e-8, atol=1e-10)


def test_channels_last_layer_norm_of_convnext():
    """ConvNeXt's LayerNorm2d: permute → F.layer_norm(weight, bias read in forward) → permute."""
    from torchvision.models.convnext import LayerNorm2d
    torch.manual_seed(4)
    norm = LayerNorm2d(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.5)
    model = Head(norm, 4 * 2 * 3)
    x, target = torch.randn(2, 4, 2, 3), torch.tensor([2, 1])
    y = norm(x)
    flat = lambda t: t.permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731 - one row per pixel
    rstd = (flat(x).var(1, unbiased=False, keepdim=True) + norm.eps).rsqrt().expand(-1, 4)
    want = _norm_formula(flat(x), flat(model.relevance_of_h(x, target)), flat(y), norm.weight, [0] * 4, rstd)
    got = explain(model, x, target)
    torch.testing.assert_close(flat(got), want, rtol=1e-8, atol=1e-10)


class FunctionalGN(nn.Module):
    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x):
        return F.group_norm(x, 2, self.weight, self.bias, self.eps)


@pytest.mark.parametrize("functional", [False, True])
def test_group_norm_sigma_constant(functional):
    torch.manual_seed(5)
    norm = nn.GroupNorm(2, 4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.5)
    body = FunctionalGN(norm) if functional else norm
    model = Head(body, 4 * 3)
    x, target = torch.randn(2, 4, 3), torch.tensor([0, 2])
    y, R_y = norm(x), model.relevance_of_h(x, target)
    groups = [c // 2 for c in range(4) for _ in range(3)]
    g = x.reshape(2, 2, 6)
    rstd = (g.var(-1, unbiased=False, keepdim=True) + norm.eps).rsqrt().expand(2, 2, 6).reshape(2, 12)
    w = norm.weight.repeat_interleave(3)
    want = _norm_formula(x.reshape(2, 12), R_y.reshape(2, 12), y.reshape(2, 12), w, groups, rstd)
    torch.testing.assert_close(explain(model, x, target).reshape(2, 12), want, rtol=1e-8, atol=1e-10)


class FunctionalBN(nn.Module):
    """timm's BatchNormAct2d pattern: F.batch_norm on the module's own buffers, then an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.randn(3))
        self.register_buffer("running_var", torch.rand(3) + 0.5)
        self.weight, self.bias = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, 1e-5))


def test_functional_batch_norm_is_an_affine_layer():
    torch.manual_seed(6)
    body = FunctionalBN()
    model = Head(body, 3 * 2 * 2)
    x, target = torch.randn(2, 3, 2, 2), torch.tensor([1, 0])
    a = (body.weight / (body.running_var + 1e-5).sqrt()).view(1, 3, 1, 1)
    c = (body.bias - body.running_mean * a.flatten()).view(1, 3, 1, 1)
    R_y = model.relevance_of_h(x, target)  # SiLU passes it
    want = a * x / stab(a * x + c, EPS) * R_y  # the affine layer's ε rule (layer type "affine")
    torch.testing.assert_close(explain(model, x, target), want, rtol=1e-8, atol=1e-10)


def _shuffle(x, groups=2):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)


def _chunk_cat(x):
    a, b = x.chunk(2, dim=1)
    return torch.cat([b, a], 1)


INDEX_OPS = {
    "permute": lambda x: x.permute(0, 2, 3, 1),
    "torch.permute": lambda x: torch.permute(x, (0, 3, 1, 2)),
    "transpose": lambda x: x.transpose(2, 3),
    "roll": lambda x: torch.roll(x, shifts=(1, -1), dims=(2, 3)),
    "pad": lambda x: F.pad(x, (1, 0, 2, 1)),
    "slice": lambda x: x[:, 1:, ::2],
    "chunk-cat": _chunk_cat,
    "split": lambda x: torch.split(x, [1, 3], dim=1)[1],
    "stack": lambda x: torch.stack([x[:, 0], x[:, 3]], dim=1),
    "channel-shuffle": _shuffle,
    "unsqueeze-squeeze": lambda x: x.unsqueeze(2).squeeze(2),
}


@pytest.mark.parametrize("op", list(INDEX_OPS))
def test_index_ops_move_relevance_to_its_source(op):
    """Each output entry is one input entry (or padding): R_x[i] = Σ_{j from i} R_y[j]."""
    torch.manual_seed(7)
    fn = INDEX_OPS[op]
    x = torch.randn(2, 4, 3, 4)
    model = Head(Lambda(fn), fn(x)[0].numel())
    target = torch.tensor([0, 2])
    R_y = model.relevance_of_h(x, target).reshape(2, -1)
    source = fn((torch.arange(x[0].numel(), dtype=torch.float64) + 1).view(1, *x.shape[1:])).reshape(-1).long() - 1
    want = torch.zeros(2, x[0].numel())
    keep = source >= 0  # padding (source −1) has no input
    want.index_add_(1, source[keep], R_y[:, keep])
    res = chexplain.LRP(model.eval(), COMPOSITE).explain(x, target=target, report=True)
    torch.testing.assert_close(res.relevance.reshape(2, -1), want, rtol=1e-8, atol=1e-10)
    rep = res.report  # what reached padding is reported as absorbed
    torch.testing.assert_close(rep.input_relevance + sum(r.absorbed for r in rep.layers), rep.logits)


class Depth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torchvision.ops import StochasticDepth
        self.sd = StochasticDepth(0.5, "row")

    def forward(self, x):
        from torchvision.ops import stochastic_depth
        return self.sd(x) + stochastic_depth(x, 0.3, "batch", training=False)


def test_stochastic_depth_is_the_identity_in_eval():
    torch.manual_seed(8)
    model = Head(Depth(), 12).eval()
    x, target = torch.randn(2, 3, 4), torch.tensor([0, 1])
    R_y = model.relevance_of_h(x, target)  # the sum x + x splits R in half, each half goes to x
    torch.testing.assert_close(explain(model, x, target), R_y * (2 * x) / stab(2 * x, STAB), rtol=1e-8, atol=1e-10)
