"""Planted shortcuts of the phantom: artefacts whose presence correlates with a label.

Chest-radiograph classifiers learn such shortcuts (Zech et al. 2018: hospital tokens and
laterality markers; Oakden-Rayner et al. 2020: chest drains standing in for pneumothorax;
DeGrave et al. 2021: borders and text). A :class:`Confounder` draws one of them with
probability ``p_positive`` on images positive for ``observation`` and ``p_negative`` on the
others; each kind has its own mask (the pixels its drawing set):

- ``"text"`` (mask ``marker``): a word (``text``, default ``PORTABLE``) in a top corner, in
  Pillow's bitmap font at ~7 % of the height (today's ``--confounder``);
- ``"laterality"`` (mask ``laterality``): an ``L`` or ``R`` on a bright tag in one of the
  four corners (random corner and letter);
- ``"drain"`` (mask ``drain``): a chest-drain-like tube entering through the lateral chest
  wall low on one side and curving up into that lung's apex (on the side of a pneumothorax
  when there is one), with a radiopaque stripe; meant for ``Pneumothorax``;
- ``"site"`` (mask ``site``): another hospital's acquisition style: black collimation
  padding around the image (5–8 % of the side; the mask) and a brighter, lower-contrast
  exposure of the whole image (not in the mask).

The presence and placement come from a random generator of their own (seed, index, kind),
so adding a shortcut never changes the rest of the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import DataError
from .masks import FINDINGS, SHORTCUT_MASKS

KINDS = tuple(SHORTCUT_MASKS)
_KIND_SEED = {k: 0x5C0 + i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Confounder:
    """A shortcut of ``kind`` drawn with probability ``p_positive`` on images positive for
    ``observation`` and ``p_negative`` on the others (``text``: the words of a ``text``
    marker)."""

    observation: str = "Pleural Effusion"
    p_positive: float = 0.9
    p_negative: float = 0.1
    text: str = "PORTABLE"
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.observation not in FINDINGS:
            raise DataError(f"confounder observation {self.observation!r} is not one of the "
                            f"phantom's findings: {', '.join(FINDINGS)}")
        for p in (self.p_positive, self.p_negative):
            if not 0.0 <= p <= 1.0:
                raise DataError(f"confounder probability {p} must be in [0, 1]")
        if self.kind not in KINDS:
            raise DataError(f"unknown confounder kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "text" and not self.text.strip():
            raise DataError("confounder text must not be empty")

    @property
    def mask_name(self) -> str:
        return SHORTCUT_MASKS[self.kind]


def as_confounders(confounder: Confounder | Sequence[Confounder] | None) -> tuple[Confounder, ...]:
    """None, one :class:`Confounder` or several (at most one per kind) as a tuple."""
    if confounder is None:
        return ()
    items = (confounder,) if isinstance(confounder, Confounder) else tuple(confounder)
    kinds = [c.kind for c in items]
    if len(set(kinds)) != len(kinds):
        raise DataError(f"at most one confounder per kind, got kinds {', '.join(kinds)}")
    return items


def bitmap_text(text: str, height: int) -> np.ndarray:
    """``text`` in Pillow's built-in bitmap font (bool), scaled by an integer to ~``height``."""
    font = ImageFont.load_default_imagefont()
    x0, y0, x1, y1 = font.getbbox(text)
    small = Image.new("L", (x1 - x0 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(small).text((1 - x0, 1 - y0), text, fill=255, font=font)
    scale = max(1, int(round(height / small.height)))
    big = small.resize((small.width * scale, small.height * scale), Image.NEAREST)
    return np.asarray(big) > 0


def text_marker(h: int, w: int, text: str, u: np.ndarray) -> np.ndarray:
    """``text`` at ~7 % of the height in a top corner (``u``: 2 uniforms, corner and height)."""
    big = bitmap_text(text, 0.07 * h)
    bh, bw = min(big.shape[0], h - 2), min(big.shape[1], w - 2)
    left = int(0.03 * w) if u[0] < 0.5 else w - bw - int(0.03 * w)
    top = int((0.02 + 0.04 * u[1]) * h)
    mask = np.zeros((h, w), dtype=bool)
    mask[top:top + bh, left:left + bw] = big[:bh, :bw]
    return mask


def laterality_tag(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(tag mask, letter mask): a bright square tag with a dark ``L`` or ``R`` in a corner."""
    letter = bitmap_text("L" if rng.random() < 0.5 else "R", 0.07 * h)
    pad = max(1, int(round(0.01 * min(h, w))))
    th, tw = min(letter.shape[0] + 2 * pad, h // 3), min(letter.shape[1] + 2 * pad, w // 3)
    inset = int(round(rng.uniform(0.02, 0.05) * min(h, w)))
    corner = int(rng.integers(4))
    top = inset if corner < 2 else h - th - inset
    left = inset if corner % 2 == 0 else w - tw - inset
    tag = np.zeros((h, w), dtype=bool)
    tag[top:top + th, left:left + tw] = True
    glyph = np.zeros((h, w), dtype=bool)
    lh, lw = min(letter.shape[0], th - pad), min(letter.shape[1], tw - pad)
    glyph[top + pad:top + pad + lh, left + pad:left + pad + lw] = letter[:lh, :lw]
    return tag, glyph


def chest_drain(h: int, w: int, lung: tuple[float, float, float, float], side: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(tube mask, radiopaque stripe mask): a tube from the lateral chest wall, low on
    ``side`` (0: image left), curving up into the apex of ``lung`` = (cx, cy, a, b)."""
    cx, cy, a, b = lung
    lateral = 1 if side else -1
    p0 = (0.5 + lateral * rng.uniform(0.46, 0.5), cy + b * rng.uniform(0.35, 0.6))
    p1 = (cx + lateral * a * rng.uniform(0.6, 0.9), cy + b * rng.uniform(-0.1, 0.2))
    p2 = (cx + lateral * a * rng.uniform(-0.2, 0.3), cy - b * rng.uniform(0.6, 0.8))
    t = np.linspace(0, 1, 64)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)
    xy = [(px * w, py * h) for px, py in pts]
    width = max(2, int(round(min(h, w) / 40)))
    tube, stripe = Image.new("L", (w, h), 0), Image.new("L", (w, h), 0)
    ImageDraw.Draw(tube).line(xy, fill=255, width=width, joint="curve")
    ImageDraw.Draw(stripe).line(xy, fill=255, width=max(1, width // 3), joint="curve")
    stripe_mask = np.asarray(stripe) > 0
    return (np.asarray(tube) > 0) | stripe_mask, stripe_mask


def site_frame(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The collimation padding of the "site" style: a band 5–8 % of the side around the image."""
    band = max(1, int(round(rng.uniform(0.05, 0.08) * min(h, w))))
    frame = np.ones((h, w), dtype=bool)
    frame[band:h - band, band:w - band] = False
    return frame


def draw_shortcuts(img: np.ndarray, confounders: Sequence[Confounder], present: dict[str, bool],
                   seed: int, index: int, lungs: Sequence[tuple], ptx_side: int,
                   marker_u: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], list[np.ndarray]]:
    """Draw the shortcuts that fire on this sample before the acquisition variation.

    Returns (image, masks by name, frames to black out after the acquisition)."""
    h, w = img.shape
    masks: dict[str, np.ndarray] = {}
    frames = []
    for c in confounders:
        p = c.p_positive if present[c.observation] else c.p_negative
        if c.kind == "text":  # today's stream: marker_u comes from the sample's generator
            if marker_u[0] < p:
                masks[c.mask_name] = text_marker(h, w, c.text, marker_u[1:])
                img = np.where(masks[c.mask_name], np.float32(0.97), img)
            continue
        rng = np.random.default_rng([int(seed), int(index), _KIND_SEED[c.kind]])
        if not rng.random() < p:
            continue
        if c.kind == "laterality":
            tag, glyph = laterality_tag(h, w, rng)
            img = np.where(tag, np.float32(0.92), img)
            img = np.where(glyph, np.float32(0.15), img)
            masks[c.mask_name] = tag
        elif c.kind == "drain":
            side = ptx_side if present["Pneumothorax"] else int(rng.integers(2))
            tube, stripe = chest_drain(h, w, lungs[side][:4], side, rng)
            img = np.where(tube, np.maximum(img, np.float32(0.7)), img)
            img = np.where(stripe, np.float32(0.95), img)
            masks[c.mask_name] = tube
        else:  # site: a brighter, flatter exposure and black padding
            img = ((img - 0.5) * np.float32(0.8) + np.float32(0.58)).astype(np.float32)
            masks[c.mask_name] = site_frame(h, w, rng)
            frames.append(masks[c.mask_name])
    return img.astype(np.float32), masks, frames
