"""The matched test: a shortcut lying on the finding's own mask (a drain along the pneumothorax
it stands in for) is told from the finding by comparing the members with images whose finding
covers the same cells; a model that reads only the finding is not flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from chexplain.audit.analysis import AnalysisConfig, audit_class
from chexplain.audit.counterfactual import CounterfactualConfig, matched_counterfactual
from chexplain.audit.pooling import sum_pool
from chexplain.audit.spray import SprayConfig

CFG = CounterfactualConfig(grid=8, permutations=999, bootstrap=200, baseline="mean")


class RegionSum(nn.Module):
    """Logit: the sum of the pixels of rows 0–7, columns 0–7 (a linear read of one region)."""

    def forward(self, x):
        return x[:, :, :8, :8].sum((1, 2, 3))[:, None]


def _drop(x: torch.Tensor, cells: np.ndarray) -> np.ndarray:
    """f(x) − f(x with ``cells`` (8 × 8 grid of 4-px cells) at the image mean): by hand."""
    px = torch.from_numpy(np.kron(cells, np.ones((4, 4))).astype(bool))
    mean = x.mean((1, 2, 3), keepdim=True)
    return (torch.where(px, x - mean, 0)[:, :, :8, :8].sum((1, 2, 3))).numpy().astype(np.float64)


def test_matched_effect_is_members_drop_minus_their_controls_mean_drop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 32, 32, generator=g) * 0.2
    x[:, :, 2:6, 2:6] += 1.0  # the members' "tube" in the read region
    controls = torch.rand(11, 1, 32, 32, generator=g) * 0.2
    cells = np.zeros((8, 8, 8), bool)
    cells[:, 0:2, 0:2] = True
    owner = np.array([0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 7])
    res = matched_counterfactual(RegionSum(), x, controls, 0, cells, cells[owner], owner, CFG)
    d_ctrl = np.bincount(owner, weights=_drop(controls, cells[owner][0])) / np.bincount(owner)
    want = _drop(x, cells[0]) - d_ctrl
    assert res.per_image == pytest.approx(want.tolist(), rel=1e-5)
    assert res.effect == pytest.approx(want.mean(), rel=1e-5) and res.control == "matched images"
    assert res.used and res.controls == 11 and res.images == 8
    same = matched_counterfactual(RegionSum(), controls[:8], controls[3:], 0, cells, cells,
                                  np.arange(8), CFG)
    assert not same.used and abs(same.effect) < 0.5  # controls against controls: no effect
    with pytest.raises(Exception, match="each with a control"):
        matched_counterfactual(RegionSum(), x, controls, 0, cells, cells[owner], np.zeros(11, int), CFG)


N_TUBE, N_PLAIN = 16, 32


def _blob(cy: float, cx: float, rng) -> np.ndarray:
    y, x = np.mgrid[0:64, 0:64] / 64
    jy, jx = rng.normal(0, 0.01, 2)
    b = np.exp(-(((y - cy - jy) ** 2 + (x - cx - jx) ** 2) / (2 * 0.05 ** 2)))
    return b / b.sum()


class Reads(nn.Module):
    """The finding in the middle, and (``tube``) a bright patch low on the left: both lie under
    the finding's mask."""

    def __init__(self, tube: bool) -> None:
        super().__init__()
        self.tube = tube

    def forward(self, x):
        out = x[:, :, 12:20, 10:18].mean((1, 2, 3)) * 4
        if self.tube:
            out = out + x[:, :, 22:26, 8:12].mean((1, 2, 3)) * 8
        return out[:, None]


def _audit(model):
    rng = np.random.default_rng(0)
    kinds = np.array([1] * N_TUBE + [0] * N_PLAIN)[rng.permutation(N_TUBE + N_PLAIN)]
    n = len(kinds)
    maps, images = [], []
    for k in kinds:
        m = _blob(0.5, 0.44, rng)
        img = np.full((32, 32), 0.5) + 0.02 * rng.standard_normal((32, 32))
        img[12:20, 10:18] += 0.2 + 0.05 * rng.standard_normal()  # the finding
        if k:
            m = 0.5 * m + 0.5 * _blob(0.75, 0.31, rng)
            img[22:26, 8:12] = 1.0
        maps.append(m + 1e-5 * rng.standard_normal((64, 64)))
        images.append(img)
    maps64, images = np.asarray(maps), np.asarray(images, dtype=np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(images)[:, None]).numpy()
    finding = np.zeros((n, 1, 64, 64), bool)
    finding[:, 0, 20:56, 12:44] = True  # one mask over the finding and the tube's place
    data = {"logits": logits, "maps64": maps64[:, None],
            "maps32": sum_pool(torch.from_numpy(maps64), 32).numpy()[:, None],
            "image64": np.kron(images, np.ones((2, 2))), "finding64": finding,
            "has_finding": np.ones((n, 1), bool)}
    config = AnalysisConfig(population="all", spray=SprayConfig(n_clusters=2, embedding="spectral"),
                            counterfactual=CounterfactualConfig(permutations=999, bootstrap=200))
    keys = [f"img{i}" for i in range(n)]
    a = audit_class("Pneumothorax", 0, data, np.ones((n, 1)), pd.DataFrame(index=range(n)), keys,
                    config, lambda pos: torch.from_numpy(images[pos])[:, None], model, 0)
    return kinds, a


def test_a_shortcut_on_the_finding_mask_is_flagged_by_the_matched_test():
    kinds, a = _audit(Reads(tube=True))
    assert len(a.strategies) == 1
    st = a.strategies[0]
    assert st["verdict"] == "flagged" and "holds more than the finding" in st["why"]
    assert {int(m[3:]) for m in st["members"]} == set(np.flatnonzero(kinds == 1).tolist())
    cf = st["counterfactual"]
    assert cf["control"] == "matched images" and cf["effect"] > cf["floor"] > 0
    assert cf["floor"] == pytest.approx(CounterfactualConfig().matched_effect_sd * a.logit_sd)
    assert cf["images_on_finding"] == N_TUBE and cf["off_finding"] is None  # wholly on the mask
    assert st["distinctive_region"]["evidence_overlap"] == 1.0


def test_a_model_reading_only_the_finding_is_not_flagged_by_the_matched_test():
    _, a = _audit(Reads(tube=False))
    assert not a.strategies and not any(c["flagged"] for c in a.clusters)
    tested = [c for c in a.clusters if (c["counterfactual"] or {}).get("control") == "matched images"]
    assert tested, "the tube's cluster is tested against matched images"
    for c in tested:
        assert c["counterfactual"]["p_value"] > 0.05 and "not significantly larger" in c["why"]
