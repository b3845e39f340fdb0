"""The worked example of docs/engine.md ("Adding a rule or an operation"), run as written there:
a new rule is one module of ``chexplain.lrp.rules`` (its preset then offered by name
everywhere), a new operation one module of ``chexplain.lrp.ops``; both checked against the
per-neuron formulas computed by hand."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.errors import ChexplainError, UnsupportedModelError
from chexplain.lrp import composites, ops, registry, rules
from chexplain.registry import family

DOCS = Path(__file__).resolve().parents[2] / "docs" / "engine.md"
RULE_FILE, OP_FILE = "src/chexplain/lrp/rules/epsilon_no_bias.py", "src/chexplain/lrp/ops/softsign.py"


def _example(path: str) -> str:
    """The code block of docs/engine.md that starts with ``# path``."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if b.startswith(f"# {path}\n")]
    assert len(found) == 1, f"docs/engine.md has no single example of {path}"
    return found[0]


@pytest.fixture
def extended(tmp_path, monkeypatch):
    """The two example modules dropped into the rule and op packages, then imported as
    chexplain imports them; everything they registered is removed afterwards."""
    tables = [composites.PRESETS, registry.MODULES, registry.FUNCTIONS, registry.METHODS, registry.SUBSTITUTES]
    saved = [dict(t) for t in tables]
    for package, path in ((rules, RULE_FILE), (ops, OP_FILE)):
        folder = tmp_path / package.__name__.rsplit(".", 1)[1]
        folder.mkdir()
        (folder / Path(path).name).write_text(_example(path), encoding="utf-8")
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    composites._import_rule_modules()
    registry.load()
    yield sys.modules["chexplain.lrp.rules.epsilon_no_bias"]
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)
    for name in ("chexplain.lrp.rules.epsilon_no_bias", "chexplain.lrp.ops.softsign"):
        sys.modules.pop(name, None)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Softsign(), nn.Linear(5, 3)).double().eval()


def test_softsign_is_refused_until_its_module_exists():
    model, x = _model(), torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match="Softsign at '1'"):
        chexplain.explain(model, x, method="lrp-epsilon", target=0)
    assert "lrp-epsilon-no-bias" not in chexplain.methods()


def test_the_new_rule_and_op_match_the_formulas_by_hand(extended):
    assert family("lrp-epsilon-no-bias") == "lrp" and "lrp-epsilon-no-bias" in chexplain.methods()
    model, x = _model(), torch.randn(3, 4, dtype=torch.float64)
    R = chexplain.explain(model, x, method="lrp-epsilon-no-bias", target=0)
    W1, W2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    b1 = model[0].bias.detach().numpy()
    xs = x.numpy()
    a = xs @ W1.T + b1
    h = a / (1 + np.abs(a))
    out = model(x)[:, 0].detach().numpy()
    z2 = h @ W2[0]  # no bias in the denominator
    R_h = h * W2[0] / z2[:, None] * out[:, None]
    z1 = xs @ W1.T
    want = xs * ((R_h / z1) @ W1)
    assert np.allclose(R.numpy(), want, rtol=1e-6, atol=1e-12)  # ε = 1e-9 in the denominators
    assert np.allclose(R.sum(1).numpy(), out, rtol=1e-6)  # conservative despite the biases
    direct = chexplain.LRP(model, composite=composites.Composite(
        {"dense": extended.EpsilonNoBias()}))(x, target=0)
    torch.testing.assert_close(direct, R)


def test_a_preset_name_cannot_be_registered_twice():
    with pytest.raises(ChexplainError, match="'lrp-epsilon' is registered twice"):
        composites.preset("lrp-epsilon")(lambda: None)
