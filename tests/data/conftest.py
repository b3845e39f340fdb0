"""Shared fixtures for the data tests: the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()
CHEXPERT_CSV = SHARED / "chexpert" / "train.csv.gz"
NIH = SHARED / "nih-cxr"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def chexpert_frame():
    from chexplain.data.chexpert import read_chexpert_csv

    return read_chexpert_csv(need(CHEXPERT_CSV))


@pytest.fixture(scope="session")
def nih_dir() -> Path:
    return need(NIH)
