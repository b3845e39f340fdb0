"""Generic operations whose relevance rule is a method of the op (``Op.relevance``).

Three kinds cover most layers of modern architectures:

- :class:`PassOp`: an element-wise activation; relevance passes unchanged, R_in = R (the
  convention of the LRP literature for monotone activations, Bach et al. 2015; Montavon et al.
  2019, Sec. 10.2.1).
- :class:`IndexOp`: a pure index or shape operation (permute, transpose, roll, pad, slicing,
  stack, chunk, channel shuffle): linear without bias, every output is one input or zero, so
  relevance moves with the op's own vector-Jacobian product, R_in = Jᵀ R.
- :class:`LinearisedOp`: an op that is linear in its explained input x once some factors are
  treated as constants (normalisation statistics, gate values, later attention weights):
  y = A(c) x + b(c). Its rule is the proportional (ε) rule of that linear map,
  R_in = x ⊙ Aᵀ (R / stab(y)), with stab the sign-preserving stabiliser (Bach et al. 2015,
  Eq. 58); the share b_j R_j / y_j of the shift is absorbed and appears in ``report=True``.
  (CP-LRP, Ali et al. 2022; AttnLRP, Achtibat et al. 2024.)

``relevance(inputs, out, R, ctx)`` gets the op's input values (tensors, sizes, constants), its
output ``out`` (N, *out), the relevance ``R`` (N, T, *out) of T targets and a
:class:`RelevanceContext`; it returns (one relevance (N, T, *in) or None per input, the rule's
name for the report or None when the op is conservative by construction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from .base import Op
from ..stabilizer import inverse

Tensor = torch.Tensor


@dataclass
class RelevanceContext:
    """stabilizer: ε of the proportional rules; state: this node's dict, kept across target
    chunks (for R-independent parts); reuse: more target chunks follow; composite: the rules;
    rule: the composite's rule for this node (linear layers); nonnegative: the node's first
    input is known to be ≥ 0."""

    stabilizer: float
    state: dict
    reuse: bool
    composite: Any = None
    rule: Any = None
    nonnegative: bool = False


def batched_vjp(fn: Callable[..., Tensor], inputs: Sequence[Any], wrt: Sequence[int], s: Tensor,
                state: Optional[dict] = None, local: bool = False) -> list[Tensor]:
    """Jᵀ s for a map ``fn`` that is linear in ``inputs[i]`` for i in ``wrt`` (the others are held
    constant); ``s`` (N, T, *out). Autograd on zero probes (valid because the map is linear),
    batched over T; the probe graph is kept in ``state`` for later target chunks. ``local``: the
    probes are the input values (the Jacobian at x of a piecewise-linear selection, max)."""
    n, t = s.shape[:2]
    key = ("vjp", tuple(wrt))
    with torch.inference_mode(False), torch.enable_grad():
        if state is not None and key in state:
            probes, out = state[key]
        else:
            probes = [inputs[i].detach().clone().requires_grad_(True) if local else
                      torch.zeros(inputs[i].shape, dtype=inputs[i].dtype, device=inputs[i].device,
                                  requires_grad=True) for i in wrt]
            values = list(inputs)
            for i, p in zip(wrt, probes):
                values[i] = p
            values = [v.clone() if isinstance(v, Tensor) and v.is_inference() else v for v in values]
            out = fn(*values)
            if state is not None:
                state[key] = (probes, out)
        if t == 1:
            grads = torch.autograd.grad(out, probes, s[:, 0], retain_graph=state is not None, allow_unused=True)
            return [_zeros_if_none(g, p).unsqueeze(1) for g, p in zip(grads, probes)]
        grads = torch.autograd.grad(out, probes, s.movedim(1, 0), retain_graph=state is not None,
                                    is_grads_batched=True, allow_unused=True)
    return [_zeros_if_none(g, p, t).movedim(0, 1) for g, p in zip(grads, probes)]


def unbroadcast(part: Tensor, shape: Sequence[int]) -> Tensor:
    """``part`` (N, T, *out) summed over the dims along which an input of ``shape`` (N, *in) was
    broadcast to the output: each input entry gets the relevance of every output it reached."""
    ndim = len(shape) - 1
    lead = part.ndim - 2 - ndim
    if lead > 0:  # the input had fewer dims (broadcast from the left)
        part = part.sum(tuple(range(2, 2 + lead)))
    dims = tuple(2 + i for i, d in enumerate(shape[1:]) if d == 1 and part.shape[2 + i] != 1)
    return part.sum(dims, keepdim=True) if dims else part


def _zeros_if_none(g: Optional[Tensor], probe: Tensor, t: int | None = None) -> Tensor:
    if g is not None:
        return g
    return torch.zeros(probe.shape if t is None else (t, *probe.shape), dtype=probe.dtype, device=probe.device)


# --------------------------------------------------------------------------- constants
class ConstOp(Op):
    """A parameter or buffer read in forward (``get_attr``): a constant without relevance."""

    kind = "const"

    def __init__(self, value: Tensor) -> None:
        self.value = value

    def forward(self) -> Tensor:
        return self.value

    def relevance(self, inputs, out, R, ctx):
        return [], None

    def to(self, dtype, device):
        v = self.value
        return ConstOp(v.to(dtype=dtype, device=device) if v.is_floating_point() else v.to(device=device))


# --------------------------------------------------------------------------- activations
class PassOp(Op):
    """An element-wise activation f: R_in = R.

    ``gate``: its values lie in [0, 1] and may weight another tensor (sigmoid, hard sigmoid),
    see :class:`ProductOp`; ``nonnegative_output``: f ≥ 0 (lets rules skip the x⁻ part).
    """

    kind = "activation"

    def __init__(self, name: str, fn: Callable[[Tensor], Tensor], gate: bool = False,
                 nonnegative_output: bool = False) -> None:
        self.name, self.fn, self.gate, self.nonnegative_output = name, fn, gate, nonnegative_output

    def forward(self, x, *rest):
        return self.fn(x, *rest)

    def relevance(self, inputs, out, R, ctx):
        return [R] + [None] * (len(inputs) - 1), None

    def __repr__(self) -> str:
        return f"PassOp({self.name})"


# --------------------------------------------------------------------------- shape ops
class IndexOp(Op):
    """A pure index/shape op y = fn(*inputs): R_in = Jᵀ R for the inputs ``wrt`` (conservative
    except where the op drops or pads entries: what reaches padding is absorbed)."""

    kind = "index"
    multi_input = True
    preserves_sign = True

    def __init__(self, description: str, fn: Callable[..., Tensor], wrt: Sequence[int], local: bool = False) -> None:
        """``local``: which entry an output takes depends on the values (max): Jᵀ at x."""
        self.description, self.fn, self.wrt, self.local = description, fn, tuple(wrt), local

    def forward(self, *inputs):
        return self.fn(*inputs)

    def relevance(self, inputs, out, R, ctx):
        if not self.wrt:  # computed from constants only (a class token expanded to the batch): absorbed
            return [None] * len(inputs), f"constant ({self.description})"
        grads = batched_vjp(self.fn, inputs, self.wrt, R, ctx.state if ctx.reuse else None, self.local)
        parts: list[Optional[Tensor]] = [None] * len(inputs)
        for i, g in zip(self.wrt, grads):
            parts[i] = g
        return parts, f"index ({self.description})"

    def __repr__(self) -> str:
        return f"IndexOp({self.description})"


# --------------------------------------------------------------------------- linearised ops
class LinearisedOp(Op):
    """y = A x + b with A, b depending on constants only (after detaching some factors).

    Subclasses give ``forward`` (the original op) and ``linear(x, inputs)`` = A x (the bias-free
    linear part, the detached factors taken from ``inputs``); they may override ``linear_vjp``
    with an explicit Aᵀ s (the default uses autograd on ``linear``). ``explained``: the index of x
    among the inputs; the other inputs get no relevance.
    """

    kind = "linearised"
    multi_input = True
    explained = 0
    description = "linearised"

    def linear(self, x: Tensor, inputs: Sequence[Any]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def linear_vjp(self, s: Tensor, inputs: Sequence[Any], out: Tensor, ctx: RelevanceContext) -> Tensor:
        """Aᵀ s for s (N, T, *out)."""
        i = self.explained
        fn = lambda *v: self.linear(v[i], v)  # noqa: E731
        return batched_vjp(fn, inputs, [i], s, ctx.state if ctx.reuse else None)[0]

    def relevance(self, inputs, out, R, ctx):
        if "inv" not in ctx.state:
            ctx.state["inv"] = inverse(out, ctx.stabilizer)
        s = R * ctx.state["inv"].unsqueeze(1)
        x = inputs[self.explained]
        parts: list[Optional[Tensor]] = [None] * len(inputs)
        parts[self.explained] = self.linear_vjp(s, inputs, out, ctx).mul_(x.unsqueeze(1))
        return parts, f"linearised ε ({self.description})"


def call_with(fn: Callable[..., Tensor], inputs, explained: int, x: Tensor) -> Tensor:
    """``fn(*inputs)`` with ``inputs[explained]`` replaced by ``x``."""
    values = list(inputs)
    values[explained] = x
    return fn(*values)


@dataclass
class ProductOp(LinearisedOp):
    """y = x · c or x / c, with c a gate (sigmoid, hard sigmoid), a parameter (layer scale) or a
    number, held constant: R_x = x c R / stab(y) = R · y / stab(y); c gets no relevance.

    ``fn`` is the product itself (its inputs in order), ``explained`` the index of x.
    """

    fn: Callable[..., Tensor]
    explained: int
    description: str = "product"
    kind: str = field(default="linearised", init=False)

    def forward(self, *inputs):
        return self.fn(*inputs)

    def linear(self, x, inputs):
        return call_with(self.fn, inputs, self.explained, x)

    def relevance(self, inputs, out, R, ctx):
        x = inputs[self.explained]
        if not (isinstance(x, Tensor) and x.shape == out.shape):  # x broadcast: the general VJP
            return super().relevance(inputs, out, R, ctx)
        if "ratio" not in ctx.state:  # x c / stab(x c)
            ctx.state["ratio"] = out * inverse(out, ctx.stabilizer)
        parts: list[Optional[Tensor]] = [None] * len(inputs)
        parts[self.explained] = R * ctx.state["ratio"].unsqueeze(1)
        return parts, f"linearised ε ({self.description})"


@dataclass
class ShiftOp(LinearisedOp):
    """y = x + c (or x − c, c − x) for a constant c (a number, a parameter such as a position
    embedding): R_x = ±x R / stab(y); the share of c is absorbed like a bias."""

    fn: Callable[..., Tensor]
    explained: int
    sign: float = 1.0
    description: str = "shift"
    kind: str = field(default="linearised", init=False)

    def forward(self, *inputs):
        return self.fn(*inputs)

    def linear(self, x, inputs):
        return self.sign * x

    def linear_vjp(self, s, inputs, out, ctx):
        return s * self.sign if self.sign != 1.0 else s


@dataclass
class AffineCallOp(LinearisedOp):
    """y = fn(*inputs), affine in ``inputs[explained]`` with the other inputs constant (parameters,
    detached statistics); ``linear_fn`` (same arguments) is its bias-free linear part A x
    (``addcmul(b, w, x)``: w x; an interpolation: itself). Rule: the linearised ε rule above.
    ``preserves_sign``: A ≥ 0 entry-wise without bias (nearest/bilinear interpolation)."""

    fn: Callable[..., Tensor]
    linear_fn: Callable[..., Tensor]
    explained: int
    description: str = "affine"
    preserves_sign: bool = False
    kind: str = field(default="linearised", init=False)

    def forward(self, *inputs):
        return self.fn(*inputs)

    def linear(self, x, inputs):
        return call_with(self.linear_fn, inputs, self.explained, x)


@dataclass
class SignedSumOp(Op):
    """y = Σ_k c_k x_k of input-dependent tensors with signs or scales c_k (``a − b``,
    ``torch.add(a, b, alpha=c)``; PoolFormer's ``pool(x) − x``): the proportional rule over the
    signed contributions, R_k = c_k x_k R / stab(y) (Bach et al. 2015, Eq. 58, as for the residual
    sum), summed over the dims along which x_k was broadcast."""

    coefficients: tuple[float, ...]
    kind: str = field(default="linearised", init=False)
    multi_input = True

    def forward(self, *xs):
        out = xs[0] * self.coefficients[0] if self.coefficients[0] != 1 else xs[0]
        for c, x in zip(self.coefficients[1:], xs[1:]):
            out = out + c * x if c != -1 else out - x
        return out

    def relevance(self, inputs, out, R, ctx):
        if "inv" not in ctx.state:
            ctx.state["inv"] = inverse(out, ctx.stabilizer)
        s = R * ctx.state["inv"].unsqueeze(1)
        parts = [unbroadcast(s * (c * x).unsqueeze(1), x.shape) for c, x in zip(self.coefficients, inputs)]
        return parts, "proportional (signed sum)"
