"""nn.LSTM as explicit ops, with the LRP rules of Arras et al. 2017 ("Explaining recurrent neural
network predictions in sentiment analysis").

One step of an LSTM layer (Hochreiter & Schmidhuber 1997, as nn.LSTM computes it):

    (i, f, g, o) = (σ, σ, tanh, σ)(W [x_t; h_{t−1}] + b),  c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t).

In the traced copy, nn.LSTM is replaced by :class:`ExplicitLSTM`, which unrolls it over the
sequence: the gate pre-activations are one ``nn.Linear`` over [x_t; h_{t−1}] with the bias
b_ih + b_hh (the composite's linear rule, e.g. ε); ``c_t`` is a sum (the proportional rule);
tanh passes relevance; every gate product is :func:`gated`, whose rule is Arras et al.'s
"signal-take-all": the sigmoid gate is held constant and the signal gets all of the product's
relevance, R_signal = R · y / stab(y), the gate none. So relevance reaches the input only through
the cell candidates g. With zero initial states the first step has no h_{t−1} and no f ⊙ c_{t−1}.

The unrolled loop runs over the sequence length, a size: the model is captured per input shape
(``capture.py``). ``proj_size > 0`` is refused by name; dropout between layers is off in eval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.fx as fx
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence

from ...errors import UnsupportedModelError
from .generic import IndexOp, ProductOp
from .shape import TupleOp
from ..registry import Context, register_function, register_module, register_substitute

Tensor = torch.Tensor


def gated(gate: Tensor, signal: Tensor) -> Tensor:
    """gate ⊙ signal: an LSTM gate (σ) times its signal; one traced node."""
    return gate * signal


def layered(*states: Tensor) -> Tensor:
    """The final states of every layer and direction stacked, (L·D, N, H) as nn.LSTM's h_n, c_n."""
    return torch.stack(states, 0)


def given_state(state: Tensor) -> Tensor:
    """An initial state (h_0 or c_0) passed to the LSTM; one traced node."""
    return state


fx.wrap("gated")
fx.wrap("layered")
fx.wrap("given_state")


@dataclass
class LSTMState:
    """h and c of one layer and direction after a step."""

    h: Tensor
    c: Tensor


class GateLinears(nn.Module):
    """The gate pre-activations of one layer and direction: ``step`` over [x_t; h_{t−1}] with
    weight [W_ih | W_hh], ``first`` over x_t alone (the first step from zero states), both with
    the bias b_ih + b_hh."""

    def __init__(self, w_ih: Tensor, w_hh: Tensor, bias: Optional[Tensor]) -> None:
        super().__init__()
        out, n_in, hidden = w_ih.shape[0], w_ih.shape[1], w_hh.shape[1]
        kw: dict[str, Any] = {"bias": bias is not None, "dtype": w_ih.dtype, "device": w_ih.device}
        self.first, self.step = nn.Linear(n_in, out, **kw), nn.Linear(n_in + hidden, out, **kw)
        with torch.no_grad():
            self.first.weight.copy_(w_ih)
            self.step.weight.copy_(torch.cat([w_ih, w_hh], 1))
            if bias is not None:
                self.first.bias.copy_(bias)
                self.step.bias.copy_(bias)


