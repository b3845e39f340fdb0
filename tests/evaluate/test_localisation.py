"""Localisation metrics on synthetic cases with known answers."""

import math

import numpy as np
import pytest
import torch

from chexplain.errors import InputError
from chexplain.evaluate.localisation import (iou, localisation_metrics, pointing_game,
                                             relevance_mass, relevance_rank)


def _masks(n=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((n, size, size), bool)
    for i in range(n):
        y, x = rng.integers(0, size - 10, 2)
        m[i, y:y + 10, x:x + 8] = True
    return torch.from_numpy(m)


def test_map_equal_to_mask_scores_one():
    m = _masks()
    r = m.float()
    out = localisation_metrics(r, m)
    for key in ("pointing_game", "relevance_mass", "relevance_rank", "iou"):
        assert np.allclose(out[key], 1.0), key
    assert out["n_empty"] == 0 and out["n"] == 8


def test_random_map_scores_area_share():
    m = torch.zeros(400, 40, 40, dtype=torch.bool)
    m[:, 5:25, 10:30] = True  # share 0.25
    r = torch.rand(400, 40, 40, generator=torch.Generator().manual_seed(1))
    assert relevance_mass(r, m).mean().item() == pytest.approx(0.25, abs=0.01)
    assert relevance_rank(r, m).mean().item() == pytest.approx(0.25, abs=0.01)
    assert pointing_game(r, m).mean().item() == pytest.approx(0.25, abs=0.07)


def test_inverse_map_scores_zero_and_negative_relevance_ignored():
    m = _masks()
    r = (~m).float() - 5.0 * m.float()  # strongly negative inside: no positive mass there
    assert np.allclose(relevance_mass(r, m), 0)
    assert np.allclose(pointing_game(r, m), 0)
    assert np.allclose(relevance_rank(r, m), 0)
    # signed-sum pitfall: positive mass inside, negative outside must still be in [0, 1]
    r2 = m.float() * 2 - (~m).float()
    assert np.allclose(relevance_mass(r2, m), 1.0)


def test_empty_masks_excluded_and_counted_never_hits():
    m = _masks(4)
    m[1] = False
    m[3] = False
    r = torch.zeros(4, 32, 32)  # constant maps: every pixel is the max
    out = localisation_metrics(r + 1, m)
    assert math.isnan(out["pointing_game"][1]) and math.isnan(out["pointing_game"][3])
    assert out["n_empty"] == 2
    for key in ("relevance_mass", "relevance_rank", "iou"):
        assert np.isnan(out[key][[1, 3]]).all()


def test_constant_map_ties_score_area_share():
    m = torch.zeros(1, 10, 10, dtype=torch.bool)
    m[0, :3, :] = True
    assert pointing_game(torch.ones(1, 10, 10), m).item() == pytest.approx(0.3)


def test_zero_map_has_no_relevance_mass():
    m = _masks(2)
    out = localisation_metrics(torch.zeros(2, 32, 32), m)
    assert np.isnan(out["relevance_mass"]).all() and out["n_no_positive"] == 2
    # not a hit by the area share of its tied zeros: not scored, as the report's n= rule says
    assert np.isnan(out["pointing_game"]).all()
    assert np.isnan(pointing_game(-torch.rand(2, 32, 32), m)).all()  # only negative evidence


def test_pointing_game_tolerance():
    m = torch.zeros(1, 20, 20, dtype=torch.bool)
    m[0, 5:8, 5:8] = True
    r = torch.zeros(1, 20, 20)
    r[0, 10, 10] = 1
    assert pointing_game(r, m).item() == 0
    assert pointing_game(r, m, tolerance=3).item() == 1


def test_iou_threshold_and_partial_overlap():
    m = torch.zeros(1, 10, 10, dtype=torch.bool)
    m[0, :, :5] = True
    r = torch.zeros(1, 10, 10)
    r[0, :, 2:7] = 1.0  # 30 inside, 20 outside; union 70
    assert iou(r, m).item() == pytest.approx(30 / 70)
    assert relevance_mass(r, m).item() == pytest.approx(0.6)


def test_shape_mismatch_is_one_line_error():
    with pytest.raises(InputError, match="same size"):
        relevance_mass(torch.zeros(2, 8, 8), torch.zeros(2, 16, 16, dtype=torch.bool))
