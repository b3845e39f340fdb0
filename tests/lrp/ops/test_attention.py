"""Attention LRP: per-op oracles (explicit per-neuron formulas of CP-LRP and AttnLRP), and the
attention families end to end (logits, every preset finite, bias-free conservation, report)."""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings

import pytest
import torch
from torch import nn

import chexplain
import transformer_zoo as zoo
from chexplain.lrp.composites import PRESETS, lrp_epsilon
from chexplain.lrp.ops.generic import RelevanceContext
from chexplain.lrp.ops.attention import BilinearOp, ExplicitMultiheadAttention, SDPAOp, SoftmaxOp

torch.set_num_threads(1)
EPS = 1e-3  # a visible stabiliser: the formulas must use it the same way
D = torch.float64


def _ctx(mode: str) -> RelevanceContext:
    comp = lrp_epsilon()
    comp.attention = mode
    return RelevanceContext(EPS, {}, False, comp)


def _stab(z: float) -> float:
    return z + math.copysign(EPS, z)


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, t, h, l, d = 2, 2, 2, 3, 4
    q, k, v = (torch.randn(n, h, l, d, generator=g, dtype=D) for _ in range(3))
    R = torch.randn(n, t, h, l, d, generator=g, dtype=D)
    return q, k, v, R


@pytest.mark.parametrize("mode", ["cp", "attnlrp"])
def test_matmul_rules_equal_the_per_neuron_formulas(mode: str) -> None:
    """y_jp = Σ_i a_ji b_ip; CP: R_b,ip = Σ_j a_ji b_ip R_jp / stab(y_jp), a constant;
    AttnLRP: each term's share split in halves between a_ji and b_ip."""
    q, k, v, R = _case()
    a = torch.softmax(q @ k.transpose(-2, -1), -1)
    op = BilinearOp(lambda x, y: x @ y, (0, 1), 0, "matmul")
    y = a @ v
    parts, _ = op.relevance([a, v], y, R, _ctx(mode))
    Ra, Rb = torch.zeros_like(R[..., :3]), torch.zeros_like(R)
    for n, t, h, j, i, p in itertools.product(*(range(s) for s in (2, 2, 2, 3, 3, 4))):
        share = float(a[n, h, j, i] * v[n, h, i, p]) * float(R[n, t, h, j, p]) / _stab(float(y[n, h, j, p]))
        if mode == "cp":
            Rb[n, t, h, i, p] += share
        else:
            Rb[n, t, h, i, p] += share / 2
            Ra[n, t, h, j, i] += share / 2
    assert torch.allclose(parts[1], Rb, atol=1e-8, rtol=0)
    if mode == "cp":
        assert parts[0] is None
    else:
        assert torch.allclose(parts[0], Ra, atol=1e-8, rtol=0)
    # no softmax operand (q kᵀ): the uniform rule under both conventions
    qk = BilinearOp(lambda x, y: x @ y.transpose(-2, -1), (0, 1), None, "matmul")
    z = q @ k.transpose(-2, -1)
    Rz = R[..., :3]
    pq, pk = qk.relevance([q, k], z, Rz, _ctx(mode))[0]
    Rq, Rk = torch.zeros_like(q).unsqueeze(1).repeat(1, 2, 1, 1, 1), torch.zeros_like(k).unsqueeze(1).repeat(1, 2, 1, 1, 1)
    for n, t, h, i, j, c in itertools.product(*(range(s) for s in (2, 2, 2, 3, 3, 4))):
        share = float(q[n, h, i, c] * k[n, h, j, c]) * float(Rz[n, t, h, i, j]) / _stab(float(z[n, h, i, j]))
        Rq[n, t, h, i, c] += share / 2
        Rk[n, t, h, j, c] += share / 2
    assert torch.allclose(pq, Rq, atol=1e-8, rtol=0) and torch.allclose(pk, Rk, atol=1e-8, rtol=0)


def test_softmax_rule_equals_the_per_neuron_formula() -> None:
    """AttnLRP Prop. 3.1: R_z,i = z_i (R_i − s_i Σ_j R_j)."""
    q, k, _, R = _case(1)
    z = q @ k.transpose(-2, -1)
    z[0, 0, 1, 2] = float("-inf")  # a masked logit gets nothing
    s = torch.softmax(z, -1)
    Rs = R[..., :3]
    parts, _ = SoftmaxOp(lambda x: torch.softmax(x, -1), -1).relevance([z], s, Rs, _ctx("attnlrp"))
    ref = torch.zeros_like(Rs)
    for n, t, h, i, j in itertools.product(*(range(c) for c in (2, 2, 2, 3, 3))):
        if math.isfinite(float(z[n, h, i, j])):
            total = sum(float(Rs[n, t, h, i, m]) for m in range(3))
            ref[n, t, h, i, j] = float(z[n, h, i, j]) * (float(Rs[n, t, h, i, j]) - float(s[n, h, i, j]) * total)
    assert torch.allclose(parts[0], ref, atol=1e-8, rtol=0)


