"""Linear layers of a traced graph: dense, convolution and per-channel affine ops. Each exposes
its forward with arbitrary (modified) weights and the matching vector-Jacobian product, so that
every LRP rule runs on the layer's own transposed operation (never materialising z_ij)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from .base import Op, _cast, _shallow_copy


# --------------------------------------------------------------------------- linear layers
class LinearOp(Op):
    """A layer z = W x + b. ``bias`` is None, per output channel, or spatial (C_out, *out)."""

    kind = "linear"
    layer_type = "linear"
    takes_rule = True

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        self.weight = weight
        self.bias = bias
        self._memo: dict[str, Any] = {}

    def relevance(self, inputs, out, R, ctx):
        """The composite's rule for this layer (:mod:`chexplain.lrp.rules`): its R-independent
        part prepared once (``ctx.state["rule"]``), then applied to R."""
        rule = ctx.rule
        layer = self.rule_layer(inputs, rule, ctx.state)
        if "rule" not in ctx.state:
            ctx.state["rule"] = rule.prepare(layer, inputs[0], out, nonnegative=ctx.nonnegative)
        return [rule.apply(layer, inputs[0], ctx.state["rule"], R)] + [None] * (len(inputs) - 1), repr(rule)

    def rule_layer(self, inputs: list[Any], rule: Any, state: dict) -> "LinearOp":
        """The layer as its rule sees it: fed by a threshold ReLU (a second input, the off-state
        constant), its bias is the per-sample W·off + b (computed once, only for rules that read
        the bias; the others take z from the forward, which includes it)."""
        if len(inputs) == 1 or not getattr(rule, "uses_bias", True):
            return self
        if "layer" not in state:
            state["layer"] = self.with_bias(self.effective_bias(inputs[1]))
        return state["layer"]

    def signed_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w⁺, w⁻), computed once per layer and reused by every call."""
        if "w+" not in self._memo:
            self._memo["w+"], self._memo["w-"] = self.weight.clamp(min=0), self.weight.clamp(max=0)
        return self._memo["w+"], self._memo["w-"]

    def abs_weight(self) -> torch.Tensor:
        """|w| = w⁺ − w⁻, computed once per layer."""
        if "|w|" not in self._memo:
            wp, wn = self.signed_weights()
            self._memo["|w|"] = wp - wn
        return self._memo["|w|"]

    def derived(self, name: str, sources: tuple[torch.Tensor, ...], make: Callable[[], torch.Tensor],
                keep: int) -> torch.Tensor:
        """``make()``, a tensor derived from ``sources``, kept per layer for the last ``keep``
        distinct sources (the memo holds them, so their ids stay unique; per-call weights such
        as γ's do not pile up)."""
        kept = self._memo.setdefault(name, {})
        key = tuple(id(t) for t in sources)
        got = kept.get(key)
        if got is None or any(a is not b for a, b in zip(got[0], sources)):
            if len(kept) >= keep:
                kept.pop(next(iter(kept)))
            got = kept[key] = (sources, make())
        return got[1]

    def forward(self, x: torch.Tensor, off: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z = W x + b; ``off``: the off-state constant of a threshold ReLU before the layer
        (:class:`OffStateOp`), an input-dependent part of the bias: z = W (x + off) + b."""
        return self.forward_with(x if off is None else x + off, self.weight, self.bias)

    def effective_bias(self, off: torch.Tensor) -> torch.Tensor:
        """The per-sample bias W·off + b (N, *out) that a layer fed by a threshold ReLU has."""
        return self.forward_with(off, self.weight, self.bias)

    def with_bias(self, bias: Optional[torch.Tensor]) -> "LinearOp":
        """The same layer (its weight memo kept) with another bias."""
        new = _shallow_copy(self)
        new.bias = bias
        return new

    def forward_with(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def add_bias(self, z: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """z + b, as :meth:`forward_with` adds it (for an output computed without bias)."""
        return self._add_bias(z, bias)

    def vjp(self, grad: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Wᵀ·grad for a batch ``grad`` of output gradients (any batch size)."""
        raise NotImplementedError

    def _add_bias(self, z: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        if bias is None:
            return z
        if bias.ndim == 1:
            return z + bias.view(1, -1, *([1] * (z.ndim - 2)))
        if bias.ndim == z.ndim:  # per sample (N, C_out, *out): see effective_bias
            return z + bias
        return z + bias.unsqueeze(0)

    def with_params(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> "LinearOp":
        new = _shallow_copy(self)
        new.weight, new.bias, new._memo = weight, bias, {}
        return new

    def to(self, dtype: torch.dtype, device: torch.device) -> "LinearOp":
        return self.with_params(_cast(self.weight, dtype, device), _cast(self.bias, dtype, device))


class DenseOp(LinearOp):
    """``torch.nn.Linear``: z_j = Σ_i x_i w_ij + b_j."""

    layer_type = "dense"

    def forward_with(self, x, weight, bias):
        return self._add_bias_dense(F.linear(x, weight), bias)

    @staticmethod
    def _add_bias_dense(z, bias):
        return z if bias is None else z + bias

    def add_bias(self, z, bias):
        return self._add_bias_dense(z, bias)

    def vjp(self, grad, weight, input_shape):
        return grad @ weight


class TokenDenseOp(LinearOp):
    """``torch.nn.Linear`` on inputs (N, ..., C_in) with more than one leading dimension (tokens,
    channels-last maps): z = x Wᵀ + b on the last dimension. A separate type because the fused
    paths of the rules assume the output channels on dim 1."""

    layer_type = "dense"

    def forward_with(self, x, weight, bias):
        return self.add_bias(F.linear(x, weight), bias)

    def add_bias(self, z, bias):
        return z if bias is None else z + bias

    def vjp(self, grad, weight, input_shape):
        return grad @ weight


#: flipped kernels kept per layer (w, w⁺, w⁻, their pairs, γ's two)
_FLIPS_KEPT = 8


class ConvOp(LinearOp):
    """``torch.nn.Conv1d`` / ``Conv2d`` with any stride, padding, dilation and groups."""

    layer_type = "conv"

    def __init__(self, weight, bias, stride, padding, dilation, groups) -> None:
        super().__init__(weight, bias)
        self.dims = weight.ndim - 2
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    @property
    def _conv(self) -> Callable:
        return F.conv1d if self.dims == 1 else F.conv2d

    def _flipped(self, weight: torch.Tensor) -> torch.Tensor:
        """The kernel of the transposed convolution as a convolution, (C_in, C_out/g, *K) flipped
        in space, kept per weight tensor."""
        def make() -> torch.Tensor:
            g, (c_out, c_in_g), k = self.groups, weight.shape[:2], weight.shape[2:]
            w = weight.reshape(g, c_out // g, c_in_g, *k).transpose(1, 2).reshape(g * c_in_g, c_out // g, *k)
            return w.flip(list(range(2, 2 + self.dims))).contiguous()
        return self.derived("flipped", (weight,), make, _FLIPS_KEPT)

    def forward_with(self, x, weight, bias):
        fused = bias if bias is not None and bias.ndim == 1 else None  # a per-channel bias is fused
        z = self._conv(x, weight, fused, self.stride, self.padding, self.dilation, self.groups)
        return z if fused is not None else self._add_bias(z, bias)

    def vjp(self, grad, weight, input_shape):
        """The transposed convolution, with the output padding that restores the input size.

        1 × 1 and depthwise kernels at stride 1 and dilation 1 run as a convolution with the
        flipped, transposed kernel and padding K − 1 − P (the same sums): PyTorch's CPU transposed
        convolution has no fast path for them (1 × 1, 24 → 144 channels, 56 px, EfficientNet-B0:
        4.6× as long); other kernels keep oneDNN's transposed convolution (as fast, measured)."""
        stride = tuple(_at(self.stride, i) for i in range(self.dims))
        kernel, padding = weight.shape[2:], tuple(_at(self.padding, i) for i in range(self.dims))
        if (max(stride) == 1 and all(_at(self.dilation, i) == 1 for i in range(self.dims))
                and (max(kernel) == 1 or weight.shape[1] == 1)
                and all(0 <= p <= k - 1 for p, k in zip(padding, kernel))):
            return self._conv(grad, self._flipped(weight), None, 1, tuple(k - 1 - p for p, k in zip(padding, kernel)),
                              1, self.groups)
        if (self.dims == 2 and self.groups == 1 and weight.shape[1] <= SUBPIXEL_MAX_CHANNELS and max(stride) > 1
                and min(weight.shape[2:]) > 2 * max(stride) and all(_at(self.dilation, i) == 1 for i in range(2))):
            padding = tuple(_at(self.padding, i) for i in range(2))
            return subpixel_transpose(grad, weight, stride, padding, tuple(input_shape[2:]))
        out_pad = []
        for i in range(self.dims):
            k = weight.shape[2 + i]
            size = (grad.shape[2 + i] - 1) * stride[i] - 2 * _at(self.padding, i) \
                + _at(self.dilation, i) * (k - 1) + 1
            out_pad.append(input_shape[2 + i] - size)
        fn = F.conv_transpose1d if self.dims == 1 else F.conv_transpose2d
        return fn(grad, weight, None, self.stride, self.padding, tuple(out_pad), self.groups, self.dilation)


#: Strided transposed convolutions onto at most this many channels (an image input layer) with
#: kernels wider than twice the stride run as a sub-pixel convolution: measured 2.1× faster than
#: oneDNN's transposed convolution for a 7×7, stride-2 stem (64 → 3 channels, 112 px), slower
#: from 8 channels on or for 3×3 kernels.
SUBPIXEL_MAX_CHANNELS = 4


def subpixel_transpose(s: torch.Tensor, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                       size: tuple[int, int]) -> torch.Tensor:
    """conv_transpose2d(s, w) (groups 1, dilation 1) onto an output of spatial ``size``, computed as
    one stride-1 convolution whose output channels are the S1·S2 phases of the output, then
    interleaved (the sub-pixel identity; Shi et al. 2016).

    Per dimension, output o with o + P = S·a + r receives Σ_d s[a − d] w[S·d + r], d = 0 … D,
    D = ⌊(K − 1)/S⌋: a correlation of s with the flipped phase kernel w[S·(D − j) + r].
    """
    (s1, s2), (p1, p2), (l1, l2) = stride, padding, size
    c_out, c_in, k1, k2 = w.shape
    d1, d2 = (k1 - 1) // s1, (k2 - 1) // s2
    phases = F.pad(w, (0, s2 * (d2 + 1) - k2, 0, s1 * (d1 + 1) - k1))  # zero taps beyond the kernel
    phases = phases.reshape(c_out, c_in, d1 + 1, s1, d2 + 1, s2).flip(2, 4)
    phases = phases.permute(1, 3, 5, 0, 2, 4).reshape(c_in * s1 * s2, c_out, d1 + 1, d2 + 1)
    a1, a2 = -(-(p1 + l1) // s1), -(-(p2 + l2) // s2)
    n, _, h1, h2 = s.shape
    u = F.conv2d(F.pad(s, (d2, a2 - h2, d1, a1 - h1)), phases)  # (n, c_in·S1·S2, A1, A2)
    u = u.view(n, c_in, s1, s2, a1, a2).permute(0, 1, 4, 2, 5, 3).reshape(n, c_in, a1 * s1, a2 * s2)
    return u[:, :, p1:p1 + l1, p2:p2 + l2].contiguous()


def _at(value: Any, i: int) -> int:
    return value[i] if isinstance(value, (tuple, list)) else value


class AffineOp(LinearOp):
    """A per-channel affine map (an un-merged BatchNorm in eval mode): z = w·x + b on dim 1."""

    layer_type = "affine"

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))

    def forward_with(self, x, weight, bias):
        z = x * self._view(weight, x.ndim)
        return self.add_bias(z, bias)

    def add_bias(self, z, bias):
        return z if bias is None else z + self._view(bias, z.ndim)

    def vjp(self, grad, weight, input_shape):
        return grad * self._view(weight, grad.ndim)
