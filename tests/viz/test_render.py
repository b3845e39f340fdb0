"""Rendering: colour maps, normalisation, overlays and files (PNG + raw NPY)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chexplain.errors import InputError
from chexplain.viz.render import get_cmap, heatmap_rgb, normalize, overlay, save_grid, save_heatmap

NEUTRAL = {"bwr": (255, 255, 255), "seismic": (255, 255, 255), "study": (0, 255, 0), "coldnhot": (0, 0, 0)}
RNG = np.random.default_rng(0)


def test_normalize_modes() -> None:
    R = np.array([[-2.0, 0.0], [1.0, 4.0]])
    np.testing.assert_array_equal(normalize(R), R / 4.0)
    np.testing.assert_array_equal(normalize(R, "minmax"), (R + 2.0) / 6.0)
    big = np.concatenate([np.linspace(-1, 1, 999), [100.0]])
    p = normalize(big, "percentile", percentile=99.0)
    q = np.percentile(np.abs(big), 99.0)
    np.testing.assert_allclose(p, np.clip(big / q, -1, 1))
    assert p.max() == 1.0 and p.min() >= -1.0 and np.isclose(p[500], big[500] / q)
    # a sparse map whose percentile is 0 falls back to max|R| instead of dividing by zero
    sparse = np.zeros(1000)
    sparse[3] = -5.0
    np.testing.assert_array_equal(normalize(sparse, "percentile"), sparse / 5.0)


@pytest.mark.parametrize("mode", ["symmetric", "percentile", "minmax"])
def test_zero_and_constant_maps_stay_finite(mode: str) -> None:
    zero = normalize(np.zeros((4, 5)), mode)
    assert np.array_equal(zero, np.zeros((4, 5)))
    const = normalize(np.full((3, 3), -7.0), mode)
    assert np.isfinite(const).all()
    expected = 0.0 if mode == "minmax" else -1.0
    assert np.array_equal(const, np.full((3, 3), expected))
    with pytest.raises(InputError, match="NaN"):
        normalize(np.array([0.0, np.nan]), mode)
    with pytest.raises(InputError, match="unknown normalisation"):
        normalize(zero, "zscore")


@pytest.mark.parametrize("name", sorted(NEUTRAL))
def test_signed_cmaps_zero_is_neutral_and_sign_is_kept(name: str) -> None:
    R = np.array([[0.0, 1.0, -1.0, 0.3, -0.3]])
    rgb = heatmap_rgb(R, cmap=name).astype(int)
    assert rgb.shape == (1, 5, 3) and heatmap_rgb(R, cmap=name).dtype == np.uint8
    assert tuple(rgb[0, 0]) == NEUTRAL[name]
    assert tuple(heatmap_rgb(np.zeros((2, 2)), cmap=name)[1, 1]) == NEUTRAL[name]
    # positive: more red than blue; negative: more blue than red; mirror magnitudes differ from 0
    for pos, neg in ((1, 2), (3, 4)):
        assert rgb[0, pos, 0] > rgb[0, pos, 2] and rgb[0, neg, 2] > rgb[0, neg, 0]
        assert tuple(rgb[0, pos]) != NEUTRAL[name] and tuple(rgb[0, neg]) != NEUTRAL[name]
    # symmetric around zero: R and -R give the colours at mirrored positions of the table
    cm = get_cmap(name)
    assert cm.N % 2 == 1
    np.testing.assert_allclose(cm(cm.N // 2)[:3], np.array(NEUTRAL[name]) / 255.0)
    assert tuple(rgb[0, 1]) == tuple(np.rint(np.array(cm(cm.N - 1)[:3]) * 255).astype(int))
    assert tuple(rgb[0, 2]) == tuple(np.rint(np.array(cm(0)[:3]) * 255).astype(int))


def test_study_map_is_red_green_blue() -> None:
    rgb = heatmap_rgb(np.array([[1.0, 0.0, -1.0]]), cmap="study")
    assert rgb[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_sequential_gradcam_map() -> None:
    R = np.array([[0.0, 0.5, 1.0]])
    rgb = heatmap_rgb(R, cmap="gradcam", norm="minmax").astype(int)
    inferno = get_cmap("inferno")
    assert tuple(rgb[0, 0]) == tuple(np.rint(np.array(inferno(0)[:3]) * 255).astype(int))
    assert rgb[0].sum(1).tolist() == sorted(rgb[0].sum(1).tolist())  # brighter with the value
    assert rgb[0, 0].sum() < 30 and rgb[0, 2].sum() > 500  # black-ish to yellow-white
    # constant map (e.g. ReLU killed everything) works and shows the low end
    assert (heatmap_rgb(np.full((3, 3), 2.0), "gradcam", "minmax") == rgb[0, 0]).all()
    with pytest.raises(InputError, match="unknown colour map"):
        get_cmap("no-such-map")


def test_heatmap_accepts_tensors_and_rejects_bad_shapes() -> None:
    t = torch.tensor([[[0.0, -1.0], [1.0, 0.5]]])  # (1, H, W)
    np.testing.assert_array_equal(heatmap_rgb(t), heatmap_rgb(t[0].numpy()))
    with pytest.raises(InputError, match=r"R.sum\(0\)"):
        heatmap_rgb(np.zeros((3, 4, 4)))
    with pytest.raises(InputError, match="NaN"):
        heatmap_rgb(np.array([[np.inf]]))


@pytest.mark.parametrize("kind", ["gray_float", "gray_uint8", "rgb_uint8", "rgb_float255", "rgba_opaque", "gray_uint16"])
def test_overlay_backgrounds(kind: str) -> None:
    gray = RNG.random((6, 7))
    bg = {
        "gray_float": gray,
        "gray_uint8": np.rint(gray * 255).astype(np.uint8),
        "rgb_uint8": np.rint(np.stack([gray] * 3, -1) * 255).astype(np.uint8),
        "rgb_float255": np.stack([gray] * 3, -1) * 255.0,
        "rgba_opaque": np.concatenate([np.rint(np.stack([gray] * 3, -1) * 255), np.full((6, 7, 1), 255)], -1).astype(np.uint8),
        "gray_uint16": np.rint(gray * 4095).astype(np.uint16),  # 12-bit radiograph: min-max scaled
    }[kind]
    R = RNG.standard_normal((6, 7))
    out = overlay(R, bg, alpha=0.4)
    assert out.shape == (6, 7, 3) and out.dtype == np.uint8
    base = gray if kind != "gray_uint16" else (bg - bg.min()) / (bg.max() - bg.min())
    expected = 0.6 * np.stack([base] * 3, -1) + 0.4 * heatmap_rgb(R) / 255.0
    assert np.abs(out.astype(float) - np.rint(expected * 255)).max() <= 1.0
    np.testing.assert_array_equal(overlay(R, bg, alpha=1.0), heatmap_rgb(R))
    assert np.abs(overlay(R, bg, alpha=0.0).astype(float) - np.stack([base] * 3, -1) * 255).max() <= 1.0


def test_overlay_rgba_transparency_resize_and_errors() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200  # fully transparent: composited over black
    zero = np.zeros((4, 4))
    np.testing.assert_array_equal(overlay(zero, rgba, alpha=0.0), np.zeros((4, 4, 3), np.uint8))
    # a map at half the background's size is resized (bilinear) to it
    R = np.array([[1.0, -1.0], [0.0, 0.5]])
    out = overlay(R, np.zeros((8, 8)), alpha=1.0)
    assert out.shape == (8, 8, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 7]) == (0, 0, 255)
    with pytest.raises(InputError, match="alpha"):
        overlay(R, np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(InputError, match="background"):
        overlay(R, np.zeros((2, 2, 2)))


def test_save_heatmap_png_exact_size_and_npy(tmp_path) -> None:
    R = RNG.standard_normal((10, 12)).astype(np.float32)
    png = save_heatmap(tmp_path / "sub" / "map.png", R, cmap="seismic", size=(120, 100))
    assert png == tmp_path / "sub" / "map.png"
    img = np.asarray(Image.open(png))
    assert img.shape == (100, 120, 3)
    np.testing.assert_array_equal(img[::10, ::10], heatmap_rgb(R, "seismic"))  # nearest upscaling
    raw = np.load(tmp_path / "sub" / "map.npy")
    assert raw.dtype == np.float32 and np.array_equal(raw, R)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["map.npy", "map.png"]  # no temporaries
    bg = np.asarray(Image.open(png).convert("L"))
    over = save_heatmap(tmp_path / "over", R, background=bg, alpha=0.3)
    assert over.suffix == ".png" and np.asarray(Image.open(over)).shape == (100, 120, 3)
    bf16 = torch.randn(4, 4).to(torch.bfloat16)  # numpy has no bfloat16: the raw file is float32
    save_heatmap(tmp_path / "bf16.png", bf16)
    assert np.array_equal(np.load(tmp_path / "bf16.npy"), bf16.float().numpy())
    with pytest.raises(InputError, match="PNG"):
        save_heatmap(tmp_path / "map.jpg", R)
    with pytest.raises(InputError, match="size"):
        save_heatmap(tmp_path / "bad.png", R, size=(0, 10))


def test_save_grid(tmp_path) -> None:
    maps = RNG.standard_normal((2, 3, 8, 8))
    maps[1] *= 100.0  # the second row has a much larger scale
    png = save_grid(tmp_path / "grid.png", maps, ["LRP", "Grad-CAM"], ["a", "b", "c"], title="t", cell_size=1.0)
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
    assert np.array_equal(np.load(tmp_path / "grid.npy"), maps)
    shared = np.asarray(Image.open(save_grid(tmp_path / "shared.png", maps, shared_scale=True, cell_size=1.0)))
    cells = np.asarray(Image.open(save_grid(tmp_path / "cells.png", maps, cell_size=1.0)))
    per_row = np.asarray(Image.open(save_grid(tmp_path / "row.png", maps, shared_scale="row", cell_size=1.0)))
    assert shared.shape == cells.shape and not np.array_equal(shared, cells)
    assert not np.array_equal(per_row, cells) and not np.array_equal(per_row, shared)
    # with the whole-grid scale, the small first row is almost neutral (white for bwr)
    h = shared.shape[0]
    assert shared[: h // 2].mean() > cells[: h // 2].mean()
    bgs = RNG.random((2, 8, 8))
    save_grid(tmp_path / "bg.png", maps, backgrounds=bgs, cmap="study")
    save_grid(tmp_path / "bg2.png", maps, backgrounds=RNG.random((2, 3, 16, 16)), norm="minmax", cmap="gradcam")
    with pytest.raises(InputError, match="row_labels"):
        save_grid(tmp_path / "x.png", maps, row_labels=["one"])
    with pytest.raises(InputError, match="shape"):
        save_grid(tmp_path / "x.png", maps[0])
    with pytest.raises(InputError, match="backgrounds"):
        save_grid(tmp_path / "x.png", maps, backgrounds=RNG.random((5, 8, 8)))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("src,dst", [((7, 5), (32, 20)), ((64, 64), (224, 224)), ((30, 17), (8, 5)),
                                     ((1, 4), (3, 9)), ((9, 9), (9, 4))])
def test_map_resize_equals_torch_bilinear(src, dst) -> None:
    import torch
    import torch.nn.functional as F

    from chexplain.viz.render import _resize

    R = np.random.default_rng(0).normal(size=src)
    want = F.interpolate(torch.from_numpy(R)[None, None], size=dst, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(_resize(R, dst), want.numpy(), rtol=1e-12, atol=1e-12)
