"""The study's batch augmentations: shift bounds, salt-and-pepper rate, value ranges."""

from __future__ import annotations

import torch

from chexplain.studies.mnist.augment import augment, encode, random_shift, salt_and_pepper


def _dot_images(n: int) -> torch.Tensor:
    x = torch.full((n, 1, 28, 28), -1.0)
    x[:, 0, 14, 14] = 1.0  # one bright pixel in the centre
    return x


def test_shift_bounds_and_coverage():
    g = torch.Generator().manual_seed(0)
    out = random_shift(_dot_images(4000), 4, fill=-1.0, generator=g)
    pos = (out[:, 0] == 1.0).flatten(1).float().argmax(1)
    rows, cols = pos // 28 - 14, pos % 28 - 14
    assert int(rows.abs().max()) == 4 and int(cols.abs().max()) == 4  # reaches, never exceeds +-4
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 81  # all 9 x 9 offsets occur
    assert ((out == 1.0).sum(dim=(1, 2, 3)) == 1).all()  # content moved, not duplicated or lost


def test_shift_moves_real_digit_and_fills_background(sample_mnist):
    x = encode(sample_mnist.train_images[:64], "pm1")
    out = random_shift(x, 4, -1.0, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    # digits whose ink keeps 4 px from the border lose nothing when shifted by up to 4 px
    inner = torch.zeros(28, 28, dtype=torch.bool)
    inner[4:24, 4:24] = True
    clear = (x[:, 0, ~inner] == -1).all(dim=1)
    assert clear.sum() >= 16
    assert torch.allclose(out[clear].sum(dim=(1, 2, 3)), x[clear].sum(dim=(1, 2, 3)), atol=1e-3)
    assert not torch.equal(out, x)


def test_salt_and_pepper_rate():
    x = torch.zeros(200, 1, 28, 28)
    out = salt_and_pepper(x, 0.1, -1.0, 1.0, torch.Generator().manual_seed(0))
    salt, pepper = (out == 1).float().mean().item(), (out == -1).float().mean().item()
    assert abs(salt - 0.05) < 0.003 and abs(pepper - 0.05) < 0.003
    assert set(out.unique().tolist()) == {-1.0, 0.0, 1.0}


def test_experiment_two_range_and_determinism(sample_mnist):
    x = encode(sample_mnist.train_images[:100], "pm1")
    assert x.min() == -1 and x.max() == 1
    a = augment(x, "shift-saltpepper", torch.Generator().manual_seed(3))
    b = augment(x, "shift-saltpepper", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, x)


def test_experiment_one_zero_mean_and_noise(sample_mnist):
    imgs = sample_mnist.train_images
    mean = float(imgs.float().mean() / 255)
    x = encode(imgs, "zero-mean", mean)
    assert abs(float(x.mean())) < 1e-5
    noisy = augment(x, "gaussian", torch.Generator().manual_seed(0), noise_std=0.1)
    assert abs(float((noisy - x).std()) - 0.1) < 0.002
