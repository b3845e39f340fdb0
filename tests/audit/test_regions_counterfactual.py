"""Region shares on hand-built maps, and the counterfactual test on toy models whose logit
depends on a corner (used) or not at all on it (not used)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from chexplain.audit.counterfactual import CounterfactualConfig, counterfactual, hot_cells
from chexplain.audit.regions import RegionConfig, fixed_masks, outside_body, region_masks, region_shares, shares


def test_shares_of_hand_built_maps():
    maps = np.zeros((3, 64, 64))
    maps[0, 2, 2] = 3.0  # all in the top-left corner and the border
    maps[1, 32, 32], maps[1, 2, 60] = 1.0, 1.0  # half in the top-right corner
    maps[1, 10, 10] = -5.0  # negative relevance does not count
    s = shares(maps[:2], fixed_masks(64))
    assert s["top-left"].tolist() == [1.0, 0.0] and s["top-right"].tolist() == [0.0, 0.5]
    assert s["border"].tolist() == [1.0, 0.5] and s["bottom-left"].tolist() == [0.0, 0.0]
    assert np.isnan(shares(maps[2:], fixed_masks(64))["border"][0])  # no positive relevance
    m = fixed_masks(64, RegionConfig(border=0.1, corner=0.25))
    assert m["border"].sum() == 64 * 64 - 52 * 52 and m["top-left"].sum() == 16 * 16


def test_outside_body_is_edge_connected_darkness():
    img = np.full((1, 64, 64), 0.02)
    yy, xx = np.mgrid[0:64, 0:64]
    body = (yy - 32) ** 2 / 28**2 + (xx - 32) ** 2 / 24**2 < 1
    img[0][body] = 0.5
    img[0][(yy - 30) ** 2 + (xx - 24) ** 2 < 36] = 0.03  # a dark lung inside the body
    out = outside_body(img, 0.1)[0]
    assert out[0, 0] and not out[30, 24] and not out[32, 32]
    assert not (out & body).any() and out.mean() > (~body).mean() - 0.05  # a 1-px ring smoothed away
    img[0, 1:7, 1:7] = 0.32  # a dim marker in the air is cut off from the body: outside
    out = outside_body(img, 0.1)[0]
    assert out[1:7, 1:7].all() and not (out & body).any()
    finding = np.zeros((1, 64, 64), bool)
    finding[0, 30:34, 30:34] = True
    masks = region_masks(img, finding, np.array([True]))
    maps = np.zeros((1, 64, 64))
    maps[0, 31, 31], maps[0, 0, 32] = 3.0, 1.0
    s = region_shares(maps, masks, np.array([True]))
    assert s["finding"][0] == 0.75 and s["outside body"][0] == 0.25 and s["shortcut area"][0] == 0.25


def test_hot_cells_of_a_prototype():
    proto = np.zeros((32, 32))
    proto[0:4, 0:4] = 1.0  # one 4x4-cell block of the 8x8 grid: cells (0,0)
    proto[20, 20] = 0.2
    hot = hot_cells(proto, 8, hot_share=0.5)
    assert hot.sum() == 1 and hot[0, 0]
    hot = hot_cells(proto, 8, hot_share=0.99)
    assert hot.sum() == 2 and hot[5, 5]
    with pytest.raises(Exception, match="no positive relevance"):
        hot_cells(-np.ones((8, 8)), 4)


class CornerModel(nn.Module):
    """Logit 0: the mean of the top-left 8x8 corner; logit 1: the mean of the whole image."""

    def forward(self, x):
        return torch.stack([x[:, :, :8, :8].mean((1, 2, 3)) * 10, x.mean((1, 2, 3))], 1)


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 32, 32, generator=g) * 0.2
    x[:, :, :8, :8] += 1.0  # a bright marker in the corner: blurring it lowers the mean there
    return x


def test_counterfactual_detects_the_corner_strategy():
    x = _images()
    hot = np.zeros((8, 8), bool)
    hot[:2, :2] = True  # the 8x8-pixel corner on an 8x8 grid of a 32-px image
    cfg = CounterfactualConfig(grid=8, n_random=6, permutations=2000, bootstrap=500)
    res = counterfactual(CornerModel(), x, 0, hot, cfg)
    assert res.used and res.p_value < 0.01 and res.cells == 4 and res.area == 4 / 64
    assert res.logit_drop_hot > 1.0 and res.logit_drop_hot > 5 * abs(res.logit_drop_control)
    assert res.ci_low <= res.effect <= res.ci_high and res.ci_low > 0
    again = counterfactual(CornerModel(), x, 0, hot, cfg)
    assert again == res  # seeded
    # a region the logit does not read: no effect beyond random regions
    far = np.zeros((8, 8), bool)
    far[5:7, 5:7] = True
    res = counterfactual(CornerModel(), x, 0, far, cfg)
    assert not res.used and res.p_value > 0.05 and abs(res.logit_drop_hot) < 1e-6
    # the class that reads the whole image: the corner is just another region of its size
    res = counterfactual(CornerModel(), x, 1, hot, cfg)
    assert res.p_value < 0.01  # the corner is the image's bright part: removing it matters most


def test_kept_pixels_are_removed_by_neither_arm():
    """Pixels under ``keep`` (an image's own finding) stay as they are in the hot and in the
    random cells: the corner kept, its removal changes nothing; half of it kept, half the drop."""
    x = _images()
    hot = np.zeros((8, 8), bool)
    hot[:2, :2] = True
    cfg = CounterfactualConfig(grid=8, n_random=6, permutations=2000, bootstrap=500)
    keep = np.zeros((len(x), 16, 16), bool)  # any resolution: resized to the images' 32 px
    keep[:, :4, :4] = True
    res = counterfactual(CornerModel(), x, 0, hot, cfg, keep=keep)
    assert abs(res.logit_drop_hot) < 1e-6 and abs(res.logit_drop_control) < 1e-6 and not res.used
    keep[:, :4, :4] = False
    keep[:, :4, :2] = True  # the left half of the corner, replaced by the image mean: linear
    flat = CounterfactualConfig(grid=8, n_random=6, permutations=2000, bootstrap=500, baseline="mean")
    full = counterfactual(CornerModel(), x, 0, hot, flat)
    half = counterfactual(CornerModel(), x, 0, hot, flat, keep=keep)
    assert half.logit_drop_hot == pytest.approx(full.logit_drop_hot / 2, rel=1e-3)  # float32 sums


def test_bright_pieces_are_small_near_white_overlays():
    from chexplain.audit.regions import bright_pieces

    img = np.full((2, 64, 64), 0.5)
    img[0, 10:14, 20:40] = 0.97  # a word: 80 px, 2 % of the image
    img[1, 8:40, 8:40] = 0.95  # an over-exposed field: 25 % of the image, not an overlay
    img[1, 50, 50] = 0.89  # under the threshold
    m = bright_pieces(img, 0.9, 0.05, grow=1)
    assert m[0].sum() == 6 * 22 - 4 and m[0, 9, 20] and not m[0, 8, 20]  # grown by 1 px (cross)
    assert not m[1].any()
    assert bright_pieces(img, 0.9, 0.05, grow=0)[0].sum() == 80
    masks = region_masks(img[:1], None, None)
    assert (masks["shortcut area"][0] >= masks["bright"][0]).all() and masks["bright"][0, 12, 30]


def test_finding_masks_per_class_folder_or_shared(tmp_path):
    from PIL import Image

    from chexplain.audit.regions import finding_masks

    m = np.zeros((128, 128), np.uint8)
    m[:32, 64:] = 255  # the top right quarter
    (tmp_path / "Pleural Effusion").mkdir()
    Image.fromarray(m).save(tmp_path / "Pleural Effusion" / "a.png")
    Image.fromarray(m.T.copy()).save(tmp_path / "a.png")
    keys = ["patient1/a.jpg", "patient2/b.jpg"]
    own = finding_masks(tmp_path, "Pleural Effusion", keys)
    shared = finding_masks(tmp_path, "Edema", keys)
    assert own.shape == (2, 64, 64) and own[0].sum() == 16 * 32 and own[0, :16, 32:].all()
    assert shared[0, 32:, :16].all() and shared[0].sum() == 16 * 32
    assert not own[1].any() and not shared[1].any()  # no file: no mask
