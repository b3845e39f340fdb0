"""nn.LSTM: the explicit substitute against nn.LSTM (float64, ≤ 1e-12), LRP against Arras et al.
2017's rule written out per neuron (gate pre-activations by LRP-ε, every gate product
signal-take-all, tanh passing relevance, c_t = f c_{t−1} + i g by the proportional rule),
bias-free conservation, the caller's model untouched, and the refusals.

The rules' stabilisers are visible (ε = 0.05 on the gate layers, 1e-3 on sums and products), so
a stabiliser in the wrong place would show."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.errors import UnsupportedModelError
from chexplain.lrp import rules
from chexplain.lrp.composites import Composite, lrp_epsilon
from chexplain.lrp.ops.lstm import ExplicitLSTM

from ..families import zero_biases

EPS, STAB = 0.05, 1e-3
COMPOSITE = Composite({"dense": rules.Epsilon(EPS), "conv": rules.Epsilon(EPS), "affine": rules.Epsilon(EPS)},
                      stabilizer=STAB)
D = torch.float64


def _stab(z: float, eps: float) -> float:
    return z + (eps if z >= 0 else -eps)


class LastStep(nn.Module):
    """An LSTM classifier: the last step's output (``last="output"``) or the last layer's final
    state h_n[-1] (``last="h_n"``), then an optional dense head."""

    def __init__(self, lstm: nn.LSTM, classes: int | None = None, last: str = "output") -> None:
        super().__init__()
        self.lstm, self.last = lstm, last
        width = lstm.hidden_size * (2 if lstm.bidirectional and last == "output" else 1)
        self.head = nn.Linear(width, classes) if classes else nn.Identity()

    def forward(self, x):
        y, (h_n, _) = self.lstm(x)
        return self.head(y[:, -1] if self.last == "output" else h_n[-1])


@pytest.mark.parametrize("layers,bidirectional,batch_first,bias", [
    (1, False, True, True), (2, True, True, True), (3, False, False, False), (2, True, False, True)])
def test_substitute_reproduces_nn_lstm(layers, bidirectional, batch_first, bias) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional).to(D).eval()
    explicit = ExplicitLSTM(lstm)
    x = torch.randn((2, 5, 3) if batch_first else (5, 2, 3), dtype=D)
    hx = tuple(torch.randn(layers * (2 if bidirectional else 1), 2, 4, dtype=D) for _ in range(2))
    for args in [(x,), (x, hx), (x[0] if batch_first else x[:, 0],)]:  # zero states, given states, unbatched
        want, got = lstm(*args), explicit(*args)
        for a, b in [(want[0], got[0]), (want[1][0], got[1][0]), (want[1][1], got[1][1])]:
            assert a.shape == b.shape
            assert float((a - b).detach().abs().max()) <= 1e-12


def _arras(lstm: nn.LSTM, x: torch.Tensor, target: int, h0: torch.Tensor | None = None,
           c0: torch.Tensor | None = None) -> torch.Tensor:
    """Arras et al.'s backward pass over one sample x (T, C) of a one-layer LSTM whose logits are
    h_T, for logit ``target``, neuron by neuron: R(h_T) = h_T,target at the target; h_t = o h̃:
    R(h̃) = h_t R(h_t) / stab(h_t) (gate constant), tanh passes R(c_t) += R(h̃); c_t = f c_{t−1} + i g:
    R(f c_{t−1}) = f c_{t−1} R(c_t) / stab(c_t), likewise i g, then each product gives its signal
    y R / stab(y); g = tanh(z_g): R passes; z_g,k = Σ_j w_kj [x_t; h_{t−1}]_j + b_k: LRP-ε. Given
    (constant) initial states h_0, c_0: their shares are absorbed."""
    T, C = x.shape
    H = lstm.hidden_size
    W = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], 1).detach()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    given = h0 is not None
    h, c = [h0 if given else torch.zeros(H, dtype=D)], [c0 if given else torch.zeros(H, dtype=D)]
    gates, zs, ins = [], [], []
    for t in range(T):
        a = torch.cat([x[t], h[-1]])
        z = W @ a + b
        i, f, g, o = (torch.sigmoid(z[:H]), torch.sigmoid(z[H:2 * H]), torch.tanh(z[2 * H:3 * H]),
                      torch.sigmoid(z[3 * H:]))
        c.append(f * c[-1] + i * g)
        h.append(o * torch.tanh(c[-1]))
        gates.append((i, f, g))
        zs.append(z)
        ins.append(a)
    Rx = torch.zeros(T, C, dtype=D)
    Rh = [0.0] * H
    Rh[target] = float(h[T][target])
    Rc_next = [0.0] * H  # relevance of c_t from step t + 1
    for t in reversed(range(T)):
        i, f, g = gates[t]
        Rc = [Rc_next[k] + float(h[t + 1][k]) * Rh[k] / _stab(float(h[t + 1][k]), STAB) for k in range(H)]
        Rg, Rc_next = [0.0] * H, [0.0] * H
        recurrent = t > 0 or given  # c_t = f c_{t−1} + i g; else c_t = i g
        for k in range(H):
            ct, ig, fc = float(c[t + 1][k]), float(i[k] * g[k]), float(f[k] * c[t][k])
            share_ig = ig * Rc[k] / _stab(ct, STAB) if recurrent else Rc[k] * ct / _stab(ct, STAB)
            Rg[k] = ig * share_ig / _stab(ig, STAB) if recurrent else share_ig
            if t > 0:  # at t = 0 the share of f c_0 is absorbed
                share_fc = fc * Rc[k] / _stab(ct, STAB)
                Rc_next[k] = fc * share_fc / _stab(fc, STAB)
        Rh = [0.0] * H
        for k in range(H):
            zk = float(zs[t][2 * H + k])
            for j in range(C + H):
                part = float(ins[t][j] * W[2 * H + k, j]) * Rg[k] / _stab(zk, EPS)
                if j < C:
                    Rx[t, j] += part
                else:
                    Rh[j - C] += part
    return Rx


class Seeded(LastStep):
    """Learned constant initial states h_0, c_0 (buffers), expanded to the batch."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__(lstm)
        self.register_buffer("h0", torch.randn(1, 1, lstm.hidden_size, dtype=D))
        self.register_buffer("c0", torch.randn(1, 1, lstm.hidden_size, dtype=D))

    def forward(self, x):
        n = x.shape[0]
        y, _ = self.lstm(x, (self.h0.expand(-1, n, -1), self.c0.expand(-1, n, -1)))
        return y[:, -1]


