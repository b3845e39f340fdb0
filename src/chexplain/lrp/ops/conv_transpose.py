"""Transposed convolutions: ``nn.ConvTranspose1d/2d/3d`` and ``F.conv_transpose1d/2d/3d`` with
parameter weights (LowFormer's attention upsampling, decoder heads). A transposed convolution
is linear, z = Wᵀ_conv x + b, with the adjoint of a convolution as its forward; its
vector-Jacobian product is therefore that convolution itself (same stride, padding, dilation and
groups; ``output_padding`` only adds output rows that no input reaches). Every LRP rule of the
convolution layers applies unchanged (Bach et al. 2015; Montavon et al. 2017, 2019), the layer
taking the rule of type "conv".
"""

from __future__ import annotations

import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .linear import LinearOp
from .linear_fn import as_tuple, explained_input, param_value, where
from ..registry import Context, register_function, register_module

_TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_ADJOINT = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_ARGS = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")


class ConvTransposeOp(LinearOp):
    """z = conv_transpose(x, W) + b with weight (C_in, C_out/groups, *K); any stride, padding,
    output padding, dilation and groups."""

    layer_type = "conv"

    def __init__(self, weight, bias, stride, padding, output_padding, dilation, groups) -> None:
        super().__init__(weight, bias)
        self.dims = weight.ndim - 2
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, groups

    def forward_with(self, x, weight, bias):
        fused = bias if bias is not None and bias.ndim == 1 else None
        z = _TRANSPOSED[self.dims](x, weight, fused, self.stride, self.padding, self.output_padding, self.groups,
                                   self.dilation)
        return z if fused is not None else self._add_bias(z, bias)

    def vjp(self, grad, weight, input_shape):
        """Wᵀ·grad: the convolution whose adjoint the layer is; its output has the input's size
        because output_padding < stride (or < dilation) is dropped by the floor of the size formula."""
        out = _ADJOINT[self.dims](grad, weight, None, self.stride, self.padding, self.dilation, self.groups)
        if tuple(out.shape[2:]) != tuple(input_shape[2:]):  # output_padding ≥ stride (allowed with dilation)
            out = out[(..., *(slice(0, s) for s in input_shape[2:]))]
        return out


@register_module(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def _module(ctx: Context):
    mod = ctx.module
    if mod.padding_mode != "zeros":
        raise UnsupportedModelError(f"{type(mod).__name__} {where(ctx)} uses padding_mode='{mod.padding_mode}'; "
                                    "only zero padding is supported")
    if len(ctx.node.args) > 1 or ctx.node.kwargs:
        raise UnsupportedModelError(f"{type(mod).__name__} {where(ctx)} is called with an output_size; chexplain "
                                    "needs the layer's own output_padding")
    detach = lambda t: None if t is None else t.detach().clone()  # noqa: E731
    return ConvTransposeOp(detach(mod.weight), detach(mod.bias), mod.stride, mod.padding, mod.output_padding,
                           mod.dilation, mod.groups)


@register_function(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
def _function(ctx: Context):
    x = explained_input(ctx)
    bound = dict(zip(_ARGS, ctx.node.args)) | dict(ctx.node.kwargs)
    if any(isinstance(bound.get(k), fx.Node) for k in ("stride", "padding", "output_padding", "groups", "dilation")):
        raise UnsupportedModelError(f"{ctx.node.target.__name__} {where(ctx)} takes its geometry from a traced "
                                    "value; chexplain needs constants")
    weight = param_value(ctx, bound["weight"], "weight")
    n = weight.ndim - 2
    return ConvTransposeOp(weight, param_value(ctx, bound.get("bias"), "bias"), as_tuple(bound.get("stride", 1), n),
                           as_tuple(bound.get("padding", 0), n), as_tuple(bound.get("output_padding", 0), n),
                           as_tuple(bound.get("dilation", 1), n), bound.get("groups", 1)), [x]

