"""Synthetic chest radiographs with known findings and their pixel masks.

Each image holds a body outline, two lung fields with vascular markings, ribs, spine, heart
and diaphragm, then random contrast, gamma and noise. Findings are placed at random but known
places, each with the mask of every pixel its drawing changed:

- ``Pleural Effusion``: fluid filling one lung base under a meniscus;
- ``Pneumothorax``: a dark rim without lung markings at one lung's apex and lateral edge,
  bounded by a thin pleural line;
- ``Cardiomegaly``: a heart 30–50 % wider (the mask is the whole enlarged heart);
- ``Lung Lesion``: a round nodule (6–10 % of the image width) in a lung field;
- ``Support Devices``: a wire or line from the shoulder to the mediastinum.

Optional confounders (:class:`~chexplain.data.shortcuts.Confounder`, one or several kinds)
plant shortcuts whose presence correlates with a label, for shortcut-learning studies: a text
marker (mask ``marker``), a laterality marker in a corner (``laterality``), a chest-drain-like
tube (``drain``) and a site-dependent border and exposure style (``site``); see
:mod:`chexplain.data.shortcuts`. Sample ``i`` of seed ``s`` depends only on (s, i, size,
options): the same seed gives the same bytes.
:func:`write_phantom` writes a CheXpert-layout folder that
:class:`chexplain.data.chexpert.CheXpertDataset` reads unchanged (``masks=True`` adds the
finding masks found by :func:`read_finding_masks`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DataError
from ..io import atomic_path, write_json, write_text
from .chexpert import COLUMNS, OBSERVATIONS
from .masks import (FINDINGS, MARKER, MASK_NAMES, mask_dir, mask_file, mask_filename,
                    read_finding_masks)
from .shortcuts import Confounder, as_confounders, draw_shortcuts

__all__ = ["FINDINGS", "MARKER", "MASK_NAMES", "Confounder", "Phantom", "PhantomSample",
           "phantom_sample", "iter_phantom", "generate_phantom", "write_phantom",
           "read_finding_masks", "mask_dir", "mask_file"]

_PATHOLOGIES = FINDINGS[:4]  # any of these makes "No Finding" negative
DEFAULT_PREVALENCE = {"Pleural Effusion": 0.3, "Pneumothorax": 0.3, "Cardiomegaly": 0.3,
                      "Lung Lesion": 0.3, "Support Devices": 0.4}


@dataclass
class PhantomSample:
    image: np.ndarray  #: float32 H×W in [0, 1], multiples of 1/255
    labels: np.ndarray  #: float32 (14,) in OBSERVATIONS order; unsimulated ones are 0
    masks: dict[str, np.ndarray] = field(default_factory=dict)  #: bool H×W per drawn finding


@dataclass
class Phantom:
    images: np.ndarray  #: float32 N×H×W
    labels: np.ndarray  #: float32 N×14
    masks: np.ndarray  #: bool N×6×H×W in MASK_NAMES order (all False where not drawn)
    mask_names: tuple[str, ...] = MASK_NAMES


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if min(h, w) < 32 or h * w > 4096 * 4096:
        raise DataError(f"phantom size {h}x{w} must be at least 32 and at most 4096x4096")
    return int(h), int(w)


def _prevalence(prevalence: float | Mapping[str, float] | None) -> dict[str, float]:
    if prevalence is None:
        return dict(DEFAULT_PREVALENCE)
    if isinstance(prevalence, (int, float)):
        prevalence = {f: float(prevalence) for f in FINDINGS}
    unknown = set(prevalence) - set(FINDINGS)
    if unknown:
        raise DataError(f"unknown phantom finding {sorted(unknown)[0]!r}; "
                        f"choose from {', '.join(FINDINGS)}")
    out = {f: float(prevalence.get(f, 0.0)) for f in FINDINGS}
    if any(not 0.0 <= p <= 1.0 for p in out.values()):
        raise DataError("phantom prevalences must lie in [0, 1]")
    return out


def _ellipse(x, y, cx, cy, a, b, edge):
    """Soft ellipse: 1 inside, 0 outside, a smooth ramp ``edge`` (in radii) wide inside."""
    f = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return np.clip((1.0 - f) / edge, 0.0, 1.0, dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))


def phantom_sample(size: int | tuple[int, int] = 224, seed: int = 0, index: int = 0,
                   prevalence: float | Mapping[str, float] | None = None,
                   confounder: Confounder | Sequence[Confounder] | None = None,
                   findings: Mapping[str, bool] | None = None) -> PhantomSample:
    """Draw sample ``index`` of the phantom set ``seed``.

    ``findings`` overrides the random presence of listed findings while keeping every other
    random choice (placement, anatomy, noise) the same, so that two calls differ only by
    those findings' drawings.
    """
    h, w = _size(size)
    prev = _prevalence(prevalence)
    rng = np.random.default_rng([int(seed), int(index), 0x5EED])
    present = {f: bool(rng.random() < prev[f]) for f in FINDINGS}
    if findings:
        _prevalence({k: 0.0 for k in findings})  # validates the names
        present.update({k: bool(v) for k, v in findings.items()})
    s = min(h, w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = (x + 0.5) / w, (y + 0.5) / h

    # ------------------------------------------------------------------ anatomy
    body_a, body_b, body_cy = rng.uniform(0.40, 0.47), rng.uniform(0.55, 0.65), rng.uniform(0.52, 0.6)
    body = _ellipse(x, y, 0.5, body_cy, body_a, body_b, 0.04)
    img = 0.03 + 0.42 * body
    lungs, lung_hard = [], []
    for side in (-1, 1):  # image left = patient's right
        cx = 0.5 + side * rng.uniform(0.19, 0.22)
        a, b, cy = rng.uniform(0.14, 0.17), rng.uniform(0.30, 0.34), rng.uniform(0.42, 0.46)
        dome = cy + b * rng.uniform(0.55, 0.8) - 0.05 * np.cos((x - cx) / a * 1.4)
        ell = _ellipse(x, y, cx, cy, a, b, 0.12)
        below = np.clip((dome - y) * s / 3.0, 0.0, 1.0)
        lungs.append((cx, cy, a, b, ell * below))
        lung_hard.append((ell * below) > 0)
    lung = np.maximum(lungs[0][4], lungs[1][4])
    markings = (0.7 * _smooth_noise(rng, h, w, 12) + 0.3 * _smooth_noise(rng, h, w, 28))
    hilum = np.exp(-((np.abs(x - 0.5) - 0.1) / 0.12) ** 2).astype(np.float32)
    markings = (0.035 + 0.03 * hilum) * np.abs(markings) * lung
    img = img - 0.30 * lung + markings
    rib_phase = (y - 0.12 - rng.uniform(0, 0.02) - 0.9 * (x - 0.5) ** 2) / rng.uniform(0.065, 0.08)
    ribs = np.clip((np.cos(2 * np.pi * rib_phase) - 0.55) / 0.45, 0, 1) * (rib_phase > 0)
    ribs *= (rib_phase < 9) * body * (np.abs(x - 0.5) > 0.04) * np.clip((0.86 - y) * s / 6, 0, 1)
    img = img + 0.10 * ribs.astype(np.float32)
    spine = np.clip(1 - np.abs(x - 0.5) / 0.045, 0, 1) * body
    img = img + (0.55 - img) * (0.8 * spine * (y > 0.08))
    heart_cx, heart_cy = rng.uniform(0.54, 0.57), rng.uniform(0.58, 0.62)
    heart_a, heart_b = rng.uniform(0.12, 0.14), rng.uniform(0.10, 0.12)
    grow = (rng.uniform(1.30, 1.50), rng.uniform(1.10, 1.25))
    heart_v = rng.uniform(0.55, 0.62)

    # ----------------------------------------------------------- finding parameters
    eff_side, eff_level = int(rng.integers(2)), rng.uniform(0.30, 0.45)
    ptx_side, ptx_shrink = int(rng.integers(2)), rng.uniform(0.70, 0.82)
    nod_r = max(2.0 / s, rng.uniform(0.03, 0.05))
    nod_u = rng.random(2)
    dev_side, dev_ctrl = int(rng.integers(2)), rng.uniform(0, 1, 6)
    marker_u = rng.random(3)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    contrast, bright, gamma = rng.uniform(0.85, 1.15), rng.uniform(-0.05, 0.05), rng.uniform(0.8, 1.25)
    sigma = rng.uniform(0.008, 0.025)

    masks: dict[str, np.ndarray] = {}
    # heart (enlarged under cardiomegaly): the mask is the whole drawn heart
    ga, gb = grow if present["Cardiomegaly"] else (1.0, 1.0)
    heart = _ellipse(x, y, heart_cx, heart_cy, heart_a * ga, heart_b * gb, 0.15)
    img = img + (heart_v - img) * heart
    if present["Cardiomegaly"]:
        masks["Cardiomegaly"] = heart > 0
    if present["Pleural Effusion"]:
        cx, cy, a, b, soft = lungs[eff_side]
        top = cy + b * (1 - 2 * eff_level) - 0.06 * np.abs(x - cx) / a * (np.sign(x - cx) ==
                                                                           (2 * eff_side - 1))
        wgt = soft * np.clip((y - top) * s / 4.0, 0, 1)
        img = img + (0.50 - img) * wgt
        masks["Pleural Effusion"] = wgt > 0
    if present["Pneumothorax"]:
        cx, cy, a, b, soft = lungs[ptx_side]
        lateral = 2 * ptx_side - 1
        icx, icy = cx - lateral * a * (1 - ptx_shrink), cy + b * (1 - ptx_shrink)
        ia, ib = a * ptx_shrink, b * ptx_shrink
        inner = _ellipse(x, y, icx, icy, ia, ib, 0.05)
        rim = soft * (1 - inner)
        radius = np.sqrt(((x - icx) / ia) ** 2 + ((y - icy) / ib) ** 2)
        line = np.clip(1 - np.abs(radius - 0.985) * min(ia * w, ib * h) / 1.2, 0, 1) * (soft > 0)
        img = img - rim * (markings + 0.05) + 0.12 * line
        masks["Pneumothorax"] = (rim > 0) | (line > 0)
    if present["Lung Lesion"]:
        cx, cy, a, b, soft = lungs[int(nod_u[0] < 0.5)]
        ys, xs = np.nonzero(soft * (1 - heart) > 0.9)
        k = int(nod_u[1] * len(ys)) if len(ys) else 0
        ny, nx = (float(ys[k] + 0.5) / h, float(xs[k] + 0.5) / w) if len(ys) else (cy, cx)
        d2 = ((x - nx) * w) ** 2 + ((y - ny) * h) ** 2
        bump = np.sqrt(np.clip(1 - d2 / (nod_r * s) ** 2, 0, 1))  # a sphere's projected thickness
        img = img + 0.25 * bump
        masks["Lung Lesion"] = bump > 0
    if present["Support Devices"]:
        masks["Support Devices"] = _device(h, w, dev_side, dev_ctrl)
        img = np.where(masks["Support Devices"], np.maximum(img, 0.9), img)
    frames: list[np.ndarray] = []
    if confounder is not None:
        img, drawn, frames = draw_shortcuts(img, as_confounders(confounder), present, seed, index,
                                            [lg[:4] for lg in lungs], ptx_side, marker_u)
        masks.update(drawn)
    # ------------------------------------------------------- acquisition variation
    assert img.dtype == np.float32  # a float64 path would round differently
    img = (img - 0.5) * contrast + 0.5 + bright + sigma * noise
    img = np.clip(img, 0.0, 1.0) ** gamma
    for frame in frames:  # burned in after the exposure: black padding
        img = np.where(frame, np.float32(0.0), img)
    image = (np.round(img * 255.0) / 255.0).astype(np.float32)
    labels = np.zeros(len(OBSERVATIONS), dtype=np.float32)
    for f in FINDINGS:
        labels[OBSERVATIONS.index(f)] = float(present[f])
    labels[OBSERVATIONS.index("No Finding")] = float(not any(present[f] for f in _PATHOLOGIES))
    return PhantomSample(image, labels, {k: masks[k] for k in MASK_NAMES if k in masks})


def _device(h: int, w: int, side: int, u: np.ndarray) -> np.ndarray:
    """A wire from one shoulder curving to the mediastinum (quadratic Bézier)."""
    lateral = 1 if side else -1
    p0 = (0.5 + lateral * (0.30 + 0.1 * u[0]), 0.12 + 0.1 * u[1])
    p2 = (0.5 + 0.06 * (u[2] - 0.5), 0.45 + 0.2 * u[3])
    p1 = (0.5 + lateral * (0.12 + 0.1 * u[4]), 0.15 + 0.15 * u[5])
    t = np.linspace(0, 1, 48)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)
    canvas = Image.new("L", (w, h), 0)
    width = max(1, int(round(min(h, w) / 110)))
    ImageDraw.Draw(canvas).line([(px * w, py * h) for px, py in pts], fill=255, width=width,
                                joint="curve")
    return np.asarray(canvas) > 0


def iter_phantom(n: int, size: int | tuple[int, int] = 224, seed: int = 0,
                 prevalence: float | Mapping[str, float] | None = None,
                 confounder: Confounder | Sequence[Confounder] | None = None) -> Iterator[PhantomSample]:
    """Samples 0..n-1 of the phantom set ``seed``, one at a time."""
    if n < 1:
        raise DataError(f"number of phantom images {n} must be at least 1")
    for i in range(n):
        yield phantom_sample(size, seed, i, prevalence, confounder)


def generate_phantom(n: int, size: int | tuple[int, int] = 224, seed: int = 0,
                     prevalence: float | Mapping[str, float] | None = None,
                     confounder: Confounder | Sequence[Confounder] | None = None) -> Phantom:
    """``n`` phantom images with labels (N×14, OBSERVATIONS order) and masks (N×6×H×W)."""
    h, w = _size(size)
    images = np.empty((n, h, w), dtype=np.float32)
    labels = np.empty((n, len(OBSERVATIONS)), dtype=np.float32)
    masks = np.zeros((n, len(MASK_NAMES), h, w), dtype=bool)
    for i, sample in enumerate(iter_phantom(n, size, seed, prevalence, confounder)):
        images[i], labels[i] = sample.image, sample.labels
        for name, m in sample.masks.items():
            masks[i, MASK_NAMES.index(name)] = m
    return Phantom(images, labels, masks)


# ------------------------------------------------------------------- CheXpert layout

def _csv_row(rel: str, sample: PhantomSample, rng: np.random.Generator) -> str:
    cells = [rel, "Female" if rng.random() < 0.5 else "Male", str(int(rng.integers(18, 91))),
             "Frontal", "AP" if rng.random() < 0.7 else "PA"]
    for k, name in enumerate(OBSERVATIONS):
        v = sample.labels[k]
        if name in FINDINGS:
            cells.append("1.0" if v else "0.0")
        elif name == "No Finding":
            cells.append("1.0" if v else "")
        else:
            cells.append("")
    return ",".join(cells)


def clear_phantom(out: str | os.PathLike) -> None:
    """Remove an older phantom under ``out`` (its split folders of images and masks, their CSVs
    and ``phantom.json``), so that no stale mask outlives its image; other files stay."""
    import shutil

    out = Path(out)
    if (out / "phantom.json").is_file():
        for split in ("train", "valid", "test"):
            shutil.rmtree(out / split, ignore_errors=True)
            (out / f"{split}.csv").unlink(missing_ok=True)
        (out / "phantom.json").unlink(missing_ok=True)


def write_phantom(out: str | os.PathLike, n: int, size: int | tuple[int, int] = 224,
                  seed: int = 0, prevalence: float | Mapping[str, float] | None = None,
                  confounder: Confounder | Sequence[Confounder] | None = None, quality: int = 95,
                  progress: bool = True, split: str = "train") -> Path:
    """Write ``n`` phantom images in CheXpert's layout under ``out``; returns the CSV path.

    ``split`` names the CSV and the image folder (``"test"`` for held-out sets: ``test.csv``,
    so that test labels are never called ``train.csv``).
    ``out/<split>.csv`` has CheXpert's columns with Paths ``<out name>/<split>/patientNNNNN/
    study1/view1_frontal.jpg`` (relative to ``out``'s parent, as CheXpert's are); the five
    simulated observations are 1.0/0.0, No Finding 1.0 or blank, the others blank. Masks
    are PNGs (0/255) in ``view1_frontal_masks/<finding>.png``; ``out/phantom.json`` records
    the options.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if not 1 <= quality <= 100:
        raise DataError(f"JPEG quality {quality} must be in 1..100")
    if split not in ("train", "valid", "test"):
        raise DataError(f"phantom split {split!r}: use train, valid or test")
    rows = [",".join(f'"{c}"' if "," in c else c for c in COLUMNS)]
    meta_rng = np.random.default_rng([int(seed), 0xC5F])
    samples = iter_phantom(n, size, seed, prevalence, confounder)
    for i, sample in enumerate(tqdm(samples, total=n, desc="phantom", unit="img",
                                    disable=not progress)):
        rel = f"{out.name}/{split}/patient{i + 1:05d}/study1/view1_frontal.jpg"
        path = out.parent / rel
        with atomic_path(path) as tmp:
            Image.fromarray(np.round(sample.image * 255).astype(np.uint8)).save(
                tmp, "JPEG", quality=quality)
        for name, m in sample.masks.items():
            with atomic_path(mask_file(path, name)) as tmp:
                Image.fromarray(m.astype(np.uint8) * 255).save(tmp, "PNG")
        rows.append(_csv_row(rel, sample, meta_rng))
    write_json(out / "phantom.json", {
        "n": n, "size": list(_size(size)), "seed": seed, "prevalence": _prevalence(prevalence),
        "confounder": [asdict(c) for c in as_confounders(confounder)] or None, "jpeg_quality": quality,
        "masks": {name: mask_filename(name) for name in MASK_NAMES}})
    return write_text(out / f"{split}.csv", "\n".join(rows) + "\n")


def phantom_folder(path: str | os.PathLike, levels: int = 6) -> Path | None:
    """The phantom set (folder with ``phantom.json``) that ``path`` lies in, else None."""
    p = Path(path).resolve()
    for parent in [p, *p.parents][:levels]:
        if (parent / "phantom.json").is_file():
            return parent
    return None


def trained_on_phantom(checkpoint: str | os.PathLike) -> Path | None:
    """The phantom set a chexplain checkpoint was trained on (from the run's ``config.json``
    beside it), or None when it was not, or when that cannot be told."""
    import json

    try:
        cfg = json.loads((Path(checkpoint).parent / "config.json").read_text())
    except (OSError, ValueError):
        return None
    csv = cfg.get("csv") if isinstance(cfg, dict) else None
    if not isinstance(csv, str) or not csv:
        return None
    known = (cfg.get("data_fingerprint") or {}).get("--csv") or {}
    csv = Path(known["path"]) if isinstance(known, dict) and isinstance(known.get("path"), str) else Path(csv)
    if not csv.is_absolute() and isinstance(cfg.get("data"), str) and cfg["data"]:
        csv = Path(cfg["data"]) / csv
    return phantom_folder(csv.parent if csv.suffix else csv, 2)
