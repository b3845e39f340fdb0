"""The flagging stage on planted data: a marker in the left or the right top corner is two SpRAy
clusters but one flagged strategy (their distinctive regions are each other's mirror image);
the finding's cluster is not a suspect; the counterfactual floor is relative to the logits'
spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from chexplain.audit.analysis import AnalysisConfig, audit_class
from chexplain.audit.counterfactual import CounterfactualConfig, counterfactual
from chexplain.audit.pooling import sum_pool
from chexplain.audit.spray import SprayConfig

N_LEFT, N_RIGHT, N_PLAIN = 12, 12, 36


def _blob(cy: float, cx: float, side: int, rng) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side] / side
    jy, jx = rng.normal(0, 0.01, 2)
    b = np.exp(-(((y - cy - jy) ** 2 + (x - cx - jx) ** 2) / (2 * 0.05 ** 2)))
    return b / b.sum()


def _planted(seed: int = 0, marker: float = 1.0):
    """Maps (64 px) and images (32 px): a quarter of the marker images' relevance on a bright
    marker in the top-left or top-right corner, the rest (and all of the plain images') on a
    finding in the middle; grey images with the body filling the frame."""
    rng = np.random.default_rng(seed)
    kinds = np.array([0] * N_LEFT + [1] * N_RIGHT + [2] * N_PLAIN)[rng.permutation(60)]
    maps, images = [], []
    for k in kinds:
        m = _blob(0.55, 0.45, 64, rng)
        img = np.full((32, 32), 0.5) + 0.02 * rng.standard_normal((32, 32))
        if k < 2:
            m = 0.75 * m + 0.25 * _blob(0.09, 0.09 if k == 0 else 0.91, 64, rng)
            cols = slice(1, 5) if k == 0 else slice(27, 31)
            img[1:5, cols] = marker  # a 4x4 marker, as big as its relevance
        maps.append(m + 1e-5 * rng.standard_normal((64, 64)))
        images.append(img)
    return kinds, np.asarray(maps), np.asarray(images, dtype=np.float32)


class TopCorners(nn.Module):
    """Logit: the brightness of the two top corners (a Clever Hans) or of the middle (clean)."""

    def __init__(self, clean: bool = False) -> None:
        super().__init__()
        self.clean = clean

    def forward(self, x):
        if self.clean:
            return x[:, :, 12:20, 10:18].mean((1, 2, 3))[:, None] * 4
        return (x[:, :, 1:5, 1:5].mean((1, 2, 3)) + x[:, :, 1:5, 27:31].mean((1, 2, 3)))[:, None] * 4


def _audit(model, strategies: bool = True, marker: float = 1.0, masks: bool = True, **cfg):
    kinds, maps64, images = _planted(marker=marker)
    n = len(kinds)
    with torch.no_grad():
        logits = model(torch.from_numpy(images)[:, None]).numpy()
    finding = np.zeros((n, 1, 64, 64), bool)
    finding[:, 0, 26:45, 19:39] = masks  # the finding blob at (0.55, 0.45) of the side
    data = {"logits": logits, "maps64": maps64[:, None],
            "maps32": sum_pool(torch.from_numpy(maps64), 32).numpy()[:, None],
            "image64": np.kron(images, np.ones((2, 2))), "finding64": finding,
            "has_finding": np.full((n, 1), masks)}
    config = AnalysisConfig(population="all", strategies=strategies,
                            spray=SprayConfig(n_clusters=3, embedding="spectral"),
                            counterfactual=CounterfactualConfig(permutations=999, bootstrap=200), **cfg)
    keys = [f"img{i}" for i in range(n)]
    a = audit_class("Effusion", 0, data, np.ones((n, 1)), pd.DataFrame(index=range(n)), keys, config,
                    lambda pos: torch.from_numpy(images[pos])[:, None], model, 0)
    return kinds, a


@pytest.mark.parametrize("marker", [1.0, 0.8])
def test_left_and_right_marker_clusters_are_one_flagged_strategy(marker):
    """A near-white or a grey marker: two clusters, one flagged strategy of both (their
    regions mirror each other), described as the upper left and right corners."""
    kinds, a = _audit(TopCorners(), marker=marker)
    members = {c["id"]: {int(m[3:]) for m in c["members"]} for c in a.clusters}
    left = {i for i in range(60) if kinds[i] == 0}
    right = {i for i in range(60) if kinds[i] == 1}
    assert set(map(frozenset, members.values())) == \
        {frozenset(left), frozenset(right), frozenset(set(range(60)) - left - right)}
    assert len(a.strategies) == 1
    st = a.strategies[0]
    assert st["verdict"] == "flagged" and st["flagged"] and len(st["clusters"]) == 2
    assert {int(m[3:]) for m in st["members"]} == left | right  # purity 1, recall 1
    assert st["distinctive_region"]["evidence_overlap"] == 0.0
    words = st["distinctive_region"]["words"]
    assert "upper left, inside the body" in words and "upper right, inside the body" in words
    cf = st["counterfactual"]
    assert cf["p_value"] < 0.01 and cf["effect"] > cf["floor"] == pytest.approx(0.5 * a.logit_sd)
    for c in a.clusters:
        assert c["flagged"] == (c["id"] in st["clusters"]) and c["strategy"] in (None, 0)
        r = c["distinctive_region"]
        if c["id"] in st["clusters"]:  # the marker's cells: rows 2-9 of 64, in the corner
            assert r["bbox"][0] <= 4 and r["bbox"][2] <= 12 and r["kind"] == "corners"
            assert r["share"] > 0.15 > r["share_others"]
        else:  # the finding: the marker clusters put less of their relevance there
            assert not c["suspect"] and c["verdict"] == "not a suspect"
            assert "finding" in c["why"] or "no significant effect" in c["why"], c["why"]
            assert r["evidence_overlap"] >= 0.5 and "centre" in r["words"]
    alone = _audit(TopCorners(), strategies=False, marker=marker)[1]
    assert len(alone.strategies) == 2 and all(len(s["clusters"]) == 1 for s in alone.strategies)
    unknown = _audit(TopCorners(), marker=marker, masks=False)[1]  # no finding mask known
    assert [s["verdict"] for s in unknown.strategies] == ["distinct strategy"]
    assert not any(c["flagged"] for c in unknown.clusters)


def test_a_model_that_ignores_the_marker_flags_nothing():
    _, a = _audit(TopCorners(clean=True))
    assert not a.strategies and not any(c["flagged"] or c["suspect"] for c in a.clusters)
    for c in a.clusters:
        assert c["verdict"] == "not a suspect" and c["why"]
        cf = c["counterfactual"]
        if cf is not None and c["distinctive_region"]["evidence_overlap"] < 0.5:
            assert abs(cf["logit_drop_hot"]) < 1e-6  # the corners never reach the logit


class Corner(nn.Module):
    def forward(self, x):
        return (x[:, :, :8, :8].mean((1, 2, 3)) * 10)[:, None]


def test_counterfactual_cells_per_image_and_relative_floor():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 32, 32, generator=g) * 0.2
    x[:, :, :8, :8] += 1.0
    hot = np.zeros((20, 8, 8), bool)
    hot[:, :2, :2] = True
    hot[10:, 2, 2] = True  # half the images remove 5 cells, half 4
    cfg = CounterfactualConfig(grid=8, n_random=6, permutations=999, bootstrap=200)
    res = counterfactual(Corner(), x, 0, hot, cfg, logit_sd=1.0)
    assert res.used and res.floor == 0.5 and res.area == pytest.approx(4.5 / 64)
    assert res.effect > 2.0  # the corner holds the whole logit
    strict = counterfactual(Corner(), x, 0, hot, cfg, logit_sd=2 * res.effect / 0.5)
    assert not strict.used and strict.p_value < 0.01 and strict.floor == pytest.approx(2 * res.effect)
    with pytest.raises(Exception, match="at least one hot cell"):
        counterfactual(Corner(), x, 0, np.zeros((20, 8, 8), bool), cfg)
