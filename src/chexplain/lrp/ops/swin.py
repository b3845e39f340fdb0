"""torchvision's Swin v1/v2 window attention as explicit, traceable operations.

torchvision computes it in one fx-wrapped function (``shifted_window_attention``) whose control
flow depends on the feature size. In the traced copy, :class:`ExplicitWindowAttention` replaces
``ShiftedWindowAttention``/``ShiftedWindowAttentionV2`` with the same computation written as
operations that have rules (Liu et al. 2021, Sec. 3.2; 2022 for v2's cosine attention): pad,
cyclic shift (``roll``), window partition (a reshape merging batch and windows), q/k/v
``nn.Linear``, scaled or cosine logits, relative position bias (constant), the shift mask
(a constant added, :func:`_add_shift_mask`), softmax, ``A @ v``, the output projection, window
reversal, reverse shift, crop. The decisions that depend on the feature size (no shift where the
window covers the map; the mask) are made at run time in small functions of the sizes.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .generic import ProductOp, ShiftOp
from ..registry import Context, register_function, register_substitute


def _effective_shift(window: list, shift: list, pad_h: int, pad_w: int) -> tuple[int, int]:
    """No cyclic shift along an axis the window covers entirely (as torchvision)."""
    return (0 if window[0] >= pad_h else shift[0]), (0 if window[1] >= pad_w else shift[1])


def _add_shift_mask(attn: torch.Tensor, pad_h: int, pad_w: int, window: list, s0: int, s1: int) -> torch.Tensor:
    """attn (B·nW, heads, L, L) + the shifted-window mask (−100 between regions that the shift
    brought together, 0 elsewhere; Liu et al. 2021, Fig. 4); unchanged without a shift."""
    if s0 == 0 and s1 == 0:
        return attn
    mask = attn.new_zeros((pad_h, pad_w))
    count = 0
    for h in ((0, -window[0]), (-window[0], -s0), (-s0, None)):
        for w in ((0, -window[1]), (-window[1], -s1), (-s1, None)):
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    mask = mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1]).permute(0, 2, 1, 3)
    mask = mask.reshape(-1, window[0] * window[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    mask = torch.where(mask != 0, torch.full_like(mask, -100.0), torch.zeros_like(mask))
    n_w, heads, length = mask.shape[0], attn.shape[1], attn.shape[2]
    return (attn.view(-1, n_w, heads, length, length) + mask[None, :, None]).view(-1, heads, length, length)


fx.wrap("_effective_shift")
fx.wrap("_add_shift_mask")


class ExplicitWindowAttention(nn.Module):
    """The window attention of torchvision's Swin (v1 and v2) as explicit operations."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m, self.v2 = m, hasattr(m, "logit_scale")
        self.qkv = m.qkv
        if self.v2 and m.qkv.bias is not None:  # v2 has no key bias (torchvision zeroes that third)
            self.qkv = copy.deepcopy(m.qkv)
            with torch.no_grad():
                n = self.qkv.bias.numel() // 3
                self.qkv.bias[n:2 * n].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, ws, heads = self.m, self.m.window_size, self.m.num_heads
        bias = m.get_relative_position_bias()
        b, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, (ws[1] - w % ws[1]) % ws[1], 0, (ws[0] - h % ws[0]) % ws[0]))
        _, ph, pw, _ = x.shape
        shift = _effective_shift(ws, m.shift_size, ph, pw)
        s0, s1 = shift[0], shift[1]
        x = torch.roll(x, shifts=(-s0, -s1), dims=(1, 2))
        n_w = (ph // ws[0]) * (pw // ws[1])
        x = x.view(b, ph // ws[0], ws[0], pw // ws[1], ws[1], c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b * n_w, ws[0] * ws[1], c)  # the windows of every sample
        qkv = self.qkv(x).reshape(x.size(0), x.size(1), 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.v2:
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(m.logit_scale, max=math.log(100.0)).exp()
        else:
            attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        attn = _add_shift_mask(attn + bias, ph, pw, ws, s0, s1)
        attn = torch.softmax(attn, dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
        x = m.proj(x)
        x = x.view(b, ph // ws[0], pw // ws[1], ws[0], ws[1], c).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
        x = torch.roll(x, shifts=(s0, s1), dims=(1, 2))
        return x[:, :h, :w, :].contiguous()


@register_function(_add_shift_mask)
def _shift_mask(ctx: Context):
    """A constant (the mask) added: its share is absorbed, like a bias."""
    return ShiftOp(ctx.bound(ctx.target_fn()), ctx.refs.index(ctx.tensor_refs()[0]), 1.0, "shifted-window mask")


@register_function(F.normalize)
def _normalize(ctx: Context):
    """x / ‖x‖ with the norm constant (v2's cosine attention): R passes."""
    return ProductOp(ctx.bound(ctx.target_fn()), 0, "x / ‖x‖ (norm constant)")


def _register() -> None:
    from torchvision.models import swin_transformer as st

    for cls in (st.ShiftedWindowAttention, st.ShiftedWindowAttentionV2):
        register_substitute(cls)(ExplicitWindowAttention)


_register()


def _register_merging() -> None:
    from torchvision.models import swin_transformer as st

    from .shape import index_op

    if hasattr(st, "_patch_merging_pad"):  # patch merging: pad and gather the 2x2 neighbours (an index op)
        register_function(st._patch_merging_pad)(index_op)


_register_merging()
