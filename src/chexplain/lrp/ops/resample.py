"""Resampling: ``nn.Upsample``, ``F.interpolate`` (nearest, bilinear, bicubic, area, ...; HRNet's
fuse layers). Interpolation is linear in its input without bias, y = A x, so the rule is the
proportional (ε) rule of that map, R_in = x ⊙ Aᵀ (R / stab(y)) with Aᵀ the transposed
interpolation (its vector-Jacobian product; Bach et al. 2015, Eq. 58). Nearest, bilinear and
area weights are non-negative (the sign of x is kept); bicubic's are not.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ...errors import UnsupportedModelError
from .generic import AffineCallOp
from ..registry import Context, register_function, register_module

_SIGNED_MODES = ("bicubic",)


def _where(ctx: Context) -> str:
    return f"at '{ctx.path}'" if ctx.path else "in the model's top-level forward"


@register_function(F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear)
def _interpolate(ctx: Context):
    tensors = ctx.tensor_refs()
    if len(tensors) != 1 or ctx.refs.index(tensors[0]) != 0 or ctx.arg(0, "input") is not tensors[0]:
        raise UnsupportedModelError(f"{ctx.node.target.__name__} {_where(ctx)} takes its size or scale from an "
                                    "input-dependent tensor; chexplain needs it to resample one tensor")
    mode = ctx.arg(2, "mode", "bilinear" if ctx.node.target is F.upsample_bilinear else "nearest")
    if ctx.arg(7, "antialias", False):
        raise UnsupportedModelError(f"{ctx.node.target.__name__} {_where(ctx)} with antialias=True: not supported")
    fn = ctx.bound(ctx.target_fn())
    return AffineCallOp(fn, fn, 0, f"interpolate ({mode})", preserves_sign=mode not in _SIGNED_MODES)


@register_module(nn.Upsample)
def _upsample(ctx: Context):
    mod = ctx.module
    return AffineCallOp(mod, mod, 0, f"upsample ({mod.mode})", preserves_sign=mod.mode not in _SIGNED_MODES)
