"""Fixtures for the reliability tests (the tiny phantom set and checkpoint are the project's, in
``tests/conftest.py``): a tiny model and helpers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch


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