class ExplicitLSTM(nn.Module):
    """nn.LSTM (num_layers, bidirectional, batch_first, bias; proj_size 0) unrolled into explicit
    ops; its forward returns what nn.LSTM returns, (output, (h_n, c_n))."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.batch_first = lstm.hidden_size, lstm.num_layers, lstm.batch_first
        self.directions = 2 if lstm.bidirectional else 1
        cells = []
        for layer in range(self.num_layers):
            for d in range(self.directions):
                sfx = f"_l{layer}{'_reverse' if d else ''}"
                w_ih, w_hh = (getattr(lstm, f"weight_{k}{sfx}").detach() for k in ("ih", "hh"))
                bias = (getattr(lstm, f"bias_ih{sfx}") + getattr(lstm, f"bias_hh{sfx}")).detach() if lstm.bias else None
                cells.append(GateLinears(w_ih, w_hh, bias))
        self.cells = nn.ModuleList(cells)

    def cell(self, k: int, x_t: Tensor, state: Optional[LSTMState]) -> LSTMState:
        """One step of layer and direction ``k``; ``state`` None: from zero states."""
        lin = self.cells[k]
        z = lin.first(x_t) if state is None else lin.step(torch.cat([x_t, state.h], 1))
        i, f, g, o = z.chunk(4, 1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = gated(i, g) if state is None else gated(f, state.c) + gated(i, g)
        return LSTMState(gated(o, torch.tanh(c)), c)

    def forward(self, input: Any, hx: Optional[tuple[Tensor, Tensor]] = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if isinstance(input, PackedSequence):
            raise UnsupportedModelError("nn.LSTM on a PackedSequence: chexplain explains LSTMs on padded tensors")
        unbatched = input.dim() == 2
        x = input.unsqueeze(0) if unbatched else input if self.batch_first else input.transpose(0, 1)
        initial: list[Optional[LSTMState]] = [None] * len(self.cells)
        if hx is not None:
            h0, c0 = (given_state(s.unsqueeze(1) if unbatched else s) for s in hx)
            initial = [LSTMState(h0[k], c0[k]) for k in range(len(self.cells))]
        steps = x.shape[1]
        finals: list[LSTMState] = []
        for layer in range(self.num_layers):
            outputs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                state, hs = initial[k], [None] * steps  # h_t at position t, for either direction
                for t in (range(steps) if d == 0 else reversed(range(steps))):
                    state = self.cell(k, x[:, t], state)
                    hs[t] = state.h
                assert state is not None
                outputs.append(torch.stack(hs, 1))  # type: ignore[arg-type]
                finals.append(state)
            x = outputs[0] if self.directions == 1 else torch.cat(outputs, 2)
        h_n, c_n = layered(*(s.h for s in finals)), layered(*(s.c for s in finals))
        if unbatched:
            return x.squeeze(0), (h_n.squeeze(1), c_n.squeeze(1))
        return (x if self.batch_first else x.transpose(0, 1)), (h_n, c_n)


@register_substitute(nn.LSTM)
def _substitute(lstm: nn.LSTM) -> nn.Module:
    """proj_size > 0 keeps the module, refused by name at conversion (:func:`_refuse`)."""
    return lstm if lstm.proj_size > 0 else ExplicitLSTM(lstm)




@register_module(nn.LSTM)
def _refuse(ctx: Context):
    mod = ctx.module
    why = f"has proj_size={mod.proj_size} (projected hidden states)" if mod.proj_size > 0 else \
        f"is a subclass ({type(mod).__name__}) with its own forward"
    raise UnsupportedModelError(f"nn.LSTM at '{ctx.path}' {why}: not supported")


@register_function(gated)
def _gated(ctx: Context):
    """Signal-take-all (Arras et al. 2017): R_signal = R · y / stab(y), the gate none; a constant
    signal (a given initial c_0): the product is a constant, its share absorbed."""
    signal = ctx.node.args[1]
    if signal in ctx.tensor_refs():
        return ProductOp(ctx.bound(gated), ctx.refs.index(signal), "LSTM gate · signal, signal-take-all")
    return IndexOp("LSTM gate · constant state", ctx.bound(gated), [])


@register_function(layered)
def _layered(ctx: Context):
    """h_n / c_n: a tuple over layers and directions; an item (``h_n[-1]``) is an index op."""
    return TupleOp(ctx.bound(layered))


@register_function(given_state)
def _given_state(ctx: Context):
    """Reached only for a state computed from the input (constants and sizes are folded first)."""
    raise UnsupportedModelError(f"nn.LSTM at '{ctx.path}' is given initial states computed from the input "
                                "(batch in dim 1); chexplain supports constant initial states")
