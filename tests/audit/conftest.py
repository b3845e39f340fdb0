"""Fixtures of the audit tests: a small phantom set and an untrained tiny DenseNet at 32 px."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def audit_phantom(tmp_path_factory) -> Path:
    """40 phantom radiographs at 32 px with the text marker on Pleural Effusion (CSV path), and
    a ``Site`` column (A for the first 20 images, B for the others) that CheXpert's CSV lacks."""
    import pandas as pd

    from chexplain.data.phantom import Confounder, write_phantom

    root = tmp_path_factory.mktemp("audit-data")
    csv = write_phantom(root / "phantom", 40, 32, seed=5,
                        confounder=Confounder("Pleural Effusion", 0.9, 0.1), progress=False)
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame.insert(5, "Site", ["A"] * 20 + ["B"] * 20)
    frame.to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="session")
def audit_checkpoint(tmp_path_factory) -> Path:
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, init = chexpert_densenet("tiny", 14, None)
    with torch.no_grad():  # positive evidence: maps with positive relevance to cluster
        model.classifier.weight.abs_()
    meta = model_meta("tiny", 14, 3, OBSERVATIONS, "imagenet", 32, init)
    return save_checkpoint(tmp_path_factory.mktemp("audit-ckpt") / "best.pt", model, meta=meta,
                           epoch=1, mean_auroc=0.5)


CLASSES = "Pleural Effusion,Cardiomegaly"


def audit_args(csv, ckpt, out, *extra):
    return ["audit", "--checkpoint", str(ckpt), "--csv", str(csv), "--classes", CLASSES,
            "--population", "all", "--shard-size", "8", "--batch-size", "4", "--out", str(out),
            "--quiet", *extra]


@pytest.fixture(scope="session")
def reference_audit(audit_phantom, audit_checkpoint, tmp_path_factory) -> Path:
    """One uninterrupted single-process audit (the reference of the resume and torchrun tests)."""
    from chexplain.cli import main

    out = tmp_path_factory.mktemp("audit-ref") / "out"
    assert main(audit_args(audit_phantom, audit_checkpoint, out)) == 0
    return out
