"""Normalisation layers with their statistics held constant, so that each is linear in x.

- BatchNorm written functionally (``F.batch_norm`` in eval mode with running statistics, as in
  timm's ``BatchNormAct2d``): the per-channel affine map of ``nn.BatchNorm2d`` (canonized the
  same way, merged into the convolution before it).
- LayerNorm (over the last dims; ConvNeXt's channels-last and LayerNorm2d included) and
  GroupNorm: y = w ⊙ (x − μ(x)) / σ + b with σ treated as a constant (CP-LRP, Ali et al. 2022,
  "XAI for transformers: better explanations through conservative propagation", Sec. 3.2;
  AttnLRP, Achtibat et al. 2024, Sec. 3.3). The centering x − μ(x) is linear and stays in the
  map, so a bias-free network conserves relevance; the shift b absorbs its share b_j R_j / y_j
  (reported like a bias). Rule: the linearised ε rule of ``generic.LinearisedOp``,
  R_i = x_i Σ_j A_ji R_j / stab(y_j) with A = diag(w / σ) (I − 11ᵀ / C).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .. import ops
from .generic import LinearisedOp
from ..registry import Context, register_function, register_method, register_module

Tensor = torch.Tensor


def _cast(t: Optional[Tensor], dtype, device) -> Optional[Tensor]:
    return None if t is None else t.to(dtype=dtype, device=device)


class LayerNormOp(LinearisedOp):
    """LayerNorm over the last ``len(shape)`` dims, σ constant (see the module docstring)."""

    description = "layer norm, σ constant"

    def __init__(self, shape: tuple[int, ...], weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> None:
        self.shape, self.weight, self.bias, self.eps = tuple(shape), weight, bias, eps

    @property
    def _dims(self) -> tuple[int, ...]:
        return tuple(range(-len(self.shape), 0))

    def forward(self, x):
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)

    def rstd(self, x: Tensor) -> Tensor:
        return (x.var(self._dims, unbiased=False, keepdim=True) + self.eps).rsqrt()

    def linear(self, x, inputs):
        rstd = self.rstd(inputs[0])
        y = (x - x.mean(self._dims, keepdim=True)) * rstd
        return y if self.weight is None else y * self.weight

    def linear_vjp(self, s, inputs, out, ctx):
        """Aᵀ s = (g − mean(g)) / σ with g = w ⊙ s (the centering matrix is symmetric)."""
        if "rstd" not in ctx.state:
            ctx.state["rstd"] = self.rstd(inputs[0]).unsqueeze(1)
        g = s if self.weight is None else s * self.weight
        dims = tuple(d for d in self._dims)
        return (g - g.mean(dims, keepdim=True)).mul_(ctx.state["rstd"])

    def to(self, dtype, device):
        return LayerNormOp(self.shape, _cast(self.weight, dtype, device), _cast(self.bias, dtype, device), self.eps)


class GroupNormOp(LinearisedOp):
    """GroupNorm (channels on dim 1 in ``groups`` groups), σ per sample and group constant."""

    description = "group norm, σ constant"

    def __init__(self, groups: int, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> None:
        self.groups, self.weight, self.bias, self.eps = groups, weight, bias, eps

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)

    def _channel(self, t: Tensor, ndim: int) -> Tensor:
        return t.view(-1, *([1] * (ndim - 2)))

    def rstd(self, x: Tensor) -> Tensor:
        """1/σ per (sample, group), shaped (N, G, 1)."""
        g = x.reshape(x.shape[0], self.groups, -1)
        return (g.var(-1, unbiased=False, keepdim=True) + self.eps).rsqrt()

    def linear(self, x, inputs):
        n, c = x.shape[:2]
        g = x.reshape(n, self.groups, -1)
        y = ((g - g.mean(-1, keepdim=True)) * self.rstd(inputs[0])).view_as(x)
        return y if self.weight is None else y * self._channel(self.weight, x.ndim)

    def linear_vjp(self, s, inputs, out, ctx):
        x = inputs[0]
        if "rstd" not in ctx.state:
            ctx.state["rstd"] = self.rstd(x).unsqueeze(1)  # (N, 1, G, 1)
        n, t = s.shape[:2]
        g = s if self.weight is None else s * self._channel(self.weight, x.ndim)
        g = g.reshape(n, t, self.groups, -1)
        return (g - g.mean(-1, keepdim=True)).mul_(ctx.state["rstd"]).view(n, t, *x.shape[1:])

    def to(self, dtype, device):
        return GroupNormOp(self.groups, _cast(self.weight, dtype, device), _cast(self.bias, dtype, device), self.eps)


def _detached(t: Any) -> Optional[Tensor]:
    return None if t is None else t.detach().clone()


def _where(ctx: Context) -> str:
    return f"at '{ctx.path}'" if ctx.path else "in the model's top-level forward"


def _const_arg(ctx: Context, index: int, name: str) -> Optional[Tensor]:
    value = ctx.arg(index, name)
    if value is None:
        return None
    got = ctx.const(value)
    if got is None:
        raise UnsupportedModelError(f"{ctx.node.target.__name__} {_where(ctx)} takes its {name} from the input; "
                                    "chexplain needs it to be a parameter or buffer")
    return got.detach().clone()


@register_module(nn.LayerNorm)
def _layer_norm_module(ctx: Context):
    m = ctx.module
    return LayerNormOp(m.normalized_shape, _detached(m.weight), _detached(getattr(m, "bias", None)), m.eps)


@register_function(F.layer_norm)
def _layer_norm(ctx: Context):
    shape = ctx.arg(1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    op = LayerNormOp(shape, _const_arg(ctx, 2, "weight"), _const_arg(ctx, 3, "bias"), ctx.arg(4, "eps", 1e-5))
    return op, [ctx.refs[0].name]


@register_module(nn.GroupNorm)
def _group_norm_module(ctx: Context):
    m = ctx.module
    return GroupNormOp(m.num_groups, _detached(m.weight), _detached(m.bias), m.eps)


@register_function(F.group_norm)
def _group_norm(ctx: Context):
    op = GroupNormOp(ctx.arg(1, "num_groups"), _const_arg(ctx, 2, "weight"), _const_arg(ctx, 3, "bias"),
                     ctx.arg(4, "eps", 1e-5))
    return op, [ctx.refs[0].name]


@register_function(F.batch_norm)
def _batch_norm(ctx: Context):
    """F.batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum, eps)."""
    if ctx.arg(5, "training", False):
        raise UnsupportedModelError(f"batch_norm {_where(ctx)} normalises with batch statistics (training=True or "
                                    "no running statistics); LRP needs per-sample operations")
    mean, var = _const_arg(ctx, 1, "running_mean"), _const_arg(ctx, 2, "running_var")
    weight, bias = _const_arg(ctx, 3, "weight"), _const_arg(ctx, 4, "bias")
    eps = ctx.arg(7, "eps", 1e-5)
    if mean is None or var is None:
        raise UnsupportedModelError(f"batch_norm {_where(ctx)} has no running statistics")
    scale = (var.double() + eps).rsqrt()
    if weight is not None:
        scale = scale * weight.double()
    shift = -mean.double() * scale
    if bias is not None:
        shift = shift + bias.double()
    return ops.AffineOp(scale, shift), [ctx.refs[0].name]



# --------------------------------------------------------------------------- statistics
@register_function(torch.norm, torch.linalg.vector_norm, torch.linalg.norm)
@register_method("norm")
def _norm_statistic(ctx: Context):
    """‖x‖ over feature dims (ConvNeXt-V2's global response norm, x / ‖x‖ normalisations): a
    statistic held constant, as LayerNorm's σ under CP-LRP (Ali et al. 2022, Sec. 3.2). It is a
    value without relevance (like a size); what it scales or divides is then linear in x and takes
    the rule of a product with a constant."""
    dim = ctx.arg(2, "dim")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if dim is None or any(not isinstance(d, int) or d == 0 for d in dims):
        name = f"Tensor.{ctx.node.target}" if ctx.node.op == "call_method" else ctx.node.target.__name__
        raise UnsupportedModelError(f"{name} {_where(ctx)} reduces over the batch dimension (dim={dim!r}); reduce "
                                    "over feature dimensions only")
    ctx.meta.add(ctx.node.name)
    return ops.MetaOp(ctx.bound(ctx.target_fn()))
