"""Locating CheXpert CSVs and images, and the train / validation datasets of a training run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data.chexpert import CheXpertDataset, filter_views, patient_split, read_chexpert_csv
from ..errors import DataError


def resolve_csv(csv: str | os.PathLike, data: str | os.PathLike | None) -> Path:
    """``csv`` as given, or relative to the data folder ``data`` when only found there."""
    path = Path(csv)
    if path.is_file() or data is None or path.is_absolute():
        return path
    inside = Path(data) / path
    return inside if inside.is_file() else path


def resolve_root(data: str | os.PathLike | None, first_path: str) -> Path | None:
    """The folder the CSV's Paths are relative to. CheXpert's Paths start with the data set's
    folder (``CheXpert-v1.0-small/train/...``), so ``--data`` may name that folder or its
    parent; None keeps the dataset's default (derived from the CSV's place)."""
    if data is None:
        return None
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    first = Path(first_path)
    if not (root / first).is_file() and first.parts and first.parts[0] == root.name \
            and (root.parent / first).is_file():
        return root.parent
    return root


def build_datasets(config: Any) -> tuple[CheXpertDataset, CheXpertDataset, str]:
    """(train, validation, how validation was chosen) for a :class:`ChexpertTrainConfig`."""
    view = "Frontal" if config.frontal_only else None
    train_csv = resolve_csv(config.csv, config.data)
    frame = filter_views(read_chexpert_csv(train_csv), frontal_lateral=view)
    if len(frame) == 0:
        raise DataError(f"{train_csv}: no rows left after filtering")
    root = resolve_root(config.data, frame["Path"].iloc[0])
    common = dict(policy=config.policy, frontal_lateral=view, size=config.image_size,
                  normalization="imagenet")
    if config.valid:
        valid_csv = resolve_csv(config.valid, config.data)
        train = CheXpertDataset(train_csv, root, **common)
        vframe = read_chexpert_csv(valid_csv)
        vroot = resolve_root(config.data, vframe["Path"].iloc[0])
        val = CheXpertDataset(valid_csv, vroot, **common)
        how = f"validation CSV {valid_csv}"
    else:
        train_idx, val_idx = patient_split(frame, config.val_fraction, config.seed)
        train = CheXpertDataset(train_csv, root, indices=train_idx, **common)
        val = CheXpertDataset(train_csv, root, indices=val_idx, **common)
        how = f"patient split of {train_csv.name}: {config.val_fraction:g} of patients, seed {config.seed}"
    return train, val, how
