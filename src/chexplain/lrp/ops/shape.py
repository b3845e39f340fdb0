"""Converters of index and shape operations: relevance moves with the op's own VJP
(:class:`~chexplain.lrp.ops.generic.IndexOp`), plus the eval-mode identities (stochastic depth).

Every op must act on each sample separately: one that touches the batch dimension (a permute
moving dim 0, a concatenation or stack along it, a chunk of the batch) is refused here, naming
the op and module path.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
import torchvision

from ...errors import UnsupportedModelError
from .. import ops
from .generic import AffineCallOp, IndexOp
from ..inplace import assigned
from ..registry import (Context, register_function, register_graph_pass, register_method,
                        register_module)


def _where(ctx: Context) -> str:
    return f"at '{ctx.path}'" if ctx.path else "in the model's top-level forward"


def _name(ctx: Context) -> str:
    t = ctx.node.target
    return f"Tensor.{t}" if ctx.node.op == "call_method" else getattr(t, "__name__", str(t))


def _batch_error(ctx: Context, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{_name(ctx)} {_where(ctx)} {what} the batch dimension; LRP needs per-sample "
                                 "operations")


def _wrt(ctx: Context) -> list[int]:
    tensors = {r.name for r in ctx.tensor_refs()}
    return [i for i, r in enumerate(ctx.refs) if r.name in tensors]


def index_op(ctx: Context) -> IndexOp:
    """The node as an :class:`IndexOp` over its tensor arguments."""
    return IndexOp(_name(ctx), ctx.bound(ctx.target_fn()), _wrt(ctx))


def _dims(ctx: Context, start: int = 1) -> tuple:
    """Integer dims given as varargs (``x.permute(0, 2, 1)``) or one sequence."""
    args = ctx.node.args[start:] or tuple(ctx.node.kwargs.get("dims", ()))
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(args)


def _is_zero_dim(d: Any) -> bool:
    return isinstance(d, int) and d == 0


@register_function(torch.permute)
@register_method("permute")
def _permute(ctx: Context):
    dims = _dims(ctx)
    if not dims or not _is_zero_dim(dims[0]):
        raise _batch_error(ctx, "moves")
    return index_op(ctx)


@register_function(torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim, torch.moveaxis)
@register_method("transpose", "swapaxes", "swapdims", "movedim", "moveaxis")
def _transpose(ctx: Context):
    a, b = ctx.arg(1, "dim0", ctx.arg(1, "source")), ctx.arg(2, "dim1", ctx.arg(2, "destination"))
    for d in (a, b):
        for e in (d if isinstance(d, (tuple, list)) else (d,)):
            if not isinstance(e, int) or e == 0:
                raise _batch_error(ctx, "moves")
    return index_op(ctx)


@register_function(torch.roll)
@register_method("roll")
def _roll(ctx: Context):
    dims = ctx.arg(2, "dims")
    if dims is None or any(_is_zero_dim(d) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))):
        raise _batch_error(ctx, "rolls over")
    return index_op(ctx)


@register_function(torch.squeeze, torch.unsqueeze, torch.narrow, torch.select, F.pad, torch.flip,
                   torch.Tensor.expand_as)
@register_method("squeeze", "unsqueeze", "narrow", "select", "flip", "expand", "expand_as", "unflatten",
                 "repeat_interleave", "index_select", "unfold")
def _dim_op(ctx: Context):
    dim = ctx.arg(1, "dim")
    name = ctx.node.target if ctx.node.op == "call_method" else getattr(ctx.node.target, "__name__", "")
    if name == "flip":  # flip keeps the batch size, so the forward's check cannot see a flip over it
        dims = ctx.node.kwargs.get("dims", ctx.node.args[1:])
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if any(_is_zero_dim(d) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))):
            raise _batch_error(ctx, "flips")
    if name in ("squeeze", "unsqueeze", "narrow", "select", "unflatten", "repeat_interleave", "index_select",
                "unfold") and (
            dim is None or _is_zero_dim(dim)):
        if not (name == "repeat_interleave" and ctx.arg(2, "dim") not in (None, 0)):
            raise _batch_error(ctx, "changes")
    return index_op(ctx)  # expand, pad and flip: the forward's batch-size check catches dim 0


@register_function(torch.amax, torch.amin)
@register_method("amax", "amin")
def _extremum(ctx: Context):
    """amax/amin over feature dims (CBAM-style channel max pooling): every output is one input
    entry, R goes to the winner (its VJP; ties share), as max pooling's winner-takes-all."""
    dim = ctx.arg(1, "dim")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if dim is None or dim == () or any(not isinstance(d, int) or d == 0 for d in dims):
        raise _batch_error(ctx, "reduces over")
    return IndexOp(_name(ctx), ctx.bound(ctx.target_fn()), _wrt(ctx), local=True)


