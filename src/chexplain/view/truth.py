"""The ground truth beside an input image, when it is known: the phantom's finding masks (the
``*_masks`` folder next to the image) or NIH ChestX-ray14's radiologist boxes
(``BBox_List_2017.csv`` in the folder holding ``images/``, Wang et al. 2017)."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.masks import mask_dir
from ..data.nih_tables import NIH_TO_CHEXPERT, box_masks, read_nih_boxes
from ..errors import DataError
from ..io import slug

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _boxes(csv: Path, mtime_ns: int) -> dict:
    """The box table of ``csv`` grouped by image name (read once per file version)."""
    return {name: rows for name, rows in read_nih_boxes(csv).groupby("image")}


def nih_boxes(image: Path, cls: str):
    """The radiologist boxes of ``cls`` on ``image`` (rows of :func:`read_nih_boxes`; a box
    counts when its NIH label is ``cls`` or maps to it, e.g. Effusion → Pleural Effusion), or
    None when no box table lies beside the image or it has none for that class."""
    root = image.parent.parent if image.parent.name == "images" else image.parent
    tables = sorted(root.glob("BBox_List_2017.csv*"))
    if not tables:
        return None
    try:
        with _lock:
            grouped = _boxes(tables[0], tables[0].stat().st_mtime_ns)
    except (OSError, DataError):
        return None
    rows = grouped.get(image.name)
    if rows is None:
        return None
    rows = rows[[label == cls or NIH_TO_CHEXPERT.get(label) == cls for label in rows["label"]]]
    return rows if len(rows) else None


def has_truth(image: Path | None, cls: str) -> bool:
    if image is None:
        return False
    return (mask_dir(image) / f"{slug(cls)}.png").is_file() or nih_boxes(image, cls) is not None


def finding_mask(image: Path | None, cls: str, size: tuple[int, int]) -> np.ndarray | None:
    """The finding of ``cls`` on ``image`` as a boolean mask: the phantom's mask at its own
    resolution, or the NIH boxes drawn at ``size`` (H, W: the image as displayed, whose aspect
    is the image's own); None when unknown."""
    if image is None:
        return None
    path = mask_dir(image) / f"{slug(cls)}.png"
    if path.is_file():
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("L")) > 127
    rows = nih_boxes(image, cls)
    if rows is None:
        return None
    return box_masks(rows, *size).any(0)
