"""The phantom's planted shortcuts: each drawn only inside its mask, correlated as asked."""

from __future__ import annotations

import numpy as np
import pytest

from chexplain.cli import main
from chexplain.data.chexpert import OBSERVATIONS
from chexplain.data.phantom import MASK_NAMES, Confounder, generate_phantom, phantom_sample
from chexplain.data.shortcuts import KINDS, SHORTCUT_MASKS
from chexplain.errors import DataError


@pytest.mark.parametrize("kind", ["laterality", "drain"])
def test_local_shortcut_changes_only_its_mask(kind):
    for index in range(4):
        base = phantom_sample(96, 2, index)
        conf = Confounder("Pneumothorax", 1.0, 1.0, kind=kind)
        s = phantom_sample(96, 2, index, confounder=conf)
        mask = s.masks[SHORTCUT_MASKS[kind]]
        changed = base.image != s.image
        assert not (changed & ~mask).any(), "drawing outside the mask"
        assert changed[mask].mean() > 0.5 and 0.002 < mask.mean() < 0.05
        assert {k: v for k, v in s.masks.items() if k != conf.mask_name}.keys() == base.masks.keys()
        assert np.array_equal(s.labels, base.labels)


def test_laterality_in_a_corner_and_drain_on_the_pneumothorax_side():
    for index in range(8):
        s = phantom_sample(128, 4, index, confounder=Confounder("Pneumothorax", 1, 1, kind="laterality"))
        ys, xs = np.nonzero(s.masks["laterality"])
        assert (ys.max() < 128 * 0.3 or ys.min() > 128 * 0.7) and (xs.max() < 128 * 0.3 or xs.min() > 128 * 0.7)
        d = phantom_sample(128, 4, index, confounder=Confounder("Pneumothorax", 1, 1, kind="drain"),
                           findings={"Pneumothorax": True})
        ptx_cols = np.flatnonzero(d.masks["Pneumothorax"].any(0))
        drain_cols = np.flatnonzero(d.masks["drain"].any(0))
        assert (ptx_cols.mean() < 64) == (drain_cols.mean() < 64)  # the same side
        assert d.masks["drain"][:, [0, -1]].any() or drain_cols.min() < 10 or drain_cols.max() > 117


def test_site_style_frame_is_black_and_exposure_brighter():
    base = phantom_sample(96, 6, 0)
    s = phantom_sample(96, 6, 0, confounder=Confounder("Cardiomegaly", 1, 1, kind="site"))
    frame = s.masks["site"]
    assert frame[0].all() and frame[:, 0].all() and not frame[48, 48]
    assert 0.05 * 96 - 1 <= np.flatnonzero(frame[48]).size / 2 <= 0.08 * 96 + 1
    assert (s.image[frame] == 0).all()
    inner = ~frame
    assert s.image[inner].mean() > base.image[inner].mean() + 0.02  # brighter
    assert s.image[inner].std() < base.image[inner].std()  # flatter


@pytest.mark.parametrize("kind", KINDS)
def test_correlation_with_the_label(kind):
    obs = "Pneumothorax"
    ph = generate_phantom(60, 48, seed=9, confounder=Confounder(obs, 0.9, 0.1, kind=kind))
    has = ph.masks[:, MASK_NAMES.index(SHORTCUT_MASKS[kind])].any(axis=(1, 2))
    pos = ph.labels[:, OBSERVATIONS.index(obs)] == 1
    assert has[pos].mean() > 0.7 and has[~pos].mean() < 0.3


def test_several_kinds_at_once_and_bad_options(tmp_path):
    confs = [Confounder("Pneumothorax", 1, 1, kind="drain"), Confounder("Pleural Effusion", 1, 1)]
    s = phantom_sample(64, 0, 1, confounder=confs)
    assert {"drain", "marker"} <= set(s.masks)
    with pytest.raises(DataError, match="at most one confounder per kind"):
        phantom_sample(64, 0, 1, confounder=[confs[0], confs[0]])
    with pytest.raises(DataError, match="unknown confounder kind"):
        Confounder(kind="sticker")
    assert main(["phantom", "generate", "--n", "3", "--size", "48", "--out", str(tmp_path / "p"),
                 "--confounder", "Pneumothorax", "--confounder-kind", "drain",
                 "--confounder-p", "1", "1", "--quiet"]) == 0
    assert len(list((tmp_path / "p").rglob("drain.png"))) == 3