@register_function(torch.max, torch.min)
@register_method("max", "min")
def _max_values(ctx: Context):
    """``x.max(dim)[0]`` over a feature dim (VOLO's auxiliary token head): the values, each one
    input entry, as amax (winner-takes-all); the indices carry no relevance and are refused."""
    dim = ctx.arg(1, "dim")
    if not isinstance(dim, int) or len(ctx.refs) != 1:
        return None  # max over everything, or elementwise max of two tensors
    if dim == 0:
        raise _batch_error(ctx, "reduces over")
    if any(not (u.op == "call_function" and u.target is operator.getitem and u.args[1] == 0) for u in ctx.node.users):
        return None
    return TupleOp(ctx.bound(ctx.target_fn()), local=True)


@register_function(F.unfold)
def _im2col(ctx: Context):
    """im2col: every output entry is a copy of one input entry (or padding)."""
    return index_op(ctx)


@register_function(F.fold)
@register_module(torch.nn.Fold)
def _fold(ctx: Context):
    """col2im (VOLO's outlook attention): a sum of the overlapping patches, linear without bias:
    the proportional rule of a sum, R_in = x ⊙ Jᵀ (R / stab(y))."""
    fn = ctx.module if ctx.node.op == "call_module" else ctx.bound(ctx.target_fn())
    if len(ctx.tensor_refs()) != 1 or ctx.refs[0] is not ctx.tensor_refs()[0]:
        return None
    return AffineCallOp(fn, fn, 0, "fold (sum of patches)", preserves_sign=True)


@register_module(torch.nn.Unfold)
def _unfold_module(ctx: Context):
    return IndexOp("Unfold", ctx.module, [0])


@register_module(torch.nn.ZeroPad1d, torch.nn.ZeroPad2d, torch.nn.ConstantPad1d, torch.nn.ConstantPad2d,
                 torch.nn.ReflectionPad1d, torch.nn.ReflectionPad2d, torch.nn.ReplicationPad1d,
                 torch.nn.ReplicationPad2d)
def _pad_module(ctx: Context):
    """Padding (CPUBone's same-padding before a strided convolution): every output entry is one
    input entry or a constant, R_in = Jᵀ R (what reaches a constant is absorbed)."""
    return IndexOp(type(ctx.module).__name__, ctx.module, [0])


@register_graph_pass
def _fold_stack_sum(gm: fx.GraphModule) -> None:
    """``torch.stack([a, b, ...]).sum(0)`` (EfficientViM's heads summed) → ``a + b + ...``, and
    ``.mean(0)`` (CrossViT's heads averaged) → ``(a + b + ...) / n``."""
    for node in list(gm.graph.nodes):
        if not (node.op == "call_function" and node.target is torch.stack and len(node.users) == 1):
            continue
        items, dim = node.args[0], (node.args[1:] or (node.kwargs.get("dim", 0),))[0]
        user = next(iter(node.users))
        name = user.target if user.op == "call_method" else getattr(user.target, "__name__", "")
        reduces = user.op in ("call_method", "call_function") and name in ("sum", "mean") and (
            user.args[1:] == (0,) or (len(user.args) == 1 and user.kwargs == {"dim": 0}))
        if dim != 0 or not reduces or not isinstance(items, (list, tuple)) or not items or user.kwargs.get("keepdim"):
            continue
        total = items[0]
        with gm.graph.inserting_before(user):
            for item in items[1:]:
                total = gm.graph.call_function(operator.add, (total, item))
                total.meta = dict(user.meta)
            if name == "mean":
                total = gm.graph.call_function(operator.truediv, (total, len(items)))
                total.meta = dict(user.meta)
        user.replace_all_uses_with(total)
        gm.graph.erase_node(user)
        gm.graph.erase_node(node)




