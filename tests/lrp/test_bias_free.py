"""The bias-free check (``zero_biases``/``randomize`` of :mod:`tests.lrp.families`, the
conservation of ``benchmarks/coverage.py``) on small modules with the patterns of XCiT/EdgeNeXt
(a Fourier position encoding: sines of the token grid, projected, added to the tokens), TNT
(learned ``pixel_pos``/``patch_pos`` added to the tokens), CaiT (layer scales ``gamma_1``
initialised at 1e-5) and CoaT (a class token that a factorised attention leaves at zero when it
is zero): zeroing exactly the additive constants makes bias-free LRP-ε conserve the logit, and
LRP-0 equal gradient × input on the linear (ReLU) ones."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn

import chexplain

from .families import randomize, zero_biases
from .gradient_oracle import modified_gradient_times_input

ROOT = Path(__file__).resolve().parents[2]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


class PositionalEncodingFourier(nn.Module):
    """Sines and cosines of the token grid (Vaswani et al. 2017, Eq. 5), projected by a 1×1
    convolution: computed from the shape only (the name is the one XCiT and EdgeNeXt use)."""

    def __init__(self, dim: int, hidden: int = 8) -> None:
        super().__init__()
        self.hidden = hidden
        self.token_projection = nn.Conv2d(2 * hidden, dim, 1)

    def forward(self, b: int, h: int, w: int) -> torch.Tensor:
        dtype = self.token_projection.weight.dtype
        y = torch.arange(1, h + 1, dtype=dtype)[:, None].expand(h, w) / h * 2 * math.pi
        x = torch.arange(1, w + 1, dtype=dtype)[None, :].expand(h, w) / w * 2 * math.pi
        freq = 10000 ** (torch.arange(self.hidden // 2, dtype=dtype) * 2 / self.hidden)
        pos = torch.cat([(y[..., None] / freq).sin(), (y[..., None] / freq).cos(),
                         (x[..., None] / freq).sin(), (x[..., None] / freq).cos()], -1)
        return self.token_projection(pos.permute(2, 0, 1)[None].expand(b, -1, -1, -1))


class PositionedTokens(nn.Module):
    """Patches → tokens + Fourier encoding + learned ``pixel_pos``; a residual ReLU MLP scaled
    by a layer scale ``gamma_1`` (1e-5, as CaiT initialises it) after a LayerNorm; mean, head."""

    def __init__(self, dim: int = 12, patch: int = 4, size: int = 16) -> None:
        super().__init__()
        n = (size // patch) ** 2
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.pos_embd = PositionalEncodingFourier(dim)
        self.pixel_pos = nn.Parameter(torch.randn(1, n, dim))
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.gamma_1 = nn.Parameter(1e-5 * torch.ones(dim))
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        t = self.proj(x)
        b, c, h, w = t.shape
        t = t + self.pos_embd(b, h, w)
        t = t.flatten(2).transpose(1, 2) + self.pixel_pos
        t = self.gamma_1 * self.fc2(self.fc1(self.norm(t)).relu())
        return self.head(t.mean(1))


def _bias_free(model: nn.Module, tokens: bool = True) -> nn.Module:
    return zero_biases(randomize(model.double().eval()), tokens=tokens)


def test_zero_biases_zeroes_the_additive_position_terms_and_keeps_the_layer_scale():
    torch.manual_seed(0)
    model = _bias_free(PositionedTokens())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert float(model.pos_embd(2, 4, 4).abs().max()) == 0.0
    assert float(model.pixel_pos.detach().abs().max()) == 0.0
    assert 0.5 <= float(model.gamma_1.detach().min()) and float(model.gamma_1.detach().max()) <= 1.5  # randomised, not zeroed
    with torch.no_grad():
        assert float(model(x).abs().max()) > 1e-2  # multiplicative parts kept: logits of order one


def test_positioned_tokens_conserve_bias_free_and_lrp0_is_gradient_times_input():
    torch.manual_seed(0)
    model = _bias_free(PositionedTokens())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9).explain(x, target="topk:1")
    assert _rel(res.relevance.flatten(2).sum(-1), res.logits.gather(1, res.targets)) <= 1e-6
    R0 = chexplain.LRP(model, "lrp-z").explain(x, target=res.targets[:, 0]).relevance
    oracle = modified_gradient_times_input(model, x, res.targets[:, 0])
    assert _rel(R0, oracle) <= 1e-9


class FactorisedClassAttention(nn.Module):
    """CoaT's pattern: a class token concatenated to the patch tokens, factorised attention
    q · (softmax_tokens(k)ᵀ v) (Xu et al. 2021, Eq. 3) with bias-free q: a zero class token
    stays zero, and the head reads the class token."""

    def __init__(self, dim: int = 8, patch: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        q, k, v = self.qkv(self.norm(t)).chunk(3, dim=-1)
        t = t + q @ (k.softmax(dim=1).transpose(1, 2) @ v)
        return self.head(t[:, 0])


def _coverage():
    spec = importlib.util.spec_from_file_location("coverage_benchmark", ROOT / "benchmarks" / "coverage.py")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def test_class_token_model_is_checked_with_its_class_tokens_kept():
    torch.manual_seed(0)
    model = randomize(FactorisedClassAttention().double().eval())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():  # the pattern: without its class token the bias-free logits are exactly 0
        assert float(_bias_free(FactorisedClassAttention()).double()(x).abs().max()) == 0.0
    row = _coverage().conservation(model, x)
    assert "class tokens kept" in row["note"]
    assert row["conservation"] <= 1e-6
    assert float(model.cls_token.detach().abs().min()) > 0 and float(model.qkv.bias.detach().abs().max()) == 0.0
    # the counted share is the class token's: only the concatenation absorbs (a visible share),
    # every other layer passes on what it receives
    res = chexplain.LRP(model, "lrp-epsilon", epsilon=1e-9, stabilizer=1e-9).explain(
        x, target="topk:1", report=True)
    top = float(res.logits.abs().max())
    absorbing = [r for r in res.report.layers if float(r.absorbed.abs().max()) > 1e-6 * top]
    assert [r.kind for r in absorbing] == ["index"] and "cat" in absorbing[0].rule
    assert float(absorbing[0].absorbed.abs().min()) > 1e-3 * top
