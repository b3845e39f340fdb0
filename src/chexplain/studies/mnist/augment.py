"""Input coding and batch augmentations of Bach et al. 2015 (PLoS ONE e0130140), MNIST experiments.

All functions work on whole batches as vectorised torch ops, on whichever device the batch is,
and draw randomness only from the ``generator`` passed in (deterministic with a seed).
"""

from __future__ import annotations

import torch


def encode(images: torch.Tensor, inputs: str, mean: float = 0.0) -> torch.Tensor:
    """uint8 (N, 28, 28) images -> float (N, 1, 28, 28) network inputs.

    ``inputs="zero-mean"`` (experiment I): pixels/255 minus ``mean`` (the training set's mean
    pixel value, so the training inputs have zero mean); ``"pm1"`` (experiment II): [-1, 1].
    """
    x = images.float().unsqueeze(1) if images.ndim == 3 else images.float()
    if inputs == "zero-mean":
        return x / 255.0 - mean
    if inputs == "pm1":
        return x / 127.5 - 1.0
    raise ValueError(f"unknown input coding {inputs!r}")


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``std`` to every value (experiment I)."""
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def random_shift(x: torch.Tensor, max_shift: int, fill: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of (N, C, H, W) by its own random integer offset in [-max_shift, max_shift]
    along each axis (experiment II); pixels moved in from outside take the value ``fill``."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    s = int(max_shift)
    offsets = torch.randint(-s, s + 1, (2, n), generator=generator, device=x.device)
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=fill)
    rows = torch.arange(h, device=x.device).unsqueeze(0) + s - offsets[0].unsqueeze(1)  # (N, H)
    cols = torch.arange(w, device=x.device).unsqueeze(0) + s - offsets[1].unsqueeze(1)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def salt_and_pepper(
    x: torch.Tensor, rate: float, low: float, high: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Set a fraction ``rate`` of the values to ``low`` or ``high`` (half each) (experiment II)."""
    if rate <= 0:
        return x
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    out = torch.where(u < rate / 2, torch.full_like(x, low), x)
    return torch.where((u >= rate / 2) & (u < rate), torch.full_like(x, high), out)


def augment(
    x: torch.Tensor,
    kind: str,
    generator: torch.Generator | None = None,
    noise_std: float = 0.1,
    max_shift: int = 4,
    salt_pepper: float = 0.1,
) -> torch.Tensor:
    """The study's augmentation for one encoded batch.

    ``"gaussian"`` (experiment I): additive Gaussian noise; ``"shift-saltpepper"`` (experiment
    II, inputs in [-1, 1]): random shifts of up to ``max_shift`` px, then ``salt_pepper`` of
    the pixels set to -1 or 1; ``"none"``: unchanged.
    """
    if kind == "gaussian":
        return gaussian_noise(x, noise_std, generator)
    if kind == "shift-saltpepper":
        x = random_shift(x, max_shift, fill=-1.0, generator=generator)
        return salt_and_pepper(x, salt_pepper, -1.0, 1.0, generator)
    if kind == "none":
        return x
    raise ValueError(f"unknown augmentation {kind!r}")
