"""Converters of element-wise activations, gates and products/sums with constants.

- Activations (SiLU, GELU, Hardswish, ReLU6, Hardtanh, ELU, CELU, SELU, Mish, Softplus,
  sigmoid, hard sigmoid, used inside the net): relevance passes, R_in = R
  (:class:`~chexplain.lrp.ops.generic.PassOp`).
- Gates: ``x * g`` where g is a sigmoid or hard-sigmoid output (squeeze-excitation, Hu et al.
  2018; MobileNetV3's hard sigmoid; SiLU written as ``x * sigmoid(x)``), possibly reshaped:
  g is a constant weighting, relevance goes to x (:class:`~chexplain.lrp.ops.generic.ProductOp`).
- ``x * c``, ``x / c`` for a number or parameter c (layer scale): the same rule;
  ``x + c``, ``x - c``: the shift's share is absorbed (:class:`~chexplain.lrp.ops.generic.ShiftOp`).
"""

from __future__ import annotations

import copy
import operator
from functools import partial
from typing import Optional

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from .generic import AffineCallOp, IndexOp, PassOp, ProductOp, ShiftOp, SignedSumOp
from .attention import bilinear_product
from ..registry import Context, register_function, register_method, register_module

#: name → (function, is a gate in [0, 1], output ≥ 0)
_ACTIVATIONS = {
    "silu": (F.silu, False, False),
    "gelu": (F.gelu, False, False),
    "hardswish": (F.hardswish, False, False),
    "elu": (F.elu, False, False),
    "celu": (F.celu, False, False),
    "selu": (F.selu, False, False),
    "mish": (F.mish, False, False),
    "softplus": (F.softplus, False, True),
    "sigmoid": (torch.sigmoid, True, True),
    "hardsigmoid": (F.hardsigmoid, True, True),
    "hardtanh": (F.hardtanh, False, False),
    "relu6": (F.relu6, False, True),
}


def _out_of_place(fn):
    """``fn`` with ``inplace=False``: an in-place activation would overwrite the layer output
    that the rule below it reads."""
    return lambda *a, **k: fn(*a, **{**k, "inplace": False}) if "inplace" in k else fn(*a, **k)


def _functional(name: str, ctx: Context) -> PassOp:
    fn, gate, nonneg = _ACTIVATIONS[name]
    if name == "hardtanh":
        low = ctx.arg(1, "min_val", -1.0)
        nonneg = isinstance(low, (int, float)) and low >= 0
    if ctx.node.op == "call_method":  # x.sigmoid(), x.silu_(), ...: the out-of-place function
        return PassOp(name, ctx.bound(lambda x, *a, **k: fn(x)), gate, nonneg)
    return PassOp(name, ctx.bound(_out_of_place(ctx.target_fn())), gate, nonneg)


def _module_op(name: str, ctx: Context) -> PassOp:
    _, gate, nonneg = _ACTIVATIONS[name]
    mod = ctx.module
    if getattr(mod, "inplace", False):
        mod = copy.copy(mod)
        mod.inplace = False
    if isinstance(mod, nn.Hardtanh):
        nonneg = mod.min_val >= 0
        name = "relu6" if isinstance(mod, nn.ReLU6) else name
    return PassOp(name, mod, gate, nonneg)


for _name, _mod in [("silu", nn.SiLU), ("gelu", nn.GELU), ("hardswish", nn.Hardswish), ("elu", nn.ELU),
                    ("celu", nn.CELU), ("selu", nn.SELU), ("mish", nn.Mish), ("softplus", nn.Softplus),
                    ("sigmoid", nn.Sigmoid), ("hardsigmoid", nn.Hardsigmoid), ("hardtanh", nn.Hardtanh)]:
    register_module(_mod)(partial(_module_op, _name))

for _name, _fns in [("silu", [F.silu]), ("gelu", [F.gelu]), ("hardswish", [F.hardswish]), ("elu", [F.elu]),
                    ("celu", [F.celu]), ("selu", [F.selu, torch.selu]), ("mish", [F.mish]),
                    ("softplus", [F.softplus]), ("sigmoid", [torch.sigmoid, F.sigmoid]),
                    ("hardsigmoid", [F.hardsigmoid]), ("hardtanh", [F.hardtanh]), ("relu6", [F.relu6])]:
    register_function(*_fns)(partial(_functional, _name))

