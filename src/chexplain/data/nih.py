"""NIH ChestX-ray14 (Wang et al., CVPR 2017): labels, bounding boxes and a Dataset.

``Data_Entry_2017*.csv`` gives each image's findings separated by ``|`` (or ``No Finding``);
``BBox_List_2017.csv`` gives 984 radiologist boxes (x, y, w, h) in the 1024×1024 frame in
which NIH released the images. Boxes are rescaled to each image's actual size and carried
through the same resize/crop as the image, so box masks align with the model input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import IMAGENET, Normalization, Preprocess, box_mask, get_normalization, read_image
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


class NIHDataset(Dataset):
    """ChestX-ray14 images with 14 targets and box masks for localisation metrics.

    Items are dicts: ``image`` (C×H×W normalised), ``target`` (14 floats), ``box_mask``
    (14×H×W bool, in model-input pixels), ``has_box`` (14 bools), ``index``, ``path``.
    ``missing="error"`` reports all entries without an image file at once; ``"skip"``
    keeps only the images present in ``images_dir`` (NIH ships the images in 12 parts).
    """

    def __init__(self, images_dir: str | os.PathLike, entries_csv: str | os.PathLike,
                 boxes_csv: str | os.PathLike | None = None, preprocess: Preprocess | None = None,
                 normalization: Normalization | str = IMAGENET, size: int = 224,
                 missing: str = "error", images: Sequence[str] | None = None) -> None:
        if missing not in ("error", "skip"):
            raise DataError(f"missing must be 'error' or 'skip', not {missing!r}")
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise DataError(f"{self.images_dir}: image folder not found")
        entries = read_nih_entries(entries_csv)
        if images is not None:
            wanted = set(images)
            entries = entries[entries["Image Index"].isin(wanted)]
        present = np.array([(self.images_dir / name).is_file() for name in entries["Image Index"]],
                           dtype=bool)
        if missing == "error" and not present.all():
            absent = entries["Image Index"][~present].tolist()
            raise DataError(f"{entries_csv}: {len(absent)} of {len(entries)} image files missing "
                            f"under {self.images_dir} (e.g. {', '.join(absent[:3])})")
        self.entries = entries[present].reset_index(drop=True)
        if len(self.entries) == 0:
            raise DataError(f"{self.images_dir}: none of the listed images is present")
        self.targets = nih_targets(self.entries)
        boxes = read_nih_boxes(boxes_csv) if boxes_csv is not None else None
        self.boxes = {} if boxes is None else {k: g for k, g in boxes.groupby("image")}
        self.preprocess = preprocess or Preprocess(size, None, get_normalization(normalization))

    @property
    def normalization(self) -> Normalization:
        return self.preprocess.normalization

    def __len__(self) -> int:
        return len(self.entries)

    def boxes_labels(self) -> list[str]:
        """The NIH labels with at least one box among this data set's images."""
        found = {label for name in self.entries["Image Index"] if name in self.boxes
                 for label in self.boxes[name]["label"]}
        return [name for name in NIH_LABELS if name in found]

    def __getitem__(self, index: int) -> dict:
        name = self.entries["Image Index"].iloc[index]
        path = self.images_dir / name
        img = read_image(path)
        boxes = self.boxes.get(name, pd.DataFrame(columns=["label", "x", "y", "w", "h"]))
        masks = box_masks(boxes, img.shape[0], img.shape[1], self.preprocess)
        return {
            "image": self.preprocess.normalization.apply(self.preprocess.image(img)),
            "target": torch.from_numpy(self.targets[index]),
            "box_mask": torch.from_numpy(masks),
            "has_box": torch.from_numpy(masks.any(axis=(1, 2))),
            "index": index,
            "path": str(path),
        }


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


class NIHAsObservations(Dataset):
    """An :class:`NIHDataset` in a model's label space: targets and box masks of the NIH labels
    that :data:`NIH_TO_CHEXPERT` maps to one observation are merged (a union); observations
    without an NIH counterpart stay negative with empty masks, and are not evaluated by default
    (``default_classes``: the observations NIH's boxes can localise)."""

    def __init__(self, base: NIHDataset, observations: Sequence[str]) -> None:
        self.base = base
        self.observations = list(observations)
        index = {name: k for k, name in enumerate(self.observations)}
        self._map = np.zeros((len(NIH_LABELS), len(self.observations)), dtype=np.float32)
        for k, label in enumerate(NIH_LABELS):
            if NIH_TO_CHEXPERT.get(label) in index:
                self._map[k, index[NIH_TO_CHEXPERT[label]]] = 1.0
        self.targets = (base.targets @ self._map > 0).astype(np.float32)
        if NO_FINDING in index:
            self.targets[:, index[NO_FINDING]] = base.targets.sum(1) == 0
        boxed = {NIH_TO_CHEXPERT.get(label) for label in base.boxes_labels()}
        self.default_classes = [c for c in self.observations if c in boxed]

    @property
    def normalization(self) -> Normalization:
        return self.base.normalization

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        masks = torch.einsum("khw,kc->chw", item["box_mask"].float(), torch.from_numpy(self._map)) > 0
        return item | {"target": torch.from_numpy(self.targets[index]), "box_mask": masks,
                       "has_box": masks.flatten(1).any(1)}