@pytest.mark.parametrize("mode", ["cp", "attnlrp"])
def test_sdpa_equals_its_explicit_decomposition(mode: str) -> None:
    """The fused op = the per-op rules chained: z = scale q kᵀ + mask, A = softmax(z), y = A v."""
    q, k, v, R = _case(2)
    mask = torch.randn(3, 3, dtype=D)
    fn = lambda q, k, v, m: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)  # noqa: E731
    op = SDPAOp(fn, lambda q, k, v, m: dict(query=q, key=k, value=v, attn_mask=m), dict(query=0, key=1, value=2))
    y = fn(q, k, v, mask)
    parts, _ = op.relevance([q, k, v, mask], y, R, _ctx(mode))
    scale = 1 / math.sqrt(4)
    z = scale * q @ k.transpose(-2, -1) + mask
    A = torch.softmax(z, -1)
    assert torch.allclose(y, A @ v, atol=1e-12)
    pA, pv = BilinearOp(lambda a, b: a @ b, (0, 1), 0, "m").relevance([A, v], y, R, _ctx(mode))[0]
    assert torch.allclose(parts[2], pv, atol=1e-8, rtol=0)
    if mode == "cp":
        assert parts[0] is None and parts[1] is None
        return
    Rz = SoftmaxOp(lambda x: torch.softmax(x, -1), -1).relevance([z], A, pA, _ctx(mode))[0][0]
    # z = scale q kᵀ + mask: the ε share of the mask is absorbed, then the uniform rule on q kᵀ
    qk = lambda a, b: scale * a @ b.transpose(-2, -1)  # noqa: E731
    share = Rz * (scale * q @ k.transpose(-2, -1)).unsqueeze(1) / (z + EPS * z.sign()).unsqueeze(1)
    pq, pk = BilinearOp(qk, (0, 1), None, "m").relevance([q, k], scale * q @ k.transpose(-2, -1), share, _ctx(mode))[0]
    assert torch.allclose(parts[0], pq, atol=1e-8, rtol=1e-6) and torch.allclose(parts[1], pk, atol=1e-8, rtol=1e-6)


def test_explicit_multihead_attention_equals_torch() -> None:
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
    x, y = torch.randn(2, 5, 16, dtype=D), torch.randn(2, 7, 16, dtype=D)
    ours = ExplicitMultiheadAttention(mha)
    for q, kv in ((x, x), (x, y)):
        ref, w = mha(q, kv, kv)
        out, w2 = ours(q, kv, kv)
        assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(w2, w, atol=1e-12)


# --------------------------------------------------------------------------- families
def _timm_unfused() -> nn.Module:
    m = zoo.timm_vit()
    for b in m.blocks:
        b.attn.fused_attn = False  # explicit q @ kᵀ, softmax, @ v
    return m


FAMILIES = {
    "tv_vit": zoo.tv_vit,  # nn.MultiheadAttention
    "timm_vit": zoo.timm_vit,  # F.scaled_dot_product_attention, optional attn_mask argument
    "timm_vit_unfused": _timm_unfused,
    "timm_deit": zoo.timm_deit,
    "tv_maxvit": zoo.tv_maxvit,  # einsum attention with relative position bias, MBConv with SE
    "timm_swin": zoo.timm_swin,  # shifted windows (B·nW, L, C), masks, relative position bias, patch merging
    "tv_swin": zoo.tv_swin,  # torchvision's shifted_window_attention as explicit ops
    "tv_swin_v2": lambda: zoo.tv_swin(v2=True),  # cosine attention, logit scale, position-bias MLP
}