for _name in ("sigmoid", "silu", "gelu", "hardswish", "mish", "elu", "selu", "hardsigmoid", "relu6", "softplus"):
    if hasattr(torch.Tensor, _name):
        register_method(_name, f"{_name}_")(partial(_functional, _name))


@register_function(torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max)
@register_method("clamp", "clip", "clamp_min", "clamp_max")
def _clamp(ctx: Context):
    """clamp with number bounds: a monotone activation (as Hardtanh), R passes; ≥ 0 with min ≥ 0."""
    if len(ctx.tensor_refs()) != 1 or len(ctx.refs) != 1:
        return None  # bounds from tensors
    name = ctx.node.target if ctx.node.op == "call_method" else ctx.node.target.__name__
    low = ctx.arg(1, "min") if name in ("clamp", "clip", "clamp_min") else None
    nonneg = isinstance(low, (int, float)) and low >= 0
    return PassOp("clamp", ctx.bound(_OUT_OF_PLACE.get(ctx.node.target, ctx.target_fn())), False, nonneg)


@register_function(operator.pow, torch.pow, torch.square)
@register_method("pow", "square")
def _power(ctx: Context):
    """x ** p for a number p (StarReLU's relu(x)²): a product of p copies of x, whose uniform rule
    (AttnLRP, Prop. 3.3) gives each copy 1/p of y R / stab(y), all of it back to x: R passes."""
    name = ctx.node.target if ctx.node.op == "call_method" else ctx.node.target.__name__
    p = 2 if name == "square" else ctx.arg(1, "exponent")
    if len(ctx.tensor_refs()) != 1 or len(ctx.refs) != 1 or ctx.node.args[0] is not ctx.refs[0] or \
            not isinstance(p, (int, float)):
        return None  # a tensor exponent, or a number raised to a tensor
    even = isinstance(p, int) and p % 2 == 0 or float(p).is_integer() and int(p) % 2 == 0
    return PassOp(f"pow {p}", ctx.bound(ctx.target_fn()), False, even)


# --------------------------------------------------------------------------- products and sums
def _is_gate(ctx: Context, ref: fx.Node) -> bool:
    """Whether ``ref`` is a sigmoid/hard-sigmoid output, possibly reshaped or expanded."""
    name: Optional[str] = ref.name
    while name is not None:
        op = ctx.producers.get(name)
        if isinstance(op, PassOp):
            return op.gate
        if isinstance(op, (IndexOp, ops.ReshapeOp, ops.IdentityOp)):
            node = next(n for n in ctx.gm.graph.nodes if n.name == name)
            srcs = [r for r in _node_refs(node) if r.name not in ctx.meta and r.name not in ctx.consts]
            name = srcs[0].name if len(srcs) == 1 else None
            continue
        return False
    return False


def _node_refs(node: fx.Node) -> list[fx.Node]:
    refs: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), refs.append)
    return refs


_OUT_OF_PLACE = {operator.imul: operator.mul, operator.iadd: operator.add, operator.isub: operator.sub,
                 operator.itruediv: operator.truediv}


def _fn(ctx: Context):
    """The node's function, in-place forms (``x *= g``, ``x.mul_(g)``) replaced by out-of-place ones."""
    node = ctx.node
    if node.op == "call_method" and node.target.endswith("_"):
        name = node.target[:-1]
        return ctx.bound(lambda obj, *a, **k: getattr(obj, name)(*a, **k))
    return ctx.bound(_OUT_OF_PLACE.get(node.target, ctx.target_fn()))


def _operands(ctx: Context) -> tuple:
    """(tensor refs, index of the first two args that are tensors) of a binary op."""
    return ctx.tensor_refs(), [i for i, r in enumerate(ctx.refs) if r in ctx.tensor_refs()]


@register_function(operator.mul, operator.imul, torch.mul, torch.multiply)
@register_method("mul", "mul_", "multiply")
def _mul(ctx: Context):
    tensors, idx = _operands(ctx)
    fn = _fn(ctx)
    if len(tensors) == 1:  # x · c with a number or a parameter (layer scale)
        return ProductOp(fn, idx[0], "x · constant")
    if len(tensors) != 2:
        return None
    gates = [_is_gate(ctx, r) for r in tensors]
    if gates.count(True) == 1:
        signal = idx[gates.index(False)]
        return ProductOp(fn, signal, "x · gate")
    # two input-dependent factors (CoaT's conv position encoding q · conv(v)): bilinear, the uniform
    # rule of AttnLRP (Prop. 3.3), or CP-LRP's constant weights where one factor is a softmax
    return bilinear_product(ctx, "product")


