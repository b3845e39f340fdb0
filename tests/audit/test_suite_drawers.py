"""The held-out shortcuts of the audit suite (``benchmarks/_shortcut_drawers.py``): each is drawn
where its mask says, at its stated contrast, in the region it promises and at its rates."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OBS = "Pleural Effusion"


def _load():
    spec = importlib.util.spec_from_file_location("_shortcut_drawers", ROOT / "benchmarks" / "_shortcut_drawers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_shortcut_drawers", module)
    spec.loader.exec_module(module)
    return module


D = _load()


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory) -> Path:
    from chexplain.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("suite") / "clean", 60, 64, seed=3,
                         progress=False)


def _planted(clean_csv: Path, tmp: Path, kind: str, p_pos: float, p_neg: float,
             strength: float | None = None):
    """Plant ``kind`` on a copy of the clean set; (csv, labels, images before, images after, masks)."""
    folder = tmp / clean_csv.parent.name
    shutil.copytree(clean_csv.parent, folder)
    csv = folder / clean_csv.name
    frame = pd.read_csv(csv)
    before = [_read(tmp / p) for p in frame["Path"]]
    D.plant(csv, kind, OBS, p_pos, p_neg, seed=3, strength=strength)
    after = [_read(tmp / p) for p in frame["Path"]]
    masks = D.read_shortcut(csv)
    return csv, frame[OBS].to_numpy() == 1, before, after, [masks[p] for p in frame["Path"]]


def test_fields_match_the_phantom():
    """The recomputed lung field holds the phantom's nodules (placed in the lung less the
    heart) and is darker than the rest of the body; a wrong replay of the draws would not."""
    from chexplain.data.phantom import phantom_sample

    inside = lesions = 0
    for i in range(120):
        s, f = phantom_sample(64, 3, i), D.phantom_fields(64, 3, i)
        assert s.image[f.lung].mean() < s.image[f.body & ~f.lung].mean() - 0.1
        assert s.image[~f.body].mean() < s.image[f.body].mean()
        if "Lung Lesion" in s.masks:
            ys, xs = np.nonzero(s.masks["Lung Lesion"])
            lesions += 1
            inside += f.lung[int(round(ys.mean() - 0.5)), int(round(xs.mean() - 0.5))]
    assert lesions >= 20 and inside >= 0.95 * lesions


def test_rates_follow_the_label_and_are_independent():
    n = 4000
    for p in (0.9, 0.1, 0.5):
        for kind in D.KINDS:
            rate = np.mean([D.fires(kind, 0, i, p)[0] for i in range(n)])
            assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n)
    dim = np.array([D.fires("dim", 0, i, 0.5)[0] for i in range(n)])
    tex = np.array([D.fires("texture", 0, i, 0.5)[0] for i in range(n)])
    assert abs(np.corrcoef(dim, tex)[0, 1]) < 0.06


@pytest.mark.parametrize("kind", D.KINDS)
def test_drawn_only_on_the_chosen_images_where_the_mask_says(clean_set, tmp_path, kind):
    """With p⁺ = 1 and p⁻ = 0 exactly the positives are marked; the images change only inside
    the mask (up to the JPEG re-encoding every image gets)."""
    _, label, before, after, masks = _planted(clean_set, tmp_path, kind, 1.0, 0.0)
    assert label.any() and (~label).any()
    assert [m is not None for m in masks] == list(label)
    side = {"dim": 6, "dim-lungs": 6, "texture": 10, "anywhere": 7}[kind]
    for b, a, m in zip(before, after, masks):
        diff = np.abs(a - b)
        if m is None:
            assert diff.mean() < 0.01 and diff.max() < 0.1
            continue
        ys, xs = np.nonzero(m)
        assert ys.max() - ys.min() + 1 == side and xs.max() - xs.min() + 1 == side
        assert m.sum() == (side * side if kind != "anywhere" else 4 * side - 4)
        assert diff[~m].mean() < 0.01
        if kind != "anywhere":  # medium grey may match the body's grey (its own test below)
            assert diff[m].mean() > 0.08


@pytest.mark.parametrize("kind", ["dim", "dim-lungs"])
def test_dim_square_on_the_lung_field_at_grey_plus_lift(clean_set, tmp_path, kind):
    _, _, before, after, masks = _planted(clean_set, tmp_path, kind, 1.0, 1.0)
    right = 0
    for i, (b, a, m) in enumerate(zip(before, after, masks)):
        assert D.phantom_fields(64, 3, i).lung[m].all()
        assert a[m].mean() - b[m].mean() == pytest.approx(D.DIM_LIFT, abs=0.03)
        assert a[m].max() <= D.DIM_CEILING + 0.04  # never near-white (JPEG ringing aside)
        assert a[m].std() < 0.03  # filled: one grey
        ys, xs = np.nonzero(m)
        if kind == "dim":  # the upper-left quadrant
            assert ys.max() < 32 and xs.max() < 32
        right += xs.min() >= 32
    if kind == "dim-lungs":  # both lung fields, lower parts too
        assert right >= 10


@pytest.mark.parametrize("amplitude", [None, 0.2])
def test_texture_patch_on_the_body_as_a_checkerboard(clean_set, tmp_path, amplitude):
    _, _, before, after, masks = _planted(clean_set, tmp_path, "texture", 1.0, 1.0, amplitude)
    amplitude = amplitude or D.TEXTURE_AMPLITUDE
    for i, (b, a, m) in enumerate(zip(before, after, masks)):
        assert D.phantom_fields(64, 3, i).body[m].all()
        ys, xs = np.nonzero(m)
        sign = np.where((ys - ys.min() + xs - xs.min()) % 2 == 0, 1.0, -1.0)
        drawn = np.mean((a[m] - b[m]) * sign)
        assert 0.7 * amplitude < drawn < 1.2 * amplitude
        assert abs(np.mean(a[m] - b[m])) < 0.3 * amplitude  # no overall brightening (clipping aside)


def test_hollow_square_anywhere_in_medium_grey(clean_set, tmp_path):
    _, _, _, after, masks = _planted(clean_set, tmp_path, "anywhere", 1.0, 1.0)
    centres, outside_body = [], 0
    for i, (a, m) in enumerate(zip(after, masks)):
        assert np.abs(a[m] - D.HOLLOW_GREY).mean() < 0.05
        ys, xs = np.nonzero(m)
        centres.append((ys.mean(), xs.mean()))
        outside_body += not D.phantom_fields(64, 3, i).body[m].all()
    centres = np.array(centres)
    assert outside_body >= 10  # anywhere, not only on the body
    assert centres.min() < 12 and centres.max() > 52  # spread over the whole image
