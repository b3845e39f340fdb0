"""A corpus of broken files: each gives one DataError line naming the file, and nothing else."""

from __future__ import annotations

import gzip
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from chexplain.cli import main
from chexplain.data.chexpert import OBSERVATIONS, read_chexpert_csv
from chexplain.data.images import read_image
from chexplain.data.nih_tables import read_nih_boxes, read_nih_entries
from chexplain.errors import DataError

HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)
ROW = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,"
GOOD = ROW + "1.0,,,,,,,,,0.0,,,,1.0"


def _png_bytes(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png() -> bytes:
    """A valid PNG header claiming 100000×100000 pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _dicom_bytes(tmp_path, **changes) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 4, 4, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    path = tmp_path / "tmp.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


# name, file name, bytes builder, expected message fragment
IMAGES = [
    ("empty", "a.png", lambda t: b"", "empty file"),
    ("text", "a.png", lambda t: b"hello, this is not an image\n", "not a PNG, JPEG or DICOM"),
    ("gif", "a.gif", lambda t: b"GIF89a" + b"\0" * 40, "not a PNG, JPEG or DICOM"),
    ("truncated png", "a.png", lambda t: _png_bytes(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8))[:2000],
     "corrupt image"),
    ("truncated jpeg", "a.jpg", lambda t: _jpeg_bytes()[:300], "corrupt image"),
    ("png magic then garbage", "a.png", lambda t: b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8,
     "corrupt"),
    ("colour png", "a.png", lambda t: _png_bytes(np.dstack([np.zeros((8, 8), np.uint8),
                                                              np.full((8, 8), 200, np.uint8),
                                                              np.zeros((8, 8), np.uint8)])),
     "colour image"),
    ("transparent png", "a.png", lambda t: _png_bytes(np.zeros((8, 8, 2), np.uint8), "LA"),
     "transparent"),
    ("decompression bomb", "a.png", lambda t: _bomb_png(), "decompression bomb"),
    ("dicom without pixels", "a.dcm", lambda t: _dicom_bytes(t, PixelData=None), "no pixel data"),
    ("dicom RGB", "a.dcm", lambda t: _dicom_bytes(t, PhotometricInterpretation="RGB"),
     "unsupported PhotometricInterpretation"),
    ("dicom truncated pixels", "a.dcm", lambda t: _dicom_bytes(t)[:-10], "DICOM"),
    ("dicom multi-frame", "a.dcm", lambda t: _dicom_bytes(t, NumberOfFrames=2), "multi-frame"),
    ("dicom garbage", "a.dcm", lambda t: b"\x01\x02garbage that is not DICOM" * 3, "DICOM"),
    ("dicom bad window", "a.dcm", lambda t: _dicom_bytes(t, WindowCenter="40", WindowWidth="0"),
     "WindowWidth"),
]

CSVS = [
    ("empty csv", "train.csv", lambda: b"", "empty CSV"),
    ("header only", "train.csv", lambda: (HEADER + "\n").encode(), "no rows"),
    ("missing column", "train.csv", lambda: (HEADER.replace(",Edema", "") + "\n" +
                                             GOOD.replace(",,,,,", ",,,,", 1) + "\n").encode(),
     "missing column 'Edema'"),
    ("unknown label value", "train.csv", lambda: (HEADER + "\n" + GOOD + "\n" +
                                                  GOOD.replace("0.0", "2.0") + "\n").encode(),
     "line 3: column 'Pneumothorax' has unknown value '2.0'"),
    ("text label", "train.csv", lambda: (HEADER + "\n" + GOOD.replace("1.0,", "yes,", 1) + "\n").encode(),
     "column 'No Finding' has unknown value 'yes'"),
    ("unknown view", "train.csv", lambda: (HEADER + "\n" + GOOD.replace("Frontal", "Oblique") + "\n").encode(),
     "'Frontal/Lateral' has unknown value 'Oblique'"),
    ("ragged row", "train.csv", lambda: (HEADER + "\n" + GOOD + ",1.0,1.0,1.0\n").encode(),
     "malformed CSV"),
    ("duplicate column", "train.csv", lambda: (HEADER + ",Edema\n" + GOOD + ",1.0\n").encode(),
     "duplicate column 'Edema'"),
    ("binary csv", "train.csv", lambda: b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00\xc3\x28" * 20,
     "CSV"),
    ("corrupt gzip", "train.csv.gz", lambda: gzip.compress((HEADER + "\n" + GOOD).encode())[:40],
     "CSV"),
    ("empty path", "train.csv", lambda: (HEADER + "\n" + GOOD.replace(ROW.split(",")[0], "") + "\n").encode(),
     "empty Path"),
]


def _one_line_error(call, path, fragment, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing else: no warning either
        with pytest.raises(DataError) as err:
            call(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and fragment in msg, msg
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("kind,name,build,fragment", IMAGES, ids=[c[0] for c in IMAGES])
def test_bad_image(tmp_path, capsys, kind, name, build, fragment):
    path = tmp_path / name
    path.write_bytes(build(tmp_path))
    _one_line_error(read_image, path, fragment, capsys)


def test_missing_and_directory(tmp_path, capsys):
    _one_line_error(read_image, tmp_path / "nope.png", "file not found", capsys)
    _one_line_error(read_image, tmp_path, "not a regular file", capsys)


@pytest.mark.parametrize("kind,name,build,fragment", CSVS, ids=[c[0] for c in CSVS])
def test_bad_chexpert_csv(tmp_path, capsys, kind, name, build, fragment):
    path = tmp_path / name
    path.write_bytes(build())
    _one_line_error(read_chexpert_csv, path, fragment, capsys)
    # the CLI prints exactly one line on stderr and nothing on stdout
    assert main(["chexpert", "stats", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("chexplain: error: ")
    assert fragment in captured.err


def test_good_row_parses(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "\n" + GOOD + "\n")
    assert read_chexpert_csv(path)["No Finding"].tolist() == [1.0]


def test_bad_nih_csvs(tmp_path, capsys):
    entries = tmp_path / "Data_Entry_2017.csv"
    entries.write_text("Image Index,Finding Labels\na.png,Cardiomegaly|Fluffiness\n")
    _one_line_error(read_nih_entries, entries, "unknown finding label 'Fluffiness'", capsys)
    entries.write_text("Image,Labels\na.png,Cardiomegaly\n")
    _one_line_error(read_nih_entries, entries, "missing column 'Image Index'", capsys)
    boxes = tmp_path / "BBox_List_2017.csv"
    boxes.write_text("Image Index,Finding Label,Bbox [x,y,w,h]\na.png,Nodule,1,2,abc,4\n")
    _one_line_error(read_nih_boxes, boxes, "invalid box w 'abc'", capsys)
    boxes.write_text("Image Index,Finding Label,Bbox [x,y,w,h]\na.png,Nodule,1,2,-3,4\n")
    _one_line_error(read_nih_boxes, boxes, "invalid box w '-3'", capsys)
