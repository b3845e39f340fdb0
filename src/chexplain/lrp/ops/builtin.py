"""Converters of torch's own layers and functions (Linear, Conv, BatchNorm, ReLU, LeakyReLU,
Tanh, pooling, Flatten, reshapes, reductions, dropout), registered in
:mod:`chexplain.lrp.registry` like every other converter."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .. import ops
from ..graph import _bound, _describe, _target_fn, _where
from ..registry import Context, register_function, register_method, register_module

_RELU = {F.relu, torch.relu, torch.relu_, getattr(F, "relu_", F.relu)}
_TANH = {torch.tanh, F.tanh}
_DROPOUT_FN = {F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout}
_POOL_FN = {F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d}
_MAXPOOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

_DROPOUT_MOD = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity)


def convert_module(gm: fx.GraphModule, node: fx.Node) -> ops.Op | None:
    mod = gm.get_submodule(node.target)
    detach = lambda t: None if t is None else t.detach().clone()  # noqa: E731
    if isinstance(mod, nn.Linear):
        return ops.DenseOp(detach(mod.weight), detach(mod.bias))
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        if mod.padding_mode != "zeros":
            raise UnsupportedModelError(
                f"Conv at '{node.target}' uses padding_mode='{mod.padding_mode}'; only zero padding is supported")
        padding = _explicit_padding(mod, node.target)
        return ops.ConvOp(detach(mod.weight), detach(mod.bias), mod.stride, padding, mod.dilation, mod.groups)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if mod.running_mean is None or mod.running_var is None:
            raise UnsupportedModelError(
                f"BatchNorm at '{node.target}' has no running statistics (track_running_stats=False)")
        var = mod.running_var.detach().double()
        scale = (var + mod.eps).rsqrt()
        if mod.weight is not None:
            scale = scale * mod.weight.detach().double()
        shift = -mod.running_mean.detach().double() * scale
        if mod.bias is not None:
            shift = shift + mod.bias.detach().double()
        return ops.AffineOp(scale, shift)
    if isinstance(mod, nn.ReLU):
        return ops.ActivationOp("relu")
    if isinstance(mod, nn.LeakyReLU):
        return ops.ActivationOp("leaky_relu", mod.negative_slope)
    if isinstance(mod, nn.Tanh):
        return ops.ActivationOp("tanh")
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
        if mod.return_indices:
            raise UnsupportedModelError(f"MaxPool at '{node.target}' returns indices; not supported")
        dims = 1 if isinstance(mod, nn.MaxPool1d) else 2
        return ops.MaxPoolOp(dims, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode)
    if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return ops.PoolOp(mod, type(mod).__name__)
    if isinstance(mod, nn.Flatten):
        if mod.start_dim == 0:
            raise UnsupportedModelError(f"Flatten at '{node.target}' flattens the batch dimension")
        return ops.ReshapeOp(mod)
    if isinstance(mod, _DROPOUT_MOD):
        return ops.IdentityOp()
    return None


def _explicit_padding(mod: nn.Module, path: str) -> Any:
    if not isinstance(mod.padding, str):
        return mod.padding
    if mod.padding == "valid":
        return (0,) * len(mod.kernel_size)
    pads = []
    for k, d in zip(mod.kernel_size, mod.dilation):
        total = d * (k - 1)
        if total % 2:
            raise UnsupportedModelError(f"Conv at '{path}' uses asymmetric padding='same'; not supported")
        pads.append(total // 2)
    return tuple(pads)


def _convert_call(node: fx.Node, refs: list[fx.Node]) -> ops.Op | None:
    target = node.target
    if node.op == "call_method":
        name = target
        if name in ("relu", "relu_"):
            return ops.ActivationOp("relu")
        if name in ("tanh", "tanh_"):
            return ops.ActivationOp("tanh")
        if name in ("view", "reshape", "flatten", "view_as", "reshape_as"):  # view as reshape: may be channels-last
            method = {"flatten": "flatten", "view_as": "reshape_as"}.get(name, name if name == "reshape_as" else "reshape")
            return ops.ReshapeOp(_bound(node, lambda obj, *a, **k: getattr(obj, method)(*a, **k)))
        if name in ("contiguous", "clone"):
            return ops.IdentityOp()
        if name in ("mean", "sum"):
            return _reduction(node, refs)
        return None
    if target in _RELU:
        return ops.ActivationOp("relu")
    if target is F.leaky_relu:
        slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
        return ops.ActivationOp("leaky_relu", slope)
    if target in _TANH:
        return ops.ActivationOp("tanh")
    if target in (F.max_pool1d, F.max_pool2d):
        bound = dict(zip(_MAXPOOL_ARGS, node.args)) | dict(node.kwargs)
        if bound.get("return_indices"):
            return None
        k = bound["kernel_size"]
        return ops.MaxPoolOp(1 if target is F.max_pool1d else 2, k, bound.get("stride") or k,
                             bound.get("padding", 0), bound.get("dilation", 1), bound.get("ceil_mode", False))
    if target in _POOL_FN:
        return _single_tensor(node, refs, lambda fn: ops.PoolOp(fn, target.__name__))
    if target in (torch.flatten, torch.reshape):
        return ops.ReshapeOp(_bound(node, target))
    if target in (torch.mean, torch.sum):
        return _reduction(node, refs)
    if target in _DROPOUT_FN:
        return ops.IdentityOp()
    return None


def _single_tensor(node: fx.Node, refs: list[fx.Node], make: Callable) -> ops.Op | None:
    if len(refs) != 1:
        return None
    return make(_bound(node, _target_fn(node)))


def _reduction(node: fx.Node, refs: list[fx.Node]) -> ops.Op | None:
    args = node.args[1:] if len(node.args) > 1 else ()
    dim = args[0] if args else node.kwargs.get("dim")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if dim is None or any(not isinstance(d, int) or d == 0 for d in dims):
        raise UnsupportedModelError(
            f"{_describe(node)} {_where(node)} reduces over the batch dimension (dim={dim!r}); reduce over "
            "feature dimensions only")
    return _single_tensor(node, refs, lambda fn: ops.PoolOp(fn, f"{node.target} over {dim}"))


@register_module(nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU,
                 nn.Tanh, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.Flatten, *_DROPOUT_MOD)
def _torch_module(ctx: Context) -> ops.Op | None:
    return convert_module(ctx.gm, ctx.node)


@register_function(*_RELU, F.leaky_relu, *_TANH, F.max_pool1d, F.max_pool2d, *_POOL_FN, torch.flatten,
                   torch.reshape, torch.mean, torch.sum, *_DROPOUT_FN)
def _torch_function(ctx: Context) -> ops.Op | None:
    return _convert_call(ctx.node, ctx.refs)


@register_method("relu", "relu_", "tanh", "tanh_", "view", "reshape", "flatten", "view_as", "reshape_as",
                 "contiguous", "clone", "mean", "sum")
def _torch_method(ctx: Context) -> ops.Op | None:
    return _convert_call(ctx.node, ctx.refs)