@register_method("to", "type_as", "float", "double")
def _cast(ctx: Context):
    """A dtype or device cast of an input-dependent tensor (Eva's rotary embedding ``.type_as(v)``):
    the identity, R passes; the graph runs in the explained input's dtype and device."""
    tensors = ctx.tensor_refs()
    if not tensors or ctx.node.args[0] is not tensors[0] or (ctx.node.target != "type_as" and len(tensors) != 1):
        return None
    return ops.IdentityOp(), [tensors[0].name]


@register_function(assigned)
def _assigned(ctx: Context):
    """``x[index] = v`` (MViTv2's relative positions added into part of the scores), out of place:
    every output entry is one entry of x or of v, R_in = Jᵀ R for both."""
    index = ctx.node.args[1]
    first = index[0] if isinstance(index, tuple) and index else index
    if not (first is Ellipsis or (isinstance(first, slice) and first == slice(None))):
        raise _batch_error(ctx, "assigns along")
    index_refs: list[fx.Node] = []
    fx.node.map_arg(index, index_refs.append)
    if any(r in ctx.tensor_refs() for r in index_refs):
        raise UnsupportedModelError(f"{_name(ctx)} {_where(ctx)} indexes with a tensor computed from the input; "
                                    "chexplain supports assignments at fixed positions")
    return IndexOp("item assignment", ctx.bound(assigned), _wrt(ctx))


@register_function(torch.stack)
def _stack(ctx: Context):
    if _is_zero_dim(ctx.arg(1, "dim", 0)):
        raise _batch_error(ctx, "stacks along")
    return index_op(ctx)


@register_function(torch.cat, torch.concat, torch.concatenate)
def _cat(ctx: Context):
    dim = ctx.arg(1, "dim", 0)
    if not isinstance(dim, int) or dim == 0:
        raise _batch_error(ctx, "concatenates along")
    if len(ctx.tensor_refs()) != len(ctx.refs):  # constants (a class token) among the parts
        return index_op(ctx)
    return ops.CatOp(dim)


class TupleOp(ops.Op):
    """chunk/split/unbind: a tuple of tensors; not a node itself, its items become IndexOps."""

    virtual = True

    def __init__(self, fn, local: bool = False):
        self.fn, self.local = fn, local


@register_function(torch.chunk, torch.split, torch.unbind, torch.tensor_split)
@register_method("chunk", "split", "unbind", "tensor_split")
def _tuple(ctx: Context):
    name = ctx.node.target if ctx.node.op == "call_method" else ctx.node.target.__name__
    dim = ctx.arg(1 if name == "unbind" else 2, "dim", 0)
    if not isinstance(dim, int) or dim == 0:
        raise _batch_error(ctx, "splits")
    return TupleOp(ctx.bound(ctx.target_fn()))


@register_function(operator.getitem)
def _getitem(ctx: Context):
    source = ctx.node.args[0]
    if isinstance(source, fx.Node) and source.name in ctx.virtual:
        fxn, tup, inputs = ctx.virtual[source.name]
        index = ctx.node.args[1]
        if not isinstance(index, int):
            return None
        tensors = {r for r in inputs if r not in ctx.meta and r not in ctx.consts}
        fn = tup.fn
        op = IndexOp(f"{_name_of(fxn)}[{index}]", lambda *v: fn(*v)[index], [i for i, r in enumerate(inputs)
                                                                            if r in tensors], tup.local)
        return op, list(inputs)
    index = ctx.node.args[1]
    first = index[0] if isinstance(index, tuple) and index else index
    if not (first is Ellipsis or (isinstance(first, slice) and first == slice(None))):
        raise _batch_error(ctx, "indexes")
    if isinstance(index, tuple) and first is Ellipsis and any(i is None for i in index):
        raise _batch_error(ctx, "may change")
    return index_op(ctx)


def _name_of(node: fx.Node) -> str:
    t = node.target
    return f"Tensor.{t}" if node.op == "call_method" else getattr(t, "__name__", str(t))


@register_function(torchvision.ops.stochastic_depth)
def _stochastic_depth(ctx: Context):
    """Stochastic depth (Huang et al. 2016) in eval mode is the identity."""
    training = ctx.arg(3, "training", True)
    p = ctx.arg(1, "p", 0.0)
    return ops.IdentityOp() if training is False or p == 0 else None


@register_module(torchvision.ops.StochasticDepth)
def _stochastic_depth_module(ctx: Context):
    return ops.IdentityOp()  # the traced clone is in eval mode
