"""The one method registry: every registered name is accepted by every entry point that offers
its family (the API, the evaluation's Attributor, the audit's MapMaker and the CLI's parameter
check) and gives a map of the expected shape; unknown names are refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import chexplain
from chexplain.audit.explain import MapMaker
from chexplain.data.images import IMAGENET
from chexplain.errors import ChexplainError
from chexplain.evaluate.baselines import Attributor
from chexplain.registry import FAMILIES, check_method_params, family, methods, names, registry

FAST = {"integrated-gradients": {"steps": 2}, "smoothgrad": {"n": 2},
        "occlusion": {"window": 4, "stride": 4}}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_families_partition_the_names():
    assert set(registry().values()) == set(FAMILIES)
    assert sorted(sum((names(f) for f in FAMILIES), ())) == sorted(registry())
    assert methods() == names("lrp", "cam", "attribution") == chexplain.methods()
    assert set(chexplain.PRESETS) == set(names("lrp"))


@pytest.mark.parametrize("name", list(registry()))
def test_every_name_reaches_every_entry_point(name):
    model, x = _model(), torch.rand(2, 3, 8, 8)
    params = FAST.get(name, {})
    bounds = {"low": 0.0, "high": 1.0} if name == "epsilon-gamma-box" else {}  # z^B's, given
    check_method_params(name, dict(params, **bounds))
    maps = Attributor(model, name, IMAGENET, **params)(x, target=1)
    assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all()
    if family(name) == "baseline":
        with pytest.raises(ChexplainError, match="baseline of the evaluation"):
            chexplain.explain(model, x, method=name, target=1)
        return
    direct = chexplain.explain(model, x, method=name, target=1, **params, **bounds)
    assert direct.shape[0] == 2 and direct.shape[-2:] == (8, 8)
    if name != "random":
        made, logits = MapMaker(model, name, [0, 2], IMAGENET, **params)(x)
        assert made.shape == (2, 2, 8, 8) and logits.shape == (2, 2)


def test_unknown_names_are_refused_in_one_line():
    for bad in ("lrp-nonsense", "GradCAM", 3):
        with pytest.raises(ChexplainError, match="unknown method") as info:
            family(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ChexplainError, match="unknown method 'lrp-nonsense'"):
        chexplain.explain(_model(), torch.rand(1, 3, 8, 8), method="lrp-nonsense")
