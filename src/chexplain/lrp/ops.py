"""The operations of a traced model, each with its own forward and the pieces LRP needs.

A model becomes a list of :class:`Node` objects (see ``graph.py``); every node holds one
``Op``. Linear layers (dense, convolution, per-channel affine) expose their forward with
arbitrary (modified) weights and the matching vector-Jacobian product, so that every LRP rule
is computed with the layer's own transposed operation, never by materialising z_ij.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F


class Op:
    """Base class: ``forward(*inputs)`` on tensors of shape (N, ...)."""

    kind = "op"

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to(self, dtype: torch.dtype, device: torch.device) -> "Op":
        return self

    def relevance(self, inputs: list[Any], out: torch.Tensor, R: torch.Tensor, ctx: Any) -> tuple[list, Optional[str]]:
        """The op's own relevance rule (see ``generic.py``): (relevance (N, T, *in) or None per
        input, the rule's name for the report or None). Ops with composite-chosen rules (linear
        layers, pooling, sums) are handled by the engine instead."""
        raise NotImplementedError(f"no relevance rule for {type(self).__name__}")


def _cast(t: Optional[torch.Tensor], dtype: torch.dtype, device: torch.device) -> Optional[torch.Tensor]:
    return None if t is None else t.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------- linear layers
class LinearOp(Op):
    """A layer z = W x + b. ``bias`` is None, per output channel, or spatial (C_out, *out)."""

    kind = "linear"
    layer_type = "linear"

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        self.weight = weight
        self.bias = bias
        self._memo: dict[str, torch.Tensor] = {}

    def signed_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w⁺, w⁻), computed once per layer and reused by every call."""
        if "w+" not in self._memo:
            self._memo["w+"], self._memo["w-"] = self.weight.clamp(min=0), self.weight.clamp(max=0)
        return self._memo["w+"], self._memo["w-"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(x, self.weight, self.bias)

    def forward_with(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def vjp(self, grad: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Wᵀ·grad for a batch ``grad`` of output gradients (any batch size)."""
        raise NotImplementedError

    def _add_bias(self, z: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        if bias is None:
            return z
        if bias.ndim == 1:
            return z + bias.view(1, -1, *([1] * (z.ndim - 2)))
        return z + bias.unsqueeze(0)

    def with_params(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> "LinearOp":
        new = _shallow_copy(self)
        new.weight, new.bias, new._memo = weight, bias, {}
        return new

    def to(self, dtype: torch.dtype, device: torch.device) -> "LinearOp":
        return self.with_params(_cast(self.weight, dtype, device), _cast(self.bias, dtype, device))


def _shallow_copy(obj: Any) -> Any:
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


class DenseOp(LinearOp):
    """``torch.nn.Linear``: z_j = Σ_i x_i w_ij + b_j."""

    layer_type = "dense"

    def forward_with(self, x, weight, bias):
        return self._add_bias_dense(F.linear(x, weight), bias)

    @staticmethod
    def _add_bias_dense(z, bias):
        return z if bias is None else z + bias

    def vjp(self, grad, weight, input_shape):
        return grad @ weight


class TokenDenseOp(LinearOp):
    """``torch.nn.Linear`` on inputs (N, ..., C_in) with more than one leading dimension (tokens,
    channels-last maps): z = x Wᵀ + b on the last dimension. A separate type because the fused
    paths of the rules assume the output channels on dim 1."""

    layer_type = "dense"

    def forward_with(self, x, weight, bias):
        z = F.linear(x, weight)
        return z if bias is None else z + bias

    def vjp(self, grad, weight, input_shape):
        return grad @ weight


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

    def forward_with(self, x, weight, bias):
        fused = bias if bias is not None and bias.ndim == 1 else None  # a per-channel bias is fused
        z = self._conv(x, weight, fused, self.stride, self.padding, self.dilation, self.groups)
        return z if fused is not None else self._add_bias(z, bias)

    def vjp(self, grad, weight, input_shape):
        """The transposed convolution, with the output padding that restores the input size."""
        stride = tuple(_at(self.stride, i) for i in range(self.dims))
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
        return z if bias is None else z + self._view(bias, x.ndim)

    def vjp(self, grad, weight, input_shape):
        return grad * self._view(weight, grad.ndim)


# --------------------------------------------------------------------------- element-wise
class ActivationOp(Op):
    """ReLU, LeakyReLU, tanh or the threshold ReLU of DenseNet canonization.

    LRP passes relevance through activations unchanged (Bach et al. 2015; for tanh nets the
    convention of the study).
    """

    kind = "activation"

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        self.name = name
        self.negative_slope = negative_slope

    def forward(self, x):
        if self.name == "relu":
            return torch.relu(x)
        if self.name == "leaky_relu":
            return F.leaky_relu(x, self.negative_slope)
        if self.name == "tanh":
            return torch.tanh(x)
        raise AssertionError(self.name)


class ThresholdReLUOp(Op):
    """T(x) = x where scale·x + shift > 0, else the threshold t (Binder 2020).

    ``BN(T(x)) == ReLU(BN(x))`` for the BatchNorm (scale, shift) that precedes the ReLU, which
    lets that BatchNorm be merged into the following linear layer.
    """

    kind = "activation"
    name = "threshold_relu"

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, threshold: torch.Tensor) -> None:
        self.scale, self.shift, self.threshold = scale, shift, threshold
        # BN(x) > 0 ⇔ x > t where the scale is positive, x < t where it is negative: T is a max or
        # a min with t. sign(0) counts as +1 (such channels are zeroed by the merge anyway).
        self._sign = torch.where(scale < 0, -1.0, 1.0).to(scale.dtype)
        self._all_positive = bool((self._sign > 0).all())

    def forward(self, x):
        view = (1, -1, *([1] * (x.ndim - 2)))
        t = self.threshold.view(view)
        if self._all_positive:
            return torch.maximum(x, t)
        s = self._sign.view(view)
        return s * torch.maximum(s * x, s * t)

    @property
    def nonnegative(self) -> bool:
        """Whether every output is ≥ 0 (all thresholds ≥ 0 and max-type)."""
        return self._all_positive and bool((self.threshold >= 0).all())

    def to(self, dtype, device):
        return ThresholdReLUOp(*(t.to(dtype=dtype, device=device) for t in (self.scale, self.shift, self.threshold)))


# --------------------------------------------------------------------------- pooling
@dataclass
class PoolOp(Op):
    """Average or adaptive-average pooling, or a mean over dimensions: linear, proportional rule."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    description: str
    kind: str = field(default="pool", init=False)

    def forward(self, x):
        return self.fn(x)

    def vjp(self, grad: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Transposed pooling for a batch of output gradients (linear, input-independent)."""
        return self.transposed((grad.shape[0], *input_shape[1:]), grad.dtype, grad.device)(grad)

    def transposed(self, shape: tuple[int, ...], dtype: torch.dtype,
                   device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`vjp` for inputs of ``shape`` as a function, which keeps one forward on a zero
        probe (and its graph) for every call; works under ``torch.inference_mode`` too."""
        with torch.inference_mode(False), torch.enable_grad():
            probe = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
            out = self.fn(probe)

        def vjp(grad: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(False):
                return torch.autograd.grad(out, probe, grad, retain_graph=True)[0]
        return vjp


@dataclass
class MaxPoolOp(Op):
    """Max pooling (1-D or 2-D); winner-takes-all relevance by default."""

    dims: int
    kernel_size: Any
    stride: Any
    padding: Any
    dilation: Any
    ceil_mode: bool
    kind: str = field(default="maxpool", init=False)

    def _fn(self, return_indices: bool):
        fn = F.max_pool1d if self.dims == 1 else F.max_pool2d
        return lambda x: fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            return_indices)

    def forward(self, x):
        return self._fn(False)(x)

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(True)(x)[1]

    def as_average(self) -> PoolOp:
        """The matching average pooling, for the proportional variant of the rule."""
        k, s, p = self.kernel_size, self.stride, self.padding
        if self.dims == 1:
            fn = lambda x: F.avg_pool1d(x, k, s, p, self.ceil_mode, count_include_pad=False)  # noqa: E731
        else:
            fn = lambda x: F.avg_pool2d(x, k, s, p, self.ceil_mode, count_include_pad=False)  # noqa: E731
        return PoolOp(fn, "max as average")


# --------------------------------------------------------------------------- structure
@dataclass
class ReshapeOp(Op):
    """flatten / view / reshape keeping the batch dimension; relevance is reshaped back."""

    fn: Callable[..., torch.Tensor]
    kind: str = field(default="reshape", init=False)

    def forward(self, x, *args):
        return self.fn(x, *args)


@dataclass
class IdentityOp(Op):
    """Dropout in eval mode, identity, contiguous, clone."""

    kind: str = field(default="identity", init=False)

    def forward(self, x):
        return x


@dataclass
class AddOp(Op):
    """Residual sum x_1 + ... + x_k: proportional rule R_k = x_k / Σx · R."""

    kind: str = field(default="add", init=False)

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@dataclass
class CatOp(Op):
    """torch.cat along ``dim``: relevance is split back along the same dimension."""

    dim: int
    kind: str = field(default="cat", init=False)

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


@dataclass
class MetaOp(Op):
    """A non-tensor value (``x.size(0)``, ``x.shape``, an item of it): evaluated, no relevance."""

    fn: Callable[..., Any]
    kind: str = field(default="meta", init=False)

    def forward(self, *args):
        return self.fn(*args)
