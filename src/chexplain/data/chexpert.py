"""CheXpert (Irvin et al., AAAI 2019): labels CSV, uncertainty policies, statistics, Dataset.

Label values are ``1.0`` positive, ``0.0`` negative, ``-1.0`` uncertain, and blank (the
report does not mention the observation). **Blanks are treated as negative** everywhere: in
the label tensors of every policy and in :func:`label_stats` (as in the study's Table 1).
Uncertain labels follow the policy: ``zeros`` (U-Zeros, the study's: uncertain → 0),
``ones`` (U-Ones: → 1) or ``ignore`` (U-Ignore: → 0 with loss mask 0).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import IMAGENET, Normalization, Preprocess, get_normalization, read_image
from .tables import read_csv_strict

#: The 14 observations, in the order of CheXpert's CSV and of the study's Table 1.
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)
#: Every CheXpert CSV column, in order (the phantom writes exactly these).
COLUMNS: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + OBSERVATIONS
POLICIES = ("zeros", "ones", "ignore")
_POLICY_ALIASES = {"u-zeros": "zeros", "u-ones": "ones", "u-ignore": "ignore"}
VIEWS = ("Frontal", "Lateral")
PROJECTIONS = ("AP", "PA", "LL", "RL")
_PATIENT = re.compile(r"(?:^|/)(patient\d+)(?:/|$)")


def read_chexpert_csv(path: str | os.PathLike, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Read and validate a CheXpert CSV (plain or gzipped).

    Returns a frame with ``Path`` (str), ``Frontal/Lateral`` and ``AP/PA`` (str, when
    present) and the 14 observations as float (1, 0, -1, NaN for blank), plus the text columns
    named in ``extra`` that the file has (stripped; e.g. a user's ``Site``). Raises
    :class:`DataError` naming the file, column, line and value for anything else.
    """
    path = Path(path)
    df = read_csv_strict(path, full_rows=True)
    header = list(df.columns)
    _check_header(path, header)
    if len(df) == 0:
        raise DataError(f"{path}: CSV has a header but no rows")
    out = pd.DataFrame({"Path": df["Path"].str.strip()})
    empty = np.flatnonzero(out["Path"].eq("").to_numpy())
    if len(empty):
        raise DataError(f"{path}: line {empty[0] + 2}: empty Path")
    _warn_outside(path, out["Path"])
    for col, allowed in (("Frontal/Lateral", VIEWS), ("AP/PA", PROJECTIONS + ("",))):
        if col in df:
            values = df[col].str.strip()
            bad = np.flatnonzero(~values.isin(allowed).to_numpy())
            if len(bad):
                raise DataError(f"{path}: line {bad[0] + 2}: column {col!r} has unknown value "
                                f"{df[col].iloc[bad[0]]!r} (expected one of {', '.join(allowed)})")
            out[col] = values
    for col in ("Sex", "Age"):
        if col in df:
            out[col] = df[col]
    for col in OBSERVATIONS:
        out[col] = _parse_labels(path, col, df[col])
    for col in extra:
        if col in df and col not in out:
            out[col] = df[col].str.strip()
    return _drop_duplicates(path, out)


def _warn_outside(path: Path, paths: pd.Series) -> None:
    """Paths that climb out of the data folder (``..``) or are absolute read files elsewhere:
    allowed (a shared image store), but said."""
    def outside(p: str) -> bool:
        norm = os.path.normpath(p.replace("\\", "/"))
        return os.path.isabs(norm) or norm == ".." or norm.startswith("../")

    bad = np.flatnonzero(paths.map(outside).to_numpy(dtype=bool))
    if len(bad):
        warnings.warn(f"{path}: {len(bad)} Path(s) lead outside the data folder (line {bad[0] + 2}: "
                      f"{paths.iloc[bad[0]]!r}); those files are read where they point", stacklevel=3)


