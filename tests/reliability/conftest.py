"""Fixtures for the reliability tests: a tiny phantom set, a tiny DenseNet checkpoint, helpers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def phantom_csv(tmp_path_factory) -> Path:
    """12 phantom radiographs at 64 px: ``<root>/phantom/train.csv``."""
    from chexplain.data.phantom import write_phantom

    root = tmp_path_factory.mktemp("rel_phantom")
    return write_phantom(root / "phantom", 12, size=64, seed=3, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.models.densenet import chexpert_densenet, model_meta
    from chexplain.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model, init = chexpert_densenet("tiny", 14, None)
    meta = model_meta("tiny", 14, 3, OBSERVATIONS, "imagenet", 64, init)
    path = tmp_path_factory.mktemp("rel_ckpt") / "best.pt"
    return save_checkpoint(path, model, meta=meta, epoch=1, mean_auroc=0.5)


@pytest.fixture
def tiny_model():
    from chexplain.models.densenet import chexpert_densenet

    torch.manual_seed(0)
    return chexpert_densenet("tiny", 14, None)[0].eval()


def write_dicom(path: Path, **changes) -> Path:
    """A 4×4 MONOCHROME2 DICOM with ``changes`` to its attributes."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 4, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, value in changes.items():
            setattr(ds, key, value)
        ds.save_as(path, enforce_file_format=True)
    return path
