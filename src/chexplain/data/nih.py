"""NIH ChestX-ray14 (Wang et al., CVPR 2017) as Datasets; its labels, tables and boxes are read
by :mod:`chexplain.data.nih_tables`. Boxes are rescaled to each image's actual size and carried
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
from .images import IMAGENET, Normalization, Preprocess, get_normalization, read_image
from .nih_tables import (NIH_LABELS, NIH_TO_CHEXPERT, NO_FINDING, box_masks, nih_targets, read_nih_boxes,
                         read_nih_entries)

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
