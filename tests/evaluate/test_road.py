"""ROAD's noisy linear imputation: the linear system, exactness on ramps, the noise, and the
``road`` baseline through region perturbation and ``chexplain compare``."""

from __future__ import annotations

import json

import numpy as np
import torch

from chexplain.evaluate.faithfulness import BASELINES, baseline_image, region_perturbation, region_ranking
from chexplain.evaluate.road import linear_imputation, noisy_linear_imputation

DIRECT, DIAGONAL = 1 / 6, 1 / 12


def _mask(h: int, w: int, seed: int, p: float = 0.4) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)) < p


def _neighbour_mean(img: np.ndarray, r: int, c: int) -> np.ndarray:
    """The weighted mean of the in-image neighbours of (r, c), written out pixel by pixel."""
    h, w = img.shape[1:]
    total, weight = np.zeros(img.shape[0]), 0.0
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if (dr, dc) == (0, 0) or not (0 <= r + dr < h and 0 <= c + dc < w):
                continue
            wt = DIRECT if dr == 0 or dc == 0 else DIAGONAL
            total += wt * img[:, r + dr, c + dc]
            weight += wt
    return total / weight


def test_known_pixels_unchanged_and_system_holds():
    img = np.random.default_rng(0).normal(size=(3, 13, 17))
    gone = _mask(13, 17, 1)
    gone[0, :] = True  # removed pixels on the border: renormalised weights
    gone[:, -1] = True
    out = linear_imputation(img, gone)
    assert np.array_equal(out[:, ~gone], img[:, ~gone])
    for r, c in zip(*np.nonzero(gone)):
        np.testing.assert_allclose(out[:, r, c], _neighbour_mean(out, r, c), rtol=0, atol=1e-8)
    assert np.abs(out[:, gone] - img[:, gone]).max() > 0.1  # the removed values are not kept


def test_linear_ramp_is_imputed_exactly():
    r, c = np.mgrid[0:20, 0:24].astype(float)
    img = np.stack([0.3 * r - 0.7 * c + 2.0, -1.1 * r + 0.05 * c])
    gone = np.zeros((20, 24), dtype=bool)
    gone[5:14, 6:19] = True  # a block inside the image
    gone[9, 2:4] = True
    out = linear_imputation(img, gone)
    np.testing.assert_allclose(out, img, rtol=0, atol=1e-10)


def test_everything_removed_is_the_channel_mean():
    img = np.random.default_rng(2).normal(size=(2, 6, 5))
    out = linear_imputation(img, np.ones((6, 5), dtype=bool))
    np.testing.assert_allclose(out, np.broadcast_to(img.mean(axis=(1, 2), keepdims=True), img.shape))
    assert np.array_equal(linear_imputation(img, np.zeros((6, 5), dtype=bool)), img)


def test_noise_only_on_imputed_pixels_with_sigma():
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gone = torch.from_numpy(np.stack([_mask(64, 64, 3, 0.5), _mask(64, 64, 4, 0.5)]))
    clean = noisy_linear_imputation(x, gone, sigma=0.0)
    for i in range(2):
        np.testing.assert_allclose(clean[i].numpy(), linear_imputation(x[i].numpy(), gone[i].numpy()))
    sigma = 0.05
    noisy = noisy_linear_imputation(x, gone, sigma, torch.Generator().manual_seed(1))
    diff = (noisy - clean).permute(1, 0, 2, 3)  # (C, N, H, W)
    assert torch.equal(diff[:, ~gone], torch.zeros_like(diff[:, ~gone]))
    d = diff[:, gone]  # ~12 000 draws
    assert d.numel() > 10000
    assert abs(d.std().item() - sigma) < 0.03 * sigma and abs(d.mean().item()) < 0.03 * sigma


def test_seed_reproducibility():
    x = torch.randn(1, 1, 16, 16)
    gone = torch.from_numpy(_mask(16, 16, 5))[None]
    a, b, c = (noisy_linear_imputation(x, gone, 0.01, torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == x.dtype and a.shape == x.shape


class _Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1) @ torch.ones(x[0].numel(), 2, dtype=x.dtype)


def test_region_perturbation_with_road():
    assert "road" in BASELINES
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 16, 16, generator=g)
    model = _Linear(torch.randn(1, 1, 16, 16, generator=g)).eval()
    maps = torch.rand(3, 16, 16, generator=g)
    kw = dict(patch=4, steps=4, baseline="road", seed=3)
    out = region_perturbation(model, x, maps, [0, 1, 0], **kw)
    assert out["baseline"] == "road"
    for order in ("morf", "lerf"):
        assert out[order]["curve"].shape == (3, 5) and out[order]["aopc"].shape == (3,)
        np.testing.assert_allclose(out[order]["drop"][:, 0], 0)
    # the end step (everything removed) is the image mean plus noise: with no noise, the
    # linear model's logit is the mean times the weights' sum
    quiet = region_perturbation(model, x, maps, [0, 1, 0], road_noise=0.0, **kw)
    end = x.mean(dim=(1, 2, 3)).double() * model.w.double().sum()
    np.testing.assert_allclose(quiet["morf"]["curve"][:, -1], end.detach().numpy(), rtol=1e-5)
    # an inner step is the model on the imputed image of that step's mask (rebuilt here)
    g = torch.Generator().manual_seed(3)
    baseline_image(x, "road", generator=g, road_noise=0.0)  # the draws region_perturbation makes first
    rank = region_ranking(maps, 4, g)
    for k in (1, 2, 3):
        gone = (rank < 4 * k).view(3, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)
        imputed = torch.stack([torch.from_numpy(linear_imputation(x[i].numpy(), gone[i].numpy()))
                               for i in range(3)]).float()
        logit = model(imputed).gather(1, torch.tensor([[0], [1], [0]]))[:, 0]
        np.testing.assert_allclose(quiet["morf"]["curve"][:, k], logit.detach().numpy(), rtol=1e-5)
    again = region_perturbation(model, x, maps, [0, 1, 0], **kw)
    np.testing.assert_array_equal(out["morf"]["curve"], again["morf"]["curve"])
    assert not np.allclose(out["morf"]["curve"][:, 1:-1], quiet["morf"]["curve"][:, 1:-1], atol=0)


def test_compare_cli_road_on_phantom(tmp_path, tiny_phantom):
    from chexplain.cli import main

    csv, ckpt = tiny_phantom.csv, tiny_phantom.checkpoint
    out = tmp_path / "out"
    rc = main(["compare", "--checkpoint", str(ckpt), "--csv", str(csv), "--methods", "random,gradient-x-input",
               "--baseline", "road", "--patch", "8", "--steps", "2", "--randomisation-items", "0",
               "--bootstrap", "5", "--max-items", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    saved = json.loads((out / "compare.json").read_text())
    assert saved["config"]["baseline"] == "road"
    assert len(saved["aopc_curves"]["random"]["morf"]) == 3
    assert saved["summary"]["gradient-x-input"]["aopc_morf"]["n"] == saved["n_items"] > 0