@register_function(operator.truediv, operator.itruediv, torch.div, torch.true_divide)
@register_method("div", "div_", "true_divide")
def _div(ctx: Context):
    tensors, idx = _operands(ctx)
    if len(tensors) == 2 and idx[0] == 0 and _chain(ctx, tensors[0], False)[-1] in _chain(ctx, tensors[1], True):
        # x / s(x), s a sum or slice of x itself (ConViT's attention renormalised, EfficientViT's ReLU
        # linear attention divided by its normaliser): s held constant, as a norm's statistic
        return ProductOp(_fn(ctx), 0, "x / its normaliser")
    if len(tensors) != 1 or idx[0] != 0:
        return None  # division by an input-dependent tensor
    return ProductOp(_fn(ctx), 0, "x / constant")


def _chain(ctx: Context, ref: fx.Node, normaliser: bool) -> list[str]:
    """``ref`` and the nodes it is a slice or reshape of (``normaliser``: also a sum, mean or shift of)."""
    chain = [ref.name]
    keep: tuple = (IndexOp, ops.ReshapeOp, ops.IdentityOp) + ((ops.PoolOp, ShiftOp) if normaliser else ())
    while isinstance(ctx.producers.get(chain[-1]), keep):
        node = next(n for n in ctx.gm.graph.nodes if n.name == chain[-1])
        srcs = [r for r in _node_refs(node) if r.name not in ctx.meta and r.name not in ctx.consts]
        if len(srcs) != 1:
            break
        chain.append(srcs[0].name)
    return chain


@register_function(operator.add, operator.iadd, torch.add)
@register_method("add", "add_")
def _add(ctx: Context):
    tensors, idx = _operands(ctx)
    alpha = ctx.node.kwargs.get("alpha", 1)
    if len(tensors) == 2 and len(ctx.refs) == 2 and not any(k != "alpha" for k in ctx.node.kwargs):
        return ops.AddOp() if alpha == 1 else SignedSumOp((1.0, float(alpha)))
    if len(tensors) == 1 and alpha == 1:
        return ShiftOp(_fn(ctx), idx[0], 1.0, "x + constant")
    return None


@register_function(operator.sub, operator.isub, torch.sub)
@register_method("sub", "sub_")
def _sub(ctx: Context):
    tensors, idx = _operands(ctx)
    if len(tensors) == 1 and not ctx.node.kwargs:
        return ShiftOp(_fn(ctx), idx[0], 1.0 if idx[0] == 0 and _first_is(ctx, tensors[0])
                       else -1.0, "x - constant")
    alpha = ctx.node.kwargs.get("alpha", 1)
    if len(tensors) == 2 and len(ctx.refs) == 2 and not any(k != "alpha" for k in ctx.node.kwargs):
        return SignedSumOp((1.0, -float(alpha)))  # x − pool(x) (PoolFormer, FastViT): a signed sum
    return None


@register_function(torch.addcmul)
@register_method("addcmul")
def _addcmul(ctx: Context):
    """addcmul(b, w, x, value=v) = b + v · w · x with one input-dependent argument (ConvNeXt-V2's
    global response norm, after its statistic): affine in it."""
    tensors, idx = _operands(ctx)
    if len(tensors) != 1:
        return None
    fn = _fn(ctx)
    if idx[0] == 0:
        return ShiftOp(fn, 0, 1.0, "addcmul, x + constant")
    linear = ctx.bound(lambda _b, t1, t2, value=1: t1 * t2 * value)
    return AffineCallOp(fn, linear, idx[0], "addcmul with constants")


def _first_is(ctx: Context, ref: fx.Node) -> bool:
    return bool(ctx.node.args) and ctx.node.args[0] is ref


@register_function(operator.neg, torch.neg)
@register_method("neg")
def _neg(ctx: Context):
    return ProductOp(ctx.bound(ctx.target_fn()), 0, "−x")


def _where(ctx: Context) -> str:
    return f"at '{ctx.path}'" if ctx.path else "in the model's top-level forward"