def _bias_free(model: nn.Module) -> nn.Module:
    """All biases, norm shifts, BatchNorm means, class tokens, position embeddings and position biases zero."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or any(k in name for k in ("pos_embed", "cls_token", "class_token",
                                                               "relative_position_bias")):
                p.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
    return model


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    torch.manual_seed(0)
    model = FAMILIES[request.param]().double().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return request.param, model, torch.randn(2, 3, zoo.SIZE, zoo.SIZE, dtype=D)


def test_logits_and_every_preset_finite(family) -> None:
    name, model, x = family
    ref = model(x)
    for preset in PRESETS:
        kw = dict(low=-4.0, high=4.0) if preset in ("epsilon-gamma-box",) else {}
        for mode in ("cp", "attnlrp") if preset in ("lrp-epsilon", "epsilon-plus-flat", "lrp-alpha2beta1") else ("cp",):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = chexplain.LRP(model, preset, attention=mode, **kw).explain(x, target=[1, 3])
            assert (res.logits - ref).abs().max() <= 1e-6 * ref.abs().max()
            assert res.relevance.shape == x.shape and torch.isfinite(res.relevance).all(), (preset, mode)


def test_bias_free_conservation_and_report(family) -> None:
    name, model, x = family
    logit = model(x)[:, 2]
    for mode in ("cp", "attnlrp"):  # with biases: input + absorbed = logit
        res = chexplain.LRP(model, "lrp-epsilon", attention=mode).explain(x, target=2, report=True)
        per_layer = sum(layer.absorbed[:, 0] for layer in res.report.layers)  # what each op absorbed
        total = res.relevance.flatten(1).sum(1) + per_layer
        assert torch.allclose(total, logit, rtol=1e-5, atol=1e-8), (mode, total, logit)
    free = _bias_free(__import__("copy").deepcopy(model))
    logit = free(x)[:, 2]
    eps = 1e-12 if name == "tv_maxvit" else 1e-9  # the tiny random MaxViT's logits are ~2e-4: ε ≪ activations
    res = chexplain.LRP(free, "lrp-epsilon", epsilon=eps, stabilizer=1e-12).explain(x, target=2)
    assert ((res.relevance.flatten(1).sum(1) - logit).abs() <= 1e-5 * logit.abs()).all()


def test_caller_model_untouched_and_mask_refused() -> None:
    torch.manual_seed(4)
    model = zoo.tv_vit().double().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chexplain.LRP(model, "epsilon-plus-flat")(torch.randn(1, 3, zoo.SIZE, zoo.SIZE, dtype=D))
    assert type(model.encoder.layers[0].self_attention) is nn.MultiheadAttention  # substituted in the copy only
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.head = nn.MultiheadAttention(4, 2, batch_first=True), nn.Linear(4, 2)
            self.register_buffer("mask", torch.zeros(4, 4))

        def forward(self, x):
            t = x.flatten(2).transpose(1, 2)
            return self.head(self.attn(t, t, t, attn_mask=self.mask)[0].mean(1))

    with pytest.raises(chexplain.errors.UnsupportedModelError, match="mask"):
        chexplain.LRP(Masked())


@contextlib.contextmanager
def _constant_attention():
    """Test oracle for CP-LRP: every softmax output detached (attention weights constants)."""
    import torch.nn.functional as F

    saved = F.softmax, torch.softmax, torch.Tensor.softmax, F.scaled_dot_product_attention

    def soft(x, dim=None, *a, **k):  # written out: F.softmax itself calls Tensor.softmax
        e = (x - x.amax(dim, keepdim=True)).exp()
        return (e / e.sum(dim, keepdim=True)).detach()

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        z = (scale or q.shape[-1] ** -0.5) * q @ k.transpose(-2, -1)
        if attn_mask is not None:
            z = z.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else z + attn_mask
        return soft(z, -1) @ v

    F.softmax, torch.softmax, torch.Tensor.softmax, F.scaled_dot_product_attention = soft, soft, soft, sdpa
    try:
        yield
    finally:
        F.softmax, torch.softmax, torch.Tensor.softmax, F.scaled_dot_product_attention = saved


def test_lrp0_equals_modified_gradient_times_input(family) -> None:
    """Bias-free, CP-LRP: LRP-0 = gradient × input with the attention weights and normalisation
    statistics detached and each activation's derivative f(x)/x (tests/lrp/gradient_oracle.py)."""
    from ..gradient_oracle import modified_gradient_times_input

    name, model, x = family
    free = _bias_free(__import__("copy").deepcopy(model))
    target = torch.tensor([2, 0])
    ours = chexplain.LRP(free, "lrp-epsilon", epsilon=1e-30, stabilizer=1e-30)(x, target=target)
    with _constant_attention():
        ref = modified_gradient_times_input(free, x, target)
    assert (ours - ref).abs().max() <= 1e-6 * ref.abs().max()
