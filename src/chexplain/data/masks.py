"""Where the phantom's finding and shortcut masks are: one PNG per mask beside each image.

The names are the findings the phantom draws (CheXpert observations) and the shortcuts'
(:data:`SHORTCUT_MASKS`); the images' loader (:mod:`chexplain.data.chexpert`), the phantom
(:mod:`chexplain.data.phantom`) and the audit read them through this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

#: shortcut kind -> the name of its mask (:mod:`chexplain.data.shortcuts`)
SHORTCUT_MASKS = {"text": "marker", "laterality": "laterality", "drain": "drain", "site": "site"}
#: Findings the phantom draws, named by their CheXpert observation.
FINDINGS: tuple[str, ...] = ("Pleural Effusion", "Pneumothorax", "Cardiomegaly", "Lung Lesion",
                             "Support Devices")
MARKER = "marker"
#: The findings' masks, then the shortcuts'.
MASK_NAMES: tuple[str, ...] = FINDINGS + tuple(SHORTCUT_MASKS.values())
_SLUGS = {name: name.lower().replace(" ", "_") for name in MASK_NAMES}


def mask_dir(image_path: str | os.PathLike) -> Path:
    """Folder of an image's masks: ``view1_frontal.jpg`` → ``view1_frontal_masks/``."""
    p = Path(image_path)
    return p.with_name(p.stem + "_masks")


def mask_filename(name: str) -> str:
    """The file name of ``name``'s mask (a :data:`MASK_NAMES` entry): ``pleural_effusion.png``."""
    if name not in _SLUGS:
        raise DataError(f"unknown mask {name!r}; choose from {', '.join(MASK_NAMES)}")
    return f"{_SLUGS[name]}.png"


def mask_file(image_path: str | os.PathLike, name: str) -> Path:
    """The PNG holding ``name``'s mask (a :data:`MASK_NAMES` entry) for an image."""
    return mask_dir(image_path) / mask_filename(name)


def read_finding_masks(image_path: str | os.PathLike,
                       shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The masks written beside an image, by :data:`MASK_NAMES` name (absent ones left out)."""
    from .images import read_image

    out = {}
    for name in MASK_NAMES:
        path = mask_file(image_path, name)
        if path.is_file():
            m = read_image(path) > 0.5
            if shape is not None and m.shape != tuple(shape):
                raise DataError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, image is "
                                f"{shape[1]}x{shape[0]}")
            out[name] = m
    return out
