"""Locating CheXpert CSVs and images, and the train / validation datasets of a training run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import file_sha256
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


def build_datasets(config: Any, normalization: Any = "imagenet"
                   ) -> tuple[CheXpertDataset, CheXpertDataset, str]:
    """(train, validation, how validation was chosen) for a :class:`ChexpertTrainConfig`;
    ``normalization``: the model's (a name or a Normalization)."""
    view = "Frontal" if config.frontal_only else None
    train_csv = resolve_csv(config.csv, config.data)
    frame = filter_views(read_chexpert_csv(train_csv), frontal_lateral=view)
    if len(frame) == 0:
        raise DataError(f"{train_csv}: no rows left after filtering")
    root = resolve_root(config.data, frame["Path"].iloc[0])
    common = dict(policy=config.policy, frontal_lateral=view, size=config.image_size,
                  normalization=normalization)
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


def data_fingerprint(config: Any, train: CheXpertDataset, val: CheXpertDataset) -> dict[str, Any]:
    """What a resumed run must find again, per option: ``--csv`` and ``--valid`` (resolved
    path, rows read, SHA-256 of the file) and ``--data`` (the image root folders)."""
    def csv_facts(path: Path, rows: int) -> dict[str, Any]:
        return {"path": str(path.resolve()), "rows": int(rows), "sha256": file_sha256(path)}

    train_csv = train.csv_path
    rows = len(train) + (0 if config.valid else len(val))
    out = {"--csv": csv_facts(train_csv, rows),
           "--valid": csv_facts(val.csv_path, len(val)) if config.valid else None,
           "--data": {"train_root": str(train.root.resolve()), "valid_root": str(val.root.resolve())}}
    return out


def fingerprint_mismatch(saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """A one-line description of the first option whose data differ, or None."""
    if not saved:
        return None
    for option in ("--csv", "--valid", "--data"):
        a, b = saved.get(option), now.get(option)
        if a == b:
            continue
        if a is None or b is None:
            return (f"{option}: the run was started {'without' if a is None else 'with'} it "
                    f"({'none' if a is None else a.get('path')}); now "
                    f"{'none' if b is None else b.get('path')}")
        for key, what in (("path", "file"), ("rows", "row count"), ("sha256", "contents (SHA-256)"),
                          ("train_root", "image folder"), ("valid_root", "validation image folder")):
            if a.get(key) != b.get(key):
                return f"{option}: its {what} changed ({a.get(key)} when started, now {b.get(key)})"
    return None