def _drop_duplicates(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows repeating an earlier row (same Path, same values) are dropped with a warning; the
    same Path with other values is an error (which row is right is unknown)."""
    same_path = frame["Path"].duplicated(keep="first").to_numpy()
    if not same_path.any():
        return frame
    exact = frame.astype(str).duplicated(keep="first").to_numpy()
    conflict = np.flatnonzero(same_path & ~exact)
    if len(conflict):
        i = int(conflict[0])
        first = int(np.flatnonzero(frame["Path"].eq(frame["Path"].iloc[i]).to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}: Path {frame['Path'].iloc[i]!r} repeats line "
                        f"{first + 2} with other values")
    i = int(np.flatnonzero(exact)[0])
    warnings.warn(f"{path}: {int(exact.sum())} duplicate row(s) dropped (line {i + 2} repeats "
                  f"{frame['Path'].iloc[i]!r}); each image is used once", stacklevel=3)
    return frame[~exact].reset_index(drop=True)


def _check_header(path: Path, header: list[str]) -> None:
    dupes = sorted({re.sub(r"\.\d+$", "", c) for c in header
                    if re.search(r"\.\d+$", c) and re.sub(r"\.\d+$", "", c) in header})
    if dupes:
        raise DataError(f"{path}: duplicate column {dupes[0]!r}")
    missing = [c for c in ("Path",) + OBSERVATIONS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(c) for c in missing)} (not a CheXpert CSV?)")


def _parse_labels(path: Path, col: str, raw: pd.Series) -> np.ndarray:
    text = raw.str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    blank = text.eq("").to_numpy()
    bad = (~blank) & ~np.isin(values, (-1.0, 0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: line {i + 2}: column {col!r} has unknown value "
                        f"{raw.iloc[i]!r} (expected 1.0, 0.0, -1.0 or blank)")
    values[blank] = np.nan
    return values


def filter_views(df: pd.DataFrame, frontal_lateral: str | None = None,
                 ap_pa: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of one view (``Frontal``/``Lateral``) and/or projection(s) (``AP``, ``PA`` ...)."""
    if frontal_lateral is not None:
        view = {v.lower(): v for v in VIEWS}.get(str(frontal_lateral).lower())
        if view is None:
            raise DataError(f"unknown view {frontal_lateral!r}; choose Frontal or Lateral")
        if "Frontal/Lateral" not in df:
            raise DataError("CSV has no 'Frontal/Lateral' column to filter on")
        df = df[df["Frontal/Lateral"] == view]
    if ap_pa is not None:
        wanted = [ap_pa] if isinstance(ap_pa, str) else list(ap_pa)
        wanted = [p.upper() for p in wanted]
        unknown = [p for p in wanted if p not in PROJECTIONS]
        if unknown:
            raise DataError(f"unknown projection {unknown[0]!r}; choose from {', '.join(PROJECTIONS)}")
        if "AP/PA" not in df:
            raise DataError("CSV has no 'AP/PA' column to filter on")
        df = df[df["AP/PA"].isin(wanted)]
    return df


def policy_name(policy: str) -> str:
    """Canonical policy name (``zeros``, ``ones``, ``ignore``; ``U-Zeros`` etc. accepted)."""
    name = _POLICY_ALIASES.get(str(policy).lower(), str(policy).lower())
    if name not in POLICIES:
        raise DataError(f"unknown uncertainty policy {policy!r}; choose U-Zeros, U-Ones or U-Ignore")
    return name


def label_arrays(df: pd.DataFrame, policy: str = "zeros") -> tuple[np.ndarray, np.ndarray]:
    """(targets, loss mask), float32 N×14 in :data:`OBSERVATIONS` order, under ``policy``.

    Blank → target 0 (negative), mask 1. Uncertain → 0 (zeros), 1 (ones), or 0 with mask 0
    (ignore).
    """
    policy = policy_name(policy)
    raw = df[list(OBSERVATIONS)].to_numpy(dtype=np.float64)
    uncertain = raw == -1.0
    targets = (raw == 1.0).astype(np.float32)
    mask = np.ones_like(targets)
    if policy == "ones":
        targets[uncertain] = 1.0
    elif policy == "ignore":
        mask[uncertain] = 0.0
    return targets, mask


def label_stats(df: pd.DataFrame) -> dict:
    """Table 1: ``{"rows": N, "observations": {name: {"positive", "uncertain", "negative"}}}``
    with blanks counted as negative."""
    stats = {}
    for col in OBSERVATIONS:
        v = df[col].to_numpy(dtype=np.float64)
        pos, unc = int((v == 1.0).sum()), int((v == -1.0).sum())
        stats[col] = {"positive": pos, "uncertain": unc, "negative": int(len(v) - pos - unc)}
    return {"rows": int(len(df)), "observations": stats}


def format_stats(stats: dict) -> str:
    """The stats as a fixed-width table with counts and percentages of all rows."""
    n = max(stats["rows"], 1)
    lines = [f"{'Observation':<28}{'Positive':>17}{'Uncertain':>17}{'Negative':>17}"]
    for name, c in stats["observations"].items():
        cells = "".join(f"{c[k]:>9,d} ({100 * c[k] / n:5.1f}%)"
                        for k in ("positive", "uncertain", "negative"))
        lines.append(f"{name:<28}{cells}")
    lines.append(f"{stats['rows']:,d} rows")
    return "\n".join(lines)


def patient_ids(df: pd.DataFrame) -> np.ndarray:
    """The ``patientNNNNN`` component of every Path."""
    ids = df["Path"].str.extract(_PATIENT, expand=False)
    missing = np.flatnonzero(ids.isna().to_numpy())
    if len(missing):
        raise DataError(f"Path {df['Path'].iloc[missing[0]]!r} has no 'patientNNNNN' component "
                        "to split on")
    return ids.to_numpy(dtype=str)


def patient_split(df: pd.DataFrame, val_fraction: float = 0.1,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positional (train, validation) row indices, no patient in both; fixed by ``seed``."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"validation fraction {val_fraction} must be in (0, 1)")
    ids = patient_ids(df)
    patients = np.unique(ids)
    if len(patients) < 2:
        raise DataError(f"cannot split {len(patients)} patient(s) into train and validation")
    rng = np.random.default_rng(seed)
    n_val = min(max(1, int(round(val_fraction * len(patients)))), len(patients) - 1)
    val_patients = rng.permutation(patients)[:n_val]
    is_val = np.isin(ids, val_patients)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def default_root(csv_path: str | os.PathLike, first_path: str) -> Path:
    """Root the Paths are relative to: the CSV's parent folder when the Paths start with the
    CSV's folder name (CheXpert: ``CheXpert-v1.0-small/train/...``), else the CSV's folder."""
    folder = Path(csv_path).resolve().parent
    first = Path(first_path).parts[0] if first_path else ""
    return folder.parent if first == folder.name else folder


def missing_files(paths: Sequence[str], root: str | os.PathLike) -> list[str]:
    """The Paths with no file under ``root``."""
    root = Path(root)
    return [p for p in paths if not (root / p).is_file()]


class CheXpertDataset(Dataset):
    """CheXpert images with 14 targets and a loss mask.

    Each item is a dict: ``image`` (C×H×W, normalised by ``preprocess.normalization``),
    ``target`` and ``mask`` (14 floats), ``index`` (row of the filtered CSV) and ``path``;
    with ``masks=True`` also ``finding_masks`` (14×H×W bool, the phantom's finding masks;
    see :mod:`chexplain.data.phantom`). All missing image files are reported together when
    the dataset is built.
    """

    def __init__(self, csv_path: str | os.PathLike, root: str | os.PathLike | None = None,
                 policy: str = "zeros", frontal_lateral: str | None = None,
                 ap_pa: str | Sequence[str] | None = None, indices: Sequence[int] | None = None,
                 preprocess: Preprocess | None = None,
                 normalization: Normalization | str = IMAGENET, size: int = 224,
                 masks: bool = False, check_files: bool = True) -> None:
        self.csv_path = Path(csv_path)
        frame = filter_views(read_chexpert_csv(self.csv_path), frontal_lateral, ap_pa)
        if indices is not None:
            frame = frame.iloc[np.asarray(indices, dtype=np.int64)]
        self.frame = frame.reset_index(drop=True)
        if len(self.frame) == 0:
            raise DataError(f"{self.csv_path}: no rows left after filtering")
        self.root = Path(root) if root is not None else default_root(
            self.csv_path, self.frame["Path"].iloc[0])
        self.policy = policy_name(policy)
        self.targets, self.loss_mask = label_arrays(self.frame, self.policy)
        self.preprocess = preprocess or Preprocess(size, None, get_normalization(normalization))
        self.with_masks = masks
        if check_files:
            missing = missing_files(self.frame["Path"].tolist(), self.root)
            if missing:
                shown = ", ".join(missing[:3])
                raise DataError(f"{self.csv_path}: {len(missing)} of {len(self.frame)} image "
                                f"files missing under {self.root} (e.g. {shown})")

    @property
    def normalization(self) -> Normalization:
        return self.preprocess.normalization

    def __len__(self) -> int:
        return len(self.frame)

    def image_path(self, index: int) -> Path:
        return self.root / self.frame["Path"].iloc[index]

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        img = read_image(path)
        item = {
            "image": self.preprocess.normalization.apply(self.preprocess.image(img)),
            "target": torch.from_numpy(self.targets[index]),
            "mask": torch.from_numpy(self.loss_mask[index]),
            "index": index,
            "path": str(path),
        }
        if self.with_masks:
            from .masks import read_finding_masks

            found = read_finding_masks(path, img.shape)
            stack = np.zeros((len(OBSERVATIONS),) + img.shape, dtype=bool)
            for name, m in found.items():
                if name in OBSERVATIONS:
                    stack[OBSERVATIONS.index(name)] = m
            item["finding_masks"] = torch.from_numpy(
                np.stack([self.preprocess.mask(m) for m in stack]))
        return item

