"""Attention: softmax, products of two input-dependent tensors, scaled dot-product attention,
nn.MultiheadAttention as explicit ops.

Two conventions, chosen by ``Composite.attention``:

- ``"cp"`` (default; CP-LRP, Ali et al. 2022, "XAI for transformers: better explanations through
  conservative propagation"): the attention weights A = softmax(z) are constants, so y = A v is
  linear in v and R_v = v ⊙ Aᵀ (R / stab(y)) (Eq. 5-6 there); q and k get no relevance.
- ``"attnlrp"`` (Achtibat et al. 2024, "AttnLRP: attention-aware layer-wise relevance propagation
  for transformers"): a product y = a b of two input-dependent tensors is bilinear; each term
  a_i b_j takes its ε share of R and splits it uniformly (Prop. 3.3): R_a = ½ a ⊙ J_aᵀ(R / stab(y)),
  R_b = ½ b ⊙ J_bᵀ(R / stab(y)); the softmax s = softmax(z) is linearised at z (Prop. 3.1):
  R_z = z ⊙ (R − s Σ R) (what it does not pass, the bias-like rest, is absorbed).

A product whose factors are both input-dependent and neither is a softmax output (q kᵀ) uses
the bilinear rule in both conventions; under CP-LRP it receives no relevance anyway.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Optional

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .. import ops
from .generic import IndexOp, ProductOp, ShiftOp, batched_vjp
from ..registry import (Context, register_function, register_graph_pass, register_method, register_module,
                        register_substitute)
from ..stabilizer import inverse

Tensor = torch.Tensor


def _mode(ctx: Any) -> str:
    return getattr(ctx.composite, "attention", "cp")


def _ratio(out: Tensor, R: Tensor, ctx: Any, key: str = "inv") -> Tensor:
    """s = R / stab(y), with 1 / stab(y) kept across target chunks."""
    if key not in ctx.state:
        ctx.state[key] = inverse(out, ctx.stabilizer)
    return R * ctx.state[key].unsqueeze(1)


# --------------------------------------------------------------------------- softmax
class SoftmaxOp(ops.Op):
    """s = softmax(z) along ``dim``; R_z = z ⊙ (R − s Σ_dim R) (AttnLRP, Prop. 3.1). Under CP-LRP
    a softmax giving attention weights receives no relevance (the product treats it as constant)."""

    kind = "softmax"
    multi_input = True

    def __init__(self, fn, dim: int) -> None:
        self.fn, self.dim = fn, dim

    def forward(self, *inputs):
        return self.fn(*inputs)

    def relevance(self, inputs, out, R, ctx):
        z, d = inputs[0], self.dim if self.dim < 0 else self.dim + 1
        Rz = (R - out.unsqueeze(1) * R.sum(d, keepdim=True)) * z.unsqueeze(1)
        Rz = torch.where(torch.isfinite(z).unsqueeze(1), Rz, torch.zeros_like(Rz))  # masked (−inf) logits
        return [Rz] + [None] * (len(inputs) - 1), "AttnLRP softmax"


def _softmax_dim(ctx: Context) -> int:
    if ctx.node.op == "call_module":
        return ctx.module.dim
    dim = ctx.arg(1, "dim")
    if not isinstance(dim, int) or dim == 0:
        raise UnsupportedModelError(f"softmax at '{ctx.path}' over dim={dim!r}; LRP needs a softmax over features")
    return dim


@register_function(torch.softmax, F.softmax)
@register_method("softmax")
def _softmax(ctx: Context):
    return SoftmaxOp(ctx.bound(ctx.target_fn()), _softmax_dim(ctx))


@register_module(nn.Softmax)
def _softmax_module(ctx: Context):
    return SoftmaxOp(ctx.module, _softmax_dim(ctx))


# --------------------------------------------------------------------------- products
def _is_softmax(ctx: Context, ref: fx.Node) -> bool:
    """Whether ``ref`` is a softmax output, possibly through dropout, reshapes, index ops, a
    linear mixing of the heads (talking-heads attention: CaiT, EfficientFormerV2), a scaling, a
    constant added or a renormalisation (ConViT's mixture with a positional attention), which
    keep it a function of q and k only, constant under CP-LRP."""
    name: Optional[str] = ref.name
    while name is not None:
        op = ctx.producers.get(name)
        if isinstance(op, SoftmaxOp):
            return True
        if isinstance(op, (IndexOp, ops.ReshapeOp, ops.IdentityOp, ops.LinearOp, ProductOp, ShiftOp)):
            node = next(n for n in ctx.gm.graph.nodes if n.name == name)
            srcs: list[fx.Node] = []
            fx.node.map_arg((node.args, node.kwargs), srcs.append)
            if isinstance(op, (ProductOp, ShiftOp)) and "gate" not in op.description:
                srcs = [srcs[op.explained]]  # the scaled, shifted or renormalised operand
            srcs = [r for r in srcs if r.name not in ctx.meta and r.name not in ctx.consts]
            name = srcs[0].name if len(srcs) == 1 else None
            continue
        return False
    return False


class BilinearOp(ops.Op):
    """y = f(a, b), linear in each of two input-dependent tensors (matmul, einsum, product).

    ``weights``: the index of a (softmax) attention-weight operand, constant under CP-LRP
    (R_other = other ⊙ J_otherᵀ (R / stab(y))); otherwise, and under AttnLRP, the uniform
    bilinear rule R_a = ½ a ⊙ J_aᵀ s, R_b = ½ b ⊙ J_bᵀ s with s = R / stab(y).
    """

    kind = "bilinear"
    multi_input = True

    def __init__(self, fn, operands: tuple[int, int], weights: Optional[int], description: str) -> None:
        self.fn, self.operands, self.weights, self.description = fn, operands, weights, description

    def forward(self, *inputs):
        return self.fn(*inputs)

    def relevance(self, inputs, out, R, ctx):
        s = _ratio(out, R, ctx)
        parts: list[Optional[Tensor]] = [None] * len(inputs)
        if self.weights is not None and _mode(ctx) == "cp":
            i = self.operands[1 - self.operands.index(self.weights)]
            parts[i] = batched_vjp(self.fn, inputs, [i], s).pop().mul_(inputs[i].unsqueeze(1))
            return parts, f"CP-LRP ({self.description}, attention weights constant)"
        for i in self.operands:
            parts[i] = batched_vjp(self.fn, inputs, [i], s).pop().mul_(inputs[i].unsqueeze(1)).mul_(0.5)
        return parts, f"AttnLRP uniform ({self.description})"


def bilinear_product(ctx: Context, description: str):
    """A product of two input-dependent tensors: :class:`BilinearOp` (a softmax operand is the
    attention weights; otherwise the uniform rule); with one, a product with a constant."""
    tensors = ctx.tensor_refs()
    idx = [i for i, r in enumerate(ctx.refs) if r in tensors]
    fn = ctx.bound(ctx.target_fn())
    if len(tensors) == 1:
        return ProductOp(fn, idx[0], f"{description} with a constant")
    if len(tensors) != 2:
        return None
    soft = [i for i, r in zip(idx, tensors) if _is_softmax(ctx, r)]
    return BilinearOp(fn, (idx[0], idx[1]), soft[0] if len(soft) == 1 else None, description)


@register_function(operator.matmul, torch.matmul, torch.bmm)
@register_method("matmul", "bmm")
def _matmul(ctx: Context):
    return bilinear_product(ctx, "matmul")


@register_function(torch.einsum)
def _einsum(ctx: Context):
    return bilinear_product(ctx, "einsum")


# --------------------------------------------------------------------------- fused attention
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class SDPAOp(ops.Op):
    """F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal, scale) with the rules above,
    on the explicit decomposition z = scale q kᵀ + mask, A = softmax(z), y = A v."""

    kind = "attention"
    multi_input = True

    def __init__(self, fn, unpack, index: dict[str, int]) -> None:
        self.fn, self.unpack, self.index = fn, unpack, index

    def forward(self, *inputs):
        return self.fn(*inputs)

    def relevance(self, inputs, out, R, ctx):
        a = self.unpack(*inputs)
        q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
        scale = a.get("scale") or 1.0 / math.sqrt(q.shape[-1])
        if "A" not in ctx.state:
            z = scale * (q @ k.transpose(-2, -1))
            if a.get("is_causal"):
                causal = torch.ones(z.shape[-2:], dtype=torch.bool, device=z.device).tril()
                z = z.masked_fill(~causal, float("-inf"))
            if mask is not None:
                z = z.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else z + mask
            ctx.state["A"], ctx.state["z"] = torch.softmax(z, -1), z
        A, z = ctx.state["A"], ctx.state["z"]
        s = _ratio(out, R, ctx)  # (N, T, ..., L, d)
        parts: list[Optional[Tensor]] = [None] * len(inputs)
        Rv = (A.transpose(-2, -1).unsqueeze(1) @ s).mul_(v.unsqueeze(1))
        if _mode(ctx) == "cp":
            parts[self.index["value"]] = Rv
            return parts, "CP-LRP (attention weights constant)"
        parts[self.index["value"]] = Rv.mul_(0.5)
        RA = (s @ v.transpose(-2, -1).unsqueeze(1)).mul_(A.unsqueeze(1)).mul_(0.5)
        Rz = (RA - A.unsqueeze(1) * RA.sum(-1, keepdim=True)) * z.unsqueeze(1)
        Rz = torch.where(torch.isfinite(z).unsqueeze(1), Rz, torch.zeros_like(Rz))
        if "zinv" not in ctx.state:
            qk = scale * (q @ k.transpose(-2, -1))
            shift = qk * inverse(torch.where(torch.isfinite(z), z, torch.ones_like(z)), ctx.stabilizer)
            ctx.state["zinv"] = inverse(qk, ctx.stabilizer) * (shift if mask is not None and mask.is_floating_point()
                                                             else 1.0)
        sz = Rz * ctx.state["zinv"].unsqueeze(1) * (0.5 * scale)  # a float mask's ε share is absorbed first
        parts[self.index["query"]] = (sz @ k.unsqueeze(1)).mul_(q.unsqueeze(1))
        parts[self.index["key"]] = (sz.transpose(-2, -1) @ q.unsqueeze(1)).mul_(k.unsqueeze(1))
        return parts, "AttnLRP (softmax, uniform bilinear)"


@register_function(F.scaled_dot_product_attention)
def _sdpa(ctx: Context):
    bound = dict(zip(_SDPA_ARGS, ctx.node.args)) | dict(ctx.node.kwargs)
    if bound.get("dropout_p", 0.0) not in (0, 0.0) or bound.get("enable_gqa"):
        return None
    index: dict[str, int] = {}
    for name in ("query", "key", "value"):
        ref = bound.get(name)
        if not isinstance(ref, fx.Node) or ref not in ctx.tensor_refs():
            return None
        index[name] = ctx.refs.index(ref)

    def unpack(*values):
        it = iter(values)
        args, kwargs = fx.node.map_arg((ctx.node.args, ctx.node.kwargs), lambda _: next(it))
        return dict(zip(_SDPA_ARGS, args)) | dict(kwargs)

    return SDPAOp(ctx.bound(ctx.target_fn()), unpack, index)


# --------------------------------------------------------------------------- graph rewrites
def _take_moved(x: Tensor, dims: tuple, index: int) -> Tensor:
    """``x.permute(dims)[index]``: one item of a batch-moving permute + unbind (per sample)."""
    return x.permute(dims)[index]


def _take_each(gm, source, dims, takes) -> None:
    """Replace each ``take`` node (``x[k]`` of a batch-moving permute of ``source``) by one
    per-sample index op :func:`_take_moved` on ``source``."""
    for g in takes:
        with gm.graph.inserting_before(g):
            new = gm.graph.call_function(_take_moved, (source, dims, g.args[1]))
        new.meta = dict(g.meta)
        g.replace_all_uses_with(new)
        gm.graph.erase_node(g)


def _int_item(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[1], int)


@register_graph_pass
def _fold_batch_permute(gm: fx.GraphModule) -> None:
    """``q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)`` (timm), or its items ``qkv[0]``, ``qkv[1]``,
    ``qkv[2]`` (CaiT) → three per-sample index ops."""
    for node in list(gm.graph.nodes):
        if not (node.op == "call_method" and node.target == "permute") and not (
                node.op == "call_function" and node.target is torch.permute):
            continue
        dims = node.args[1:] if node.op == "call_method" else (node.args[1],)
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
        if not dims or dims[0] == 0 or not all(isinstance(d, int) for d in dims):
            continue
        unbinds = list(node.users)
        if unbinds and all(_int_item(u) for u in unbinds):  # CaiT: q, k, v = qkv[0], qkv[1], qkv[2]
            _take_each(gm, node.args[0], dims, unbinds)
            gm.graph.erase_node(node)
            continue
        ok = all((u.op == "call_method" and u.target == "unbind" or u.op == "call_function" and u.target is torch.unbind)
                 and (u.args[1:] or (u.kwargs.get("dim", 0),))[0] == 0 and all(_int_item(g) for g in u.users)
                 for u in unbinds)
        if not unbinds or not ok:
            continue
        for u in unbinds:
            _take_each(gm, node.args[0], dims, list(u.users))
            gm.graph.erase_node(u)
        gm.graph.erase_node(node)




@register_function(_take_moved)
def _take(ctx: Context):
    if 0 not in ctx.node.args[1] or ctx.node.args[1].index(0) != 1:
        raise UnsupportedModelError(f"permute at '{ctx.path}' keeps the batch dimension elsewhere than second")
    return IndexOp("permute + unbind", ctx.bound(ctx.target_fn()), [0])


# --------------------------------------------------------------------------- nn.MultiheadAttention
class ExplicitMultiheadAttention(nn.Module):
    """nn.MultiheadAttention (batch first, self- or cross-attention, no masks) as explicit ops:
    q, k, v projections (nn.Linear), A = softmax(q kᵀ / √d), A v, the output projection."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha.batch_first or not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise UnsupportedModelError(
                "nn.MultiheadAttention is supported with batch_first=True, one embedding size, no bias_k/bias_v "
                "and no add_zero_attn")
        e, self.heads = mha.embed_dim, mha.num_heads
        w, b = mha.in_proj_weight.detach(), mha.in_proj_bias
        self.q, self.k, self.v = (nn.Linear(e, e, bias=b is not None) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.q, self.k, self.v)):
                lin.to(dtype=w.dtype, device=w.device)
                lin.weight.copy_(w[i * e:(i + 1) * e])
                if b is not None:
                    lin.bias.copy_(b.detach()[i * e:(i + 1) * e])
        self.out_proj = mha.out_proj

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise UnsupportedModelError("nn.MultiheadAttention with a mask: not supported")
        n, lq, e = query.shape
        lk, h = key.shape[1], self.heads
        q = self.q(query).reshape(n, lq, h, e // h).transpose(1, 2)
        k = self.k(key).reshape(n, lk, h, e // h).transpose(1, 2)
        v = self.v(value).reshape(n, lk, h, e // h).transpose(1, 2)
        attn = torch.softmax((q * (e // h) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        out = self.out_proj((attn @ v).transpose(1, 2).reshape(n, lq, e))
        weights = (attn.mean(1) if average_attn_weights else attn) if need_weights else None
        return out, weights


register_substitute(nn.MultiheadAttention)(ExplicitMultiheadAttention)


# --------------------------------------------------------------------------- timm's mask helpers
def _register_timm() -> None:
    try:
        from timm.layers import attention as timm_attention
    except ImportError:  # timm is optional
        return
    resolve = getattr(timm_attention, "resolve_self_attn_mask", None)
    add_mask = getattr(timm_attention, "maybe_add_mask", None)

    if resolve is not None:
        @register_function(resolve)
        def _resolve(ctx: Context):
            """No mask and not causal (the traced default): the bias is None, a non-tensor value."""
            if ctx.arg(2, "attn_mask") is None and ctx.arg(3, "is_causal", False) is False:
                ctx.meta.add(ctx.node.name)
                return ops.MetaOp(lambda *_: None)
            return None

    if add_mask is not None:
        @register_function(add_mask)
        def _add_mask(ctx: Context):
            scores, bias = ctx.arg(0, "scores"), ctx.arg(1, "attn_mask")
            if bias is None or (isinstance(bias, fx.Node) and bias.name in ctx.meta):
                return ops.IdentityOp(), [scores.name]
            return None


_register_timm()
