"""NIH ChestX-ray14 (Wang et al., CVPR 2017) without PyTorch: its labels, its tables, its
radiologist boxes and its folder layout (the viewer reads the boxes from here; the Datasets are
in :mod:`chexplain.data.nih`).

``Data_Entry_2017*.csv`` gives each image's findings separated by ``|`` (or ``No Finding``);
``BBox_List_2017.csv`` gives 984 radiologist boxes (x, y, w, h) in the 1024×1024 frame in
which NIH released the images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .images import Preprocess, box_mask
from .tables import read_csv_strict

#: The 14 ChestX-ray14 labels, in the order of Wang et al. 2017.
NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
#: The frame of the BBox CSV's coordinates.
BOX_FRAME = 1024
_BOX_ALIASES = {"Infiltrate": "Infiltration"}  # BBox_List_2017 spells it differently
#: ChestX-ray14 labels → the CheXpert observation (Irvin et al. 2019) that a CheXpert-trained
#: model predicts for them: CheXpert's labeller counts nodules and masses as Lung Lesion,
#: infiltrates as Lung Opacity and pleural thickening as Pleural Other. Emphysema, Fibrosis and
#: Hernia have no CheXpert counterpart.
NIH_TO_CHEXPERT: dict[str, str] = {
    "Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Pleural Effusion",
    "Infiltration": "Lung Opacity", "Mass": "Lung Lesion", "Nodule": "Lung Lesion",
    "Pneumonia": "Pneumonia", "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation",
    "Edema": "Edema", "Pleural_Thickening": "Pleural Other", NO_FINDING: NO_FINDING,
}


def read_nih_entries(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``Data_Entry_2017*.csv``; every label must be one of :data:`NIH_LABELS` or
    ``No Finding`` (alone)."""
    path = Path(path)
    df = read_csv_strict(path)
    for col in ("Image Index", "Finding Labels"):
        if col not in df:
            raise DataError(f"{path}: missing column {col!r} (not a Data_Entry_2017 CSV?)")
    if len(df) == 0:
        raise DataError(f"{path}: CSV has a header but no rows")
    known = set(NIH_LABELS)
    for i, text in enumerate(df["Finding Labels"]):
        labels = [s.strip() for s in text.split("|")]
        if labels == [NO_FINDING]:
            continue
        bad = [s for s in labels if s not in known]
        if bad:
            raise DataError(f"{path}: line {i + 2}: unknown finding label {bad[0]!r} in "
                            f"{text!r}")
    return df.reset_index(drop=True)


def nih_targets(entries: pd.DataFrame) -> np.ndarray:
    """N×14 float32 multi-hot targets in :data:`NIH_LABELS` order."""
    out = np.zeros((len(entries), len(NIH_LABELS)), dtype=np.float32)
    index = {name: k for k, name in enumerate(NIH_LABELS)}
    for i, text in enumerate(entries["Finding Labels"]):
        for s in text.split("|"):
            k = index.get(s.strip())
            if k is not None:
                out[i, k] = 1.0
    return out


def read_nih_boxes(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``BBox_List_2017.csv`` into columns image, label, x, y, w, h (1024 frame)."""
    path = Path(path)
    df = read_csv_strict(path)
    if df.shape[1] < 6 or list(df.columns[:2]) != ["Image Index", "Finding Label"]:
        raise DataError(f"{path}: expected columns 'Image Index', 'Finding Label', x, y, w, h "
                        "(not a BBox_List_2017 CSV?)")
    out = pd.DataFrame({"image": df.iloc[:, 0].str.strip(),
                        "label": df.iloc[:, 1].str.strip().replace(_BOX_ALIASES)})
    bad = np.flatnonzero(~out["label"].isin(NIH_LABELS).to_numpy())
    if len(bad):
        raise DataError(f"{path}: line {bad[0] + 2}: unknown finding label "
                        f"{df.iloc[bad[0], 1]!r}")
    for k, name in enumerate("xywh"):
        values = pd.to_numeric(df.iloc[:, 2 + k].str.strip(), errors="coerce").to_numpy()
        wrong = ~np.isfinite(values) | ((values <= 0) if name in "wh" else (values < -1))
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise DataError(f"{path}: line {i + 2}: invalid box {name} "
                            f"{df.iloc[i, 2 + k]!r}")
        out[name] = values
    return out


def box_masks(boxes: pd.DataFrame, height: int, width: int,
              preprocess: Preprocess | None = None) -> np.ndarray:
    """14×H'×W' bool masks (:data:`NIH_LABELS` order) of one image's boxes.

    ``boxes`` are rows of :func:`read_nih_boxes` in the 1024 frame; ``height``×``width`` is
    the image's actual size. Without ``preprocess`` the masks are in the image's own pixels;
    with it, in the resized and cropped model input.
    """
    sx, sy = width / BOX_FRAME, height / BOX_FRAME
    if preprocess is None:
        out_h, out_w = height, width
        place = lambda x, y, w, h: (x, y, w, h)  # noqa: E731
    else:
        g = preprocess.geometry(height, width)
        out_h, out_w, place = g.out_height, g.out_width, g.box
    masks = np.zeros((len(NIH_LABELS), out_h, out_w), dtype=bool)
    for row in boxes.itertuples(index=False):
        k = NIH_LABELS.index(row.label)
        box = place(row.x * sx, row.y * sy, row.w * sx, row.h * sy)
        masks[k] |= box_mask([box], out_h, out_w)
    return masks


def nih_folder(root: str | os.PathLike) -> tuple[Path, Path, Path | None]:
    """(images folder, Data_Entry CSV, BBox CSV or None) of a ChestX-ray14 folder laid out as
    NIH ships it: ``images/``, ``Data_Entry_2017*.csv[.gz]``, ``BBox_List_2017.csv[.gz]``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: NIH folder not found")
    images = root / "images" if (root / "images").is_dir() else root
    entries = sorted(root.glob("Data_Entry_2017*.csv*"))
    if not entries:
        raise DataError(f"{root}: no Data_Entry_2017*.csv(.gz) with the image labels")
    boxes = sorted(root.glob("BBox_List_2017.csv*"))
    return images, entries[-1], boxes[0] if boxes else None