@pytest.mark.parametrize("steps,seeded", [(1, False), (3, False), (3, True)])
def test_lstm_rule_equals_arras_per_neuron(steps: int, seeded: bool) -> None:
    """One step (no recurrence: R(x) from the cell candidates alone), three steps (the
    recurrence through h_{t−1} and c_{t−1}), three from constant initial states; biases non-zero
    (their share absorbed)."""
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 3, batch_first=True).to(D).eval()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    model = (Seeded(lstm) if seeded else LastStep(lstm)).eval()
    states = (model.h0[0, 0], model.c0[0, 0]) if seeded else (None, None)
    x = torch.randn(2, steps, 4, dtype=D)
    for target in range(3):
        got = chexplain.LRP(model, COMPOSITE)(x, target=target)
        want = torch.stack([_arras(lstm, x[n], target, *states) for n in range(2)])
        assert float((got - want).abs().max()) <= 1e-10 * float(want.abs().max())
        assert float(want.abs().max()) > 1e-3


def test_single_step_by_hand() -> None:
    """T = 1, hidden size 1, zero states: c = i g, h = o tanh(c); R(h) = h, R(c) = h · h / stab(h),
    R(g) = c · R(c) / stab(c), R(x_j) = x_j w_gj R(g) / stab_ε(z_g)."""
    torch.manual_seed(2)
    lstm = nn.LSTM(2, 1, batch_first=True).to(D).eval()
    x = torch.randn(1, 1, 2, dtype=D)
    w, b = lstm.weight_ih_l0.detach(), (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    z = w @ x[0, 0] + b
    i, g, o = torch.sigmoid(z[0]), torch.tanh(z[2]), torch.sigmoid(z[3])
    c = float(i * g)
    h = float(o) * math.tanh(c)
    Rc = h * h / _stab(h, STAB)
    Rg = c * Rc / _stab(c, STAB)
    want = [float(x[0, 0, j]) * float(w[2, j]) * Rg / _stab(float(z[2]), EPS) for j in range(2)]
    got = chexplain.LRP(LastStep(lstm).eval(), COMPOSITE)(x, target=0)
    assert got.shape == (1, 1, 2)
    assert torch.allclose(got[0, 0], torch.tensor(want, dtype=D), rtol=1e-12, atol=0)


@pytest.mark.parametrize("layers,bidirectional,last", [(1, False, "output"), (2, True, "output"), (2, True, "h_n")])
def test_bias_free_conservation(layers, bidirectional, last) -> None:
    """Biases zero, zero initial states: Σ R(x) = the logit (LRP-ε, ε tiny), ≤ 1e-6 relative."""
    torch.manual_seed(3)
    lstm = nn.LSTM(5, 6, layers, batch_first=True, bidirectional=bidirectional)
    model = zero_biases(LastStep(lstm, classes=4, last=last)).to(D).eval()
    x = torch.randn(3, 7, 5, dtype=D)
    ex = chexplain.LRP(model, lrp_epsilon(epsilon=1e-12, stabilizer=1e-12)).explain(x, classes=list(range(4)))
    with torch.no_grad():
        assert float((ex.logits - model(x)).abs().max()) <= 1e-12
    logits = ex.logits.gather(1, ex.targets)
    total = ex.relevance.flatten(2).sum(-1)
    assert float((total - logits).abs().max()) <= 1e-6 * float(logits.abs().max())
    assert float(ex.relevance[:, :, :-1].abs().max()) > 0  # earlier steps are reached through the recurrence


def test_callers_model_untouched() -> None:
    torch.manual_seed(4)
    model = LastStep(nn.LSTM(3, 4, 2, batch_first=True, bidirectional=True), classes=2).to(D).eval()
    before = copy.deepcopy(model.state_dict())
    chexplain.LRP(model, "lrp-epsilon")(torch.randn(2, 4, 3, dtype=D), target=0)
    assert type(model.lstm) is nn.LSTM
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("lstm,match", [
    (nn.LSTM(3, 4, batch_first=True, proj_size=2), "nn.LSTM at 'lstm' has proj_size=2"),
    (nn.LSTM(3, 4), "at 'lstm' moves the batch dimension")])  # batch_first=False: the batch in dim 1
def test_refusals_name_the_layer(lstm, match) -> None:
    model = LastStep(lstm).to(D).eval()
    with pytest.raises(UnsupportedModelError, match=match) as err:
        chexplain.LRP(model, "lrp-epsilon")(torch.randn(2, 4, 3, dtype=D), target=0)
    assert "\n" not in str(err.value)


def test_initial_states_from_the_input_are_refused() -> None:
    class Seeded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.proj = nn.LSTM(3, 4, batch_first=True), nn.Linear(3, 4)

        def forward(self, x):
            h0 = self.proj(x[:, 0]).reshape(1, x.shape[0], 4)
            return self.lstm(x, (h0, h0))[0][:, -1]

    with pytest.raises(UnsupportedModelError, match="nn.LSTM at 'lstm' is given initial states computed"):
        chexplain.LRP(Seeded().to(D).eval(), "lrp-epsilon")(torch.randn(2, 4, 3, dtype=D), target=0)
