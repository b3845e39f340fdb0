"""compare(): one item per (image, positive finding), empty masks counted, CIs, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chexplain.evaluate.compare import CompareConfig, bootstrap_ci, compare, evaluation_items
from chexplain.models.densenet import chexpert_densenet

NAMES = ["No Finding", "Cardiomegaly", "Pleural Effusion"]


class Fake(torch.utils.data.Dataset):
    """3 images: #0 both findings, #1 effusion with an EMPTY mask, #2 nothing."""

    with_masks = True

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(3, 3, 32, 32, generator=g)
        self.targets = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=np.float32)
        self.masks = torch.zeros(3, 3, 32, 32, dtype=torch.bool)
        self.masks[0, 1, 8:20, 8:20] = True
        self.masks[0, 2, 20:30, 0:10] = True

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return {"image": self.x[i], "target": torch.from_numpy(self.targets[i]),
                "finding_masks": self.masks[i], "path": f"img{i}.png"}


def test_evaluation_items_are_multi_label_pairs():
    t = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 0]])
    assert evaluation_items(t, [1, 2]).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert evaluation_items(t, [0]).tolist() == [[2, 0]]
    assert evaluation_items(np.zeros((2, 3)), [1]).shape == (0, 2)


def test_bootstrap_ci():
    mean, lo, hi = bootstrap_ci(np.r_[np.ones(50), np.zeros(50), np.nan], n=2000, seed=1)
    assert mean == 0.5 and lo == pytest.approx(0.4, abs=0.03) and hi == pytest.approx(0.6, abs=0.03)
    assert bootstrap_ci(np.array([np.nan])) == (None, None, None)
    assert bootstrap_ci(np.array([0.7]), n=10) == (0.7, 0.7, 0.7)


def test_compare_counts_items_and_empty_masks(tmp_path):
    torch.manual_seed(0)
    model, _ = chexpert_densenet("tiny", 3, None)
    cfg = CompareConfig(methods=("lrp-epsilon", "gradient-x-input", "random"),
                        classes=["Cardiomegaly", "Pleural Effusion"], patch=8, steps=4,
                        randomisation_items=2, randomisation_steps=2, bootstrap=100)
    res = compare(model.eval(), Fake(), tmp_path, NAMES, "imagenet", cfg, progress=False)
    assert res["n_items"] == 3 and res["n_images"] == 2 and res["n_empty"] == 1
    assert res["items_per_class"] == {"Cardiomegaly": 1, "Pleural Effusion": 2}
    for m in cfg.methods:
        assert res["summary"][m]["pointing_game"]["n"] <= 2  # the empty mask is never scored
        assert res["summary"][m]["aopc_morf"]["n"] == 3  # faithfulness needs no mask
        assert len(res["randomisation"][m]["ssim"]) == 2
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["summary"]["random"]["relevance_mass"]["mean"] is not None
    items = (tmp_path / "items.csv").read_text().splitlines()
    assert len(items) == 1 + 3 * 3 and items[0].startswith("image,class,method,pointing_game")
    for f in ("summary.csv", "per_class.csv", "aopc_curves.png", "localisation.png", "randomisation.png"):
        assert (tmp_path / f).is_file()
    # the random baseline ignores the model: after randomisation its map is still the same
    assert np.allclose(res["randomisation"]["random"]["ssim"], 1.0)
    from chexplain.evaluate.compare import leaders, summary_markdown

    md = summary_markdown(res, ("pointing_game", "aopc_gap"))
    assert "(higher is better)" in md and "In this run: pointing game:" in md
    assert "random" not in sum(leaders(res).values(), [])  # the baseline is never the leader
