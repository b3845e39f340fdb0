"""What an audit explains: a CheXpert-format CSV, a folder of images, or NIH ChestX-ray14.

:func:`open_source` returns an :class:`AuditSource`: a dataset of model inputs (plus, where
known, the explained classes' finding masks at 64 × 64: the phantom's mask PNGs of those
observations, NIH's boxes), one key per image (the CSV's ``Path``, the file's path, NIH's
``Image Index``), the labels (NaN where unknown) and the metadata (Sex, Age, AP/PA, and the
site when the CSV has a ``Site`` or ``Institution`` column). The phantom's shortcut masks (``marker``
...) are never read: an audit finds shortcuts from the relevance alone.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.images import Preprocess, read_image
from ..errors import ChexplainError
from ..io import file_sha256 as file_digest
from .store import text_digest

MAP_SIZE = 64  #: side of the stored finding masks, input images and fine maps
SITE_COLUMNS = ("Site", "Institution")  #: optional site columns of a user's CSV
META_COLUMNS = ("Sex", "Age", "AP/PA") + SITE_COLUMNS


@dataclass
class AuditSource:
    """The images of an audit and what is known about them."""

    dataset: Dataset  #: items: image (C×H×W), position, finding (T×64×64 bool), has_finding (T,)
    keys: list[str]  #: the member names the report lists
    labels: np.ndarray  #: (N, T) 1 / 0 / NaN for the explained classes
    meta: pd.DataFrame  #: metadata per image (may have no columns)
    digest: str  #: identifies the data (CSV bytes or file list) for --resume
    kind: str  #: csv | images | nih


def _pool_mask(mask: np.ndarray, pre: Preprocess) -> np.ndarray:
    m = torch.from_numpy(pre.mask(mask).astype(np.float32))[None, None]
    return (F.adaptive_max_pool2d(m, MAP_SIZE)[0, 0] > 0).numpy()


class _Items(Dataset):
    """Model input and known finding masks of one image (runs in DataLoader workers)."""

    def __init__(self, paths: Sequence[Path], pre: Preprocess, mask_names: Sequence[str | None],
                 base: Dataset | None = None, base_masks: Sequence[int | None] = ()) -> None:
        self.paths, self.pre, self.mask_names = list(paths), pre, list(mask_names)
        self.base, self.base_masks = base, list(base_masks)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        t = len(self.mask_names) or len(self.base_masks)
        finding = np.zeros((t, MAP_SIZE, MAP_SIZE), dtype=bool)
        has = np.zeros(t, dtype=bool)
        if self.base is not None:  # NIH: boxes in model-input pixels
            item = self.base[i]
            image = item["image"]
            for k, c in enumerate(self.base_masks):
                if c is not None and bool(item["has_box"][c]):
                    finding[k] = F.adaptive_max_pool2d(item["box_mask"][c][None, None].float(),
                                                       MAP_SIZE)[0, 0].numpy() > 0
                    has[k] = True
        else:
            img = read_image(self.paths[i])
            image = self.pre.normalization.apply(self.pre.image(img))
            if any(self.mask_names):
                from ..data.phantom import mask_file

                for k, name in enumerate(self.mask_names):
                    path = mask_file(self.paths[i], name) if name else None
                    if path is not None and path.is_file():
                        finding[k] = _pool_mask(read_image(path) > 0.5, self.pre)
                        has[k] = True
        return {"image": image, "position": i, "finding": torch.from_numpy(finding),
                "has_finding": torch.from_numpy(has)}


def _phantom_mask_names(classes: Sequence[str]) -> list[str | None]:
    from ..data.phantom import FINDINGS

    return [c if c in FINDINGS else None for c in classes]


def open_source(classes: Sequence[str], pre: Preprocess, csv: str | os.PathLike | None = None,
                data: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
                nih: str | os.PathLike | None = None, max_images: int | None = None,
                warn_missing: bool = True, exclude: str | os.PathLike | None = None) -> AuditSource:
    """One of ``csv`` (with ``data``, the folder its Paths are relative to), ``images`` or
    ``nih``, restricted to the first ``max_images`` images. Classes without a label column
    in the CSV get unknown labels (NaN) and, with ``warn_missing``, a warning. Images under
    ``exclude`` (the audit's own output) are not read."""
    given = [x for x in (csv, images, nih) if x is not None]
    if len(given) != 1:
        raise ChexplainError("give exactly one of --csv, --images and --nih")
    if max_images is not None and max_images < 1:
        raise ChexplainError(f"--max-images {max_images} must be at least 1")
    sl = slice(None, max_images)
    if csv is not None:
        from ..data.chexpert import read_chexpert_csv
        from ..train.data import resolve_csv, resolve_root
        from ..data.chexpert import default_root, missing_files

        path = resolve_csv(csv, data)
        frame = read_chexpert_csv(path, extra=SITE_COLUMNS).iloc[sl].reset_index(drop=True)
        root = resolve_root(data, frame["Path"].iloc[0]) or default_root(path, frame["Path"].iloc[0])
        missing = missing_files(frame["Path"].tolist(), root)
        if missing:
            raise ChexplainError(f"{path}: {len(missing)} of {len(frame)} image files missing "
                                 f"under {root} (e.g. {', '.join(missing[:3])})")
        by_name = {str(c).lower(): c for c in frame.columns}  # classes match columns by name
        absent = [c for c in classes if c.lower() not in by_name]
        if absent and warn_missing:
            warnings.warn(f"{path}: no label column for the model's class(es) "
                          f"{', '.join(repr(c) for c in absent)}: their labels are unknown "
                          "(--population falls back to predicted or all images)", stacklevel=2)
        labels = np.stack([pd.to_numeric(frame[by_name[c.lower()]], errors="coerce").to_numpy(float)
                           if c.lower() in by_name else np.full(len(frame), np.nan)
                           for c in classes], 1)
        labels[(labels != 0) & (labels != 1)] = np.nan  # uncertain and blank: unknown
        meta = pd.DataFrame({c: frame[c] for c in META_COLUMNS if c in frame})
        ds = _Items([root / p for p in frame["Path"]], pre, _phantom_mask_names(classes))
        return AuditSource(ds, frame["Path"].astype(str).tolist(), labels, meta,
                           text_digest([file_digest(path), max_images]), "csv")
    if images is not None:
        from ..jobs.explain import find_images

        files = find_images([images], exclude=exclude)[sl]
        digest = text_digest([(str(p), p.stat().st_size) for p in files])
        ds = _Items(files, pre, [None] * len(classes))
        return AuditSource(ds, [str(p) for p in files], np.full((len(files), len(classes)), np.nan),
                           pd.DataFrame(index=range(len(files))), digest, "images")
    from ..data.nih import NIHAsObservations, NIHDataset
    from ..data.nih_tables import NIH_TO_CHEXPERT, nih_folder

    folder, entries, boxes = nih_folder(nih)
    base = NIHDataset(folder, entries, boxes, preprocess=pre, missing="skip")
    if max_images is not None:
        base.entries = base.entries.iloc[sl].reset_index(drop=True)
        base.targets = base.targets[sl]
    obs = NIHAsObservations(base, list(classes))
    labels = obs.targets.astype(float)
    mapped = set(NIH_TO_CHEXPERT.values()) | {"No Finding"}
    labels[:, [k for k, c in enumerate(classes) if c not in mapped]] = np.nan
    ent = base.entries
    meta = pd.DataFrame({new: ent[old] for old, new in (("Patient Gender", "Sex"),
                                                        ("Patient Age", "Age"),
                                                        ("View Position", "AP/PA")) if old in ent})
    keys = ent["Image Index"].astype(str).tolist()
    ds = _Items([folder / k for k in keys], pre, [], obs, list(range(len(classes))))
    return AuditSource(ds, keys, labels, meta, text_digest([file_digest(entries), *keys]), "nih")


def age_bins(age: pd.Series) -> pd.Series:
    a = pd.to_numeric(age, errors="coerce")
    return pd.cut(a, [0, 40, 60, 75, 200], right=False, labels=["<40", "40-59", "60-74", "≥75"]).astype(str)
