"""Region perturbation on a model whose logit is known: the sum of a pixel weight map."""

import numpy as np
import pytest
import torch

from chexplain.errors import InputError
from chexplain.evaluate.faithfulness import (aopc_summary, baseline_image, region_perturbation,
                                             region_ranking)


class Weighted(torch.nn.Module):
    """logit_c = sum(w_c ⊙ x): the relevance of a pixel is known exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)  # (C_out, H, W)

    def forward(self, x):
        return torch.einsum("nchw,khw->nk", x, self.w)


def _setup(n=6, size=32):
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, size, size, generator=g)
    x = torch.ones(n, 1, size, size)
    return Weighted(w).eval(), x, w


def test_perfect_ranking_beats_its_reverse():
    model, x, w = _setup()
    target = torch.zeros(6, dtype=torch.long)
    perfect = w[0].expand(6, -1, -1)
    out = region_perturbation(model, x, perfect, target, patch=4, steps=16, baseline="noise",
                              bounds=(0.0, 0.0))
    rev = region_perturbation(model, x, -perfect, target, patch=4, steps=16, baseline="noise",
                              bounds=(0.0, 0.0))
    assert (out["morf"]["aopc"] > rev["morf"]["aopc"]).all()
    assert (out["lerf"]["aopc"] < rev["lerf"]["aopc"]).all()
    s = aopc_summary(out)
    assert (s["aopc_gap"] > 0).all()
    # removing everything with a zero baseline drives the logit to zero
    zero = region_perturbation(model, torch.ones(1, 1, 32, 32), w[:1], [0], patch=4, steps=8,
                               baseline="noise", bounds=(0.0, 0.0))
    assert zero["morf"]["curve"][0, -1] == pytest.approx(0.0, abs=1e-9)
    assert zero["morf"]["curve"][0, 0] == pytest.approx(float(w[0].sum()), rel=1e-5)
    assert np.all(np.diff(zero["morf"]["curve"][0]) <= 1e-9)  # positive weights: monotone


def test_aopc_formula_and_steps():
    model, x, w = _setup(1)
    out = region_perturbation(model, x, w[:1], [0], patch=8, steps=4, baseline="mean")
    curve = out["morf"]["curve"][0]
    assert out["morf"]["aopc"][0] == pytest.approx(np.mean(curve[0] - curve))
    assert out["removed_fraction"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_random_map_between_perfect_and_reverse():
    model, _, w = _setup(4)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.1 + 1  # mean ~1.05
    t = torch.zeros(4, dtype=torch.long)
    best = region_perturbation(model, x, (w[0] * x[:, 0]), t, patch=4, steps=16,
                               baseline="noise", bounds=(0.0, 0.0))["morf"]["aopc"].mean()
    worst = region_perturbation(model, x, -(w[0] * x[:, 0]), t, patch=4, steps=16,
                                baseline="noise", bounds=(0.0, 0.0))["morf"]["aopc"].mean()
    rand = region_perturbation(model, x, torch.rand(4, 32, 32), t, patch=4, steps=16,
                               baseline="noise", bounds=(0.0, 0.0))["morf"]["aopc"].mean()
    assert worst < rand < best


def test_ties_are_broken_at_random_not_raster():
    rank = region_ranking(torch.zeros(1, 16, 16), 4, torch.Generator().manual_seed(3))
    assert sorted(rank[0].tolist()) == list(range(16))
    assert rank[0].tolist() != list(range(16))


def test_noise_baseline_within_normalised_range():
    x = torch.zeros(2, 3, 16, 16)
    low, high = (-2.0, -1.5, -1.8), (2.2, 2.4, 2.6)
    b = baseline_image(x, "noise", bounds=(low, high), generator=torch.Generator().manual_seed(0))
    for c in range(3):
        assert b[:, c].min() >= low[c] and b[:, c].max() <= high[c]
    grey = (b[:, 0] - low[0]) / (high[0] - low[0])
    assert torch.allclose(grey, (b[:, 2] - low[2]) / (high[2] - low[2]), atol=1e-5)
    blur = baseline_image(torch.randn(1, 1, 32, 32), "blur", patch=4)
    assert blur.shape == (1, 1, 32, 32)


def test_bad_arguments():
    model, x, w = _setup(1)
    with pytest.raises(InputError, match="baseline"):
        region_perturbation(model, x, w[:1], [0], baseline="uniform")
    with pytest.raises(InputError, match="bounds"):
        region_perturbation(model, x, w[:1], [0], baseline="noise")
    with pytest.raises(InputError, match="maps"):
        region_perturbation(model, x, w, [0])


def test_shared_ends_are_computed_once_and_change_nothing():
    """With ``shared`` the unperturbed and fully perturbed logits come from the first call:
    later maps of the same images give the same curves with two forwards fewer."""
    model, x, w = _setup(3)
    x = x + torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 0])
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    maps = [w[target], torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))]
    alone = [region_perturbation(model, x, R, target, patch=8, steps=4, baseline="blur") for R in maps]
    calls.clear()
    ends: dict = {}
    together = [region_perturbation(model, x, R, target, patch=8, steps=4, baseline="blur", shared=ends)
                for R in maps]
    assert sorted(ends) == [0, 4]
    for a, b in zip(alone, together):
        for order in ("morf", "lerf"):
            np.testing.assert_array_equal(a[order]["curve"], b[order]["curve"])
    # per call: 3 inner steps × 2 orders × 3 images; the two ends (3 images each) only once
    assert sum(calls) == 2 * 3 * 2 * 3 + 2 * 3
