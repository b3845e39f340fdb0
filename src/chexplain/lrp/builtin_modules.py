"""The built-in table for ``call_module`` nodes of torch.nn layers (Linear, Conv, BatchNorm,
ReLU, LeakyReLU, Tanh, pooling, Flatten, dropout); converters in ``registry`` take precedence."""

from __future__ import annotations

from typing import Any

import torch.fx as fx
import torch.nn as nn

from ..errors import UnsupportedModelError
from . import ops

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
