"""Shared fixtures: a small phantom data set and an (untrained) tiny DenseNet checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def phantom_csv(tmp_path_factory) -> Path:
    from chexplain.data.phantom import write_phantom

    root = tmp_path_factory.mktemp("phantom")
    return write_phantom(root / "phantom", 12, size=64, seed=3, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, init = chexpert_densenet("tiny", 14, None)
    meta = model_meta("tiny", 14, 3, OBSERVATIONS, "imagenet", 64, init)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    return save_checkpoint(path, model, meta=meta, epoch=1, mean_auroc=0.5)
