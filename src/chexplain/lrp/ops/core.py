"""The core operations: activations, the threshold ReLU of canonization, pooling, reshapes,
sums and concatenation, each with its own forward and relevance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from ..stabilizer import inverse
from .base import Op
from .generic import unbroadcast

Tensor = torch.Tensor


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

    def relevance(self, inputs, out, R, ctx):
        return [R] + [None] * (len(inputs) - 1), None

    def forward(self, x):
        if self.name == "relu":
            return torch.relu(x)
        if self.name == "leaky_relu":
            return F.leaky_relu(x, self.negative_slope)
        if self.name == "tanh":
            return torch.tanh(x)
        raise AssertionError(self.name)


class ThresholdReLUOp(Op):
    """The gate of a BatchNorm pushed through a ReLU into the next linear layer (Binder 2020).

    With BN(x) = a·x + c, ReLU(BN(x)) = BN(T(x)) for T(x) = x where a·x + c > 0 and the
    threshold t = −c/a elsewhere (BN(t) = 0). T is split into its two parts: this op outputs
    the gated signal m ⊙ x (m = 1[a·x + c > 0]), through which relevance flows, and
    :class:`OffStateOp` the constant (1 − m) ⊙ t of the units that are off, which the next
    linear layer adds to its bias: z = W'(m ⊙ x) + [W'((1 − m) ⊙ t) + b'] (W', b': the merged
    layer). So the off units hold no relevance of their own: what their constant contributes
    to z_j is absorbed like a bias, and the original network's inputs at those positions,
    which it ignores, get none.
    """

    kind = "activation"
    name = "threshold_relu"

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, threshold: torch.Tensor) -> None:
        self.scale, self.shift, self.threshold = scale, shift, threshold

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))

    def on(self, x: torch.Tensor) -> torch.Tensor:
        """The mask m = 1[a·x + c > 0] (the original ReLU's active units)."""
        return x * self._view(self.scale, x.ndim) + self._view(self.shift, x.ndim) > 0

    def relevance(self, inputs, out, R, ctx):
        """Passed to the gated signal unchanged; the off units' constant gets none."""
        return [R] + [None] * (len(inputs) - 1), None

    def forward(self, x):
        return x * self.on(x)

    def off_state(self, x: torch.Tensor) -> torch.Tensor:
        """(1 − m) ⊙ t."""
        return torch.where(self.on(x), 0.0, self._view(self.threshold, x.ndim).to(x.dtype))

    @property
    def nonnegative(self) -> bool:
        """Whether every output is ≥ 0: on units have x > t ≥ 0 where every scale is positive."""
        return bool((self.scale > 0).all()) and bool((self.threshold >= 0).all())

    def to(self, dtype, device):
        return ThresholdReLUOp(*(t.to(dtype=dtype, device=device) for t in (self.scale, self.shift, self.threshold)))


class OffStateOp(Op):
    """The off-state constant (1 − m) ⊙ t of a :class:`ThresholdReLUOp` (same input): a value
    that the next linear layer takes as part of its bias; it receives no relevance."""

    kind = "constant"

    def __init__(self, gate: ThresholdReLUOp) -> None:
        self.gate = gate

    def forward(self, x):
        return self.gate.off_state(x)

    def to(self, dtype, device):
        return OffStateOp(self.gate.to(dtype, device))


# --------------------------------------------------------------------------- pooling
@dataclass
class PoolOp(Op):
    """Average or adaptive-average pooling, or a mean over dimensions: linear, proportional rule."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    description: str
    kind: str = field(default="pool", init=False)

    def forward(self, x):
        return self.fn(x)

    def relevance(self, inputs, out, R, ctx):
        """The z rule R_i = x_i Σ_j p_ij / z_j R_j (:func:`proportional_pool`)."""
        if "pool" not in ctx.state:
            ctx.state["pool"] = (inverse(out, ctx.stabilizer), {} if ctx.reuse else None)
        return [proportional_pool(self, inputs[0], R, *ctx.state["pool"])], f"proportional ({self.description})"

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

    def relevance(self, inputs, out, R, ctx):
        """Winner-takes-all, or with the composite's ``maxpool="proportional"`` the z rule of
        the matching average pooling."""
        if ctx.composite is not None and ctx.composite.maxpool == "proportional":
            pool = self.as_average()
            if "pool" not in ctx.state:
                ctx.state["pool"] = (inverse(pool.forward(inputs[0]), ctx.stabilizer), {} if ctx.reuse else None)
            return [proportional_pool(pool, inputs[0], R, *ctx.state["pool"])], "max pool (proportional)"
        if "indices" not in ctx.state:
            ctx.state["indices"] = self.indices(inputs[0])
        return [winner_takes_all(inputs[0], R, ctx.state["indices"])], None

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

    def relevance(self, inputs, out, R, ctx):
        extra = [None] * (len(inputs) - 1)
        if inputs[0].shape[0] == out.shape[0]:
            return [R.reshape(*R.shape[:2], *inputs[0].shape[1:])] + extra, None
        # a reshape that merges or splits the batch (Swin's windows, (B·nW, L, C)): row-major order
        # is kept, so the targets axis moves out of the way and the reshape is undone
        return [R.movedim(1, 0).reshape(R.shape[1], *inputs[0].shape).movedim(0, 1)] + extra, None


@dataclass
class IdentityOp(Op):
    """Dropout in eval mode, identity, contiguous, clone."""

    kind: str = field(default="identity", init=False)

    def forward(self, x):
        return x

    def relevance(self, inputs, out, R, ctx):
        return [R] + [None] * (len(inputs) - 1), None


@dataclass
class AddOp(Op):
    """Residual sum x_1 + ... + x_k: proportional rule R_k = x_k / Σx · R."""

    kind: str = field(default="add", init=False)

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def relevance(self, inputs, out, R, ctx):
        if "inv" not in ctx.state:
            ctx.state["inv"] = inverse(out, ctx.stabilizer)
        s = R * ctx.state["inv"].unsqueeze(1)  # the last input's share is written into s
        parts = [x.unsqueeze(1) * s for x in inputs[:-1]] + [s.mul_(inputs[-1].unsqueeze(1))]
        # an input broadcast to the sum (x + mlp(context), (N, C, 1, 1)) gets what its entries reached
        return [unbroadcast(p, x.shape) for p, x in zip(parts, inputs)], "proportional (sum)"


@dataclass
class CatOp(Op):
    """torch.cat along ``dim``: relevance is split back along the same dimension."""

    dim: int
    kind: str = field(default="cat", init=False)

    def forward(self, *xs):
        return torch.cat(xs, self.dim)

    def relevance(self, inputs, out, R, ctx):
        dim = self.dim + 1 if self.dim >= 0 else self.dim
        return list(R.split([x.shape[self.dim] for x in inputs], dim=dim)), None


@dataclass
class MetaOp(Op):
    """A non-tensor value (``x.size(0)``, ``x.shape``, an item of it): evaluated, no relevance."""

    fn: Callable[..., Any]
    kind: str = field(default="meta", init=False)
    #: the graph's working dtype, once cast: a floating tensor the computation makes (DINOv3's
    #: rotary angles, cast to the dtype its buffer had when traced) follows it, as the
    #: constants it is computed from do
    dtype: Any = field(default=None, init=False)

    def forward(self, *args):
        out = self.fn(*args)
        if self.dtype is not None and isinstance(out, torch.Tensor) and out.is_floating_point():
            return out.to(self.dtype)
        return out

    def to(self, dtype: torch.dtype, device: torch.device) -> "MetaOp":
        new = MetaOp(self.fn)
        new.dtype = dtype
        return new

    def relevance(self, inputs, out, R, ctx):
        return [None] * len(inputs), None


# --------------------------------------------------------------------------- pooling rules
def proportional_pool(op: "PoolOp", x: Tensor, R: Tensor, inv: Tensor, kept: Optional[dict]) -> Tensor:
    """R_i = x_i Σ_j p_ij / z_j R_j for a linear pooling z_j = Σ_i p_ij x_i (the z rule);
    ``inv`` = 1 / stab(z); ``kept``: transposed poolings by batch size, reused across chunks."""
    n, t = R.shape[:2]
    s = (R * inv.unsqueeze(1)).reshape(n * t, *R.shape[2:])
    if kept is None:
        g = op.vjp(s, x.shape)
    else:
        if s.shape[0] not in kept:
            kept[s.shape[0]] = op.transposed((s.shape[0], *x.shape[1:]), s.dtype, s.device)
        g = kept[s.shape[0]](s)
    return x.unsqueeze(1) * g.view(n, t, *x.shape[1:])  # x first: its (channels-last) layout


def winner_takes_all(x: Tensor, R: Tensor, indices: Tensor) -> Tensor:
    """All relevance of a pooling window goes to its maximum (overlapping windows add up);
    ``indices``: the maxima's flat positions in x, per channel."""
    n, t, c = R.shape[:3]
    idx = indices.reshape(n, 1, c, -1).expand(n, t, c, -1)
    out = torch.zeros((n, t, c, x[0, 0].numel()), dtype=R.dtype, device=R.device)
    out.scatter_add_(3, idx, R.reshape(n, t, c, -1))
    return out.view(n, t, *x.shape[1:])
