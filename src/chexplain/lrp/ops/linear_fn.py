"""Linear layers written functionally: ``F.linear`` and ``F.conv1d/2d`` whose weight (and bias)
are parameters or buffers read in forward (timm's ``Linear`` in MobileNetV3, GhostNet, LCNet;
``Conv2dSame``; weight-standardised ``StdConv2d``, whose standardised weight is folded to a
constant). They become the same :class:`~chexplain.lrp.ops.linear.DenseOp` / ``ConvOp`` as ``nn.Linear``
/ ``nn.Conv``, so the composite's rule and canonization apply (Bach et al. 2015; Montavon et
al. 2019). A weight computed from the input is refused, naming the op and module path.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .. import ops
from ..registry import Context, register_function

_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def where(ctx: Context) -> str:
    """Where the node sits, for a one-line refusal."""
    return f"at '{ctx.path}'" if ctx.path else "in the model's top-level forward"


def param_value(ctx: Context, value: Any, what: str):
    """The parameter or buffer a functional layer reads (None stays None); refused when it
    is computed from the input."""
    if value is None:
        return None
    got = ctx.const(value)
    if got is None:
        raise UnsupportedModelError(
            f"{ctx.node.target.__name__} {where(ctx)} takes its {what} from the input; chexplain needs a parameter "
            "or buffer")
    return got.detach().clone()


def explained_input(ctx: Context) -> str:
    """The name of the one input-dependent tensor a functional layer is applied to."""
    x = ctx.arg(0, "input")
    tensors = ctx.tensor_refs()
    if len(tensors) != 1 or tensors[0] is not x:
        raise UnsupportedModelError(
            f"{ctx.node.target.__name__} {where(ctx)} is applied to {len(tensors)} input-dependent tensors; chexplain "
            "explains a layer whose weights are parameters")
    return x.name


@register_function(F.linear)
def _linear(ctx: Context):
    x = explained_input(ctx)
    return ops.DenseOp(param_value(ctx, ctx.arg(1, "weight"), "weight"), param_value(ctx, ctx.arg(2, "bias"), "bias")), [x]


def as_tuple(v: Any, n: int) -> tuple:
    """A per-dimension argument (stride, padding, ...) as an ``n``-tuple."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


@register_function(F.conv1d, F.conv2d)
def _conv(ctx: Context):
    x = explained_input(ctx)
    bound = dict(zip(_CONV_ARGS, ctx.node.args)) | dict(ctx.node.kwargs)
    weight = param_value(ctx, bound["weight"], "weight")
    dims = weight.ndim - 2
    stride, dilation = as_tuple(bound.get("stride", 1), dims), as_tuple(bound.get("dilation", 1), dims)
    padding = bound.get("padding", 0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        else:  # "same" with stride 1
            total = [d * (k - 1) for k, d in zip(weight.shape[2:], dilation)]
            if any(t % 2 for t in total):
                raise UnsupportedModelError(f"{ctx.node.target.__name__} {where(ctx)} uses asymmetric "
                                            "padding='same'; not supported")
            padding = tuple(t // 2 for t in total)
    return ops.ConvOp(weight, param_value(ctx, bound.get("bias"), "bias"), stride, as_tuple(padding, dims), dilation,
                      bound.get("groups", 1)), [x]
