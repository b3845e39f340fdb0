"""Fixtures for the CheXpert study's tests: a small phantom set in CheXpert's layout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Path:
    """48 phantom radiographs at 32 px: ``<root>/phantom/train.csv`` (Paths relative to root)."""
    from chexplain.data.phantom import write_phantom

    root = tmp_path_factory.mktemp("chexpert")
    return write_phantom(root / "phantom", 48, 32, seed=1, progress=False)


@pytest.fixture
def tiny_config(phantom, tmp_path):
    """A factory of fast training configs (tiny DenseNet, 32 px, no worker processes)."""
    from chexplain.studies.chexpert.train import ChexpertTrainConfig

    def make(**overrides) -> ChexpertTrainConfig:
        opts = dict(csv=str(phantom), out=str(tmp_path / "run"), arch="tiny", image_size=32,
                    epochs=2, batch_size=8, lr=1e-3, workers=0, val_fraction=0.25,
                    device="cpu", weights=None, seed=0)
        opts.update(overrides)
        return ChexpertTrainConfig(**opts)

    return make
