"""Reading chest radiographs (PNG, JPEG, DICOM) and preparing them for a model.

:func:`read_image` returns a float32 H×W array in [0, 1] whatever the file's format or bit
depth; :class:`Preprocess` resizes (shorter side), centre-crops and normalises it into a model
input tensor, and its :class:`Normalization` gives the input's bounds for LRP's z^B rule.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .dicom import MAX_PIXELS, dicom_to_unit, read_dicom  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # pragma: no cover
    import torch

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _fail(path: os.PathLike | str, reason: str) -> DataError:
    return DataError(f"{path}: {reason}")


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a PNG, JPEG or DICOM radiograph as a float32 H×W array in [0, 1].

    PNG/JPEG: 8- and 16-bit greyscale, L+alpha, and RGB/RGBA whose colour channels are equal
    (as some NIH files); values are divided by the type's maximum (255 or 65535) and alpha
    must be fully opaque. DICOM: see :func:`dicom_to_unit`. Anything else raises
    :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found")
    if not path.is_file():
        raise _fail(path, "not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise _fail(path, f"cannot open: {exc.strerror or exc}") from None
    if not head:
        raise _fail(path, "empty file")
    if head.startswith(_PNG_MAGIC) or head.startswith(_JPEG_MAGIC):
        return _read_pillow(path, max_pixels)
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return read_dicom(path, max_pixels)
    raise _fail(path, "not a PNG, JPEG or DICOM image")


def _read_pillow(path: Path, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path, formats=("PNG", "JPEG"))
        with im:
            width, height = im.size
            if width * height > max_pixels:
                raise _fail(path, f"{width}x{height} pixels exceeds the limit of {max_pixels} "
                                  "(decompression bomb?)")
            if width == 0 or height == 0:
                raise _fail(path, "image has no pixels")
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                raise _fail(path, f"animated image ({frames} frames); a radiograph is one frame: "
                                  "save the frame to explain as its own file")
            orientation = _orientation(path, im)
            mode = im.mode
            im.load()
            if orientation != 1:
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            return _pillow_to_unit(path, im, mode)
    except Image.DecompressionBombError:
        raise _fail(path, "too many pixels (decompression bomb)") from None
    except UnidentifiedImageError:
        raise _fail(path, "corrupt or unsupported image (cannot identify)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise _fail(path, f"corrupt image: {exc}") from None


def _orientation(path: Path, im: Image.Image) -> int:
    """The EXIF orientation (tag 274; 1: as stored), warning when it rotates or mirrors."""
    try:
        orientation = int(im.getexif().get(274, 1) or 1)
    except (ValueError, TypeError, SyntaxError, OSError):
        return 1
    if orientation not in range(1, 9):
        raise _fail(path, f"EXIF orientation {orientation} is not a valid value (1-8)")
    if orientation != 1:
        warnings.warn(f"{path}: EXIF orientation {orientation}: rotated/mirrored as a viewer "
                      "shows it before explaining (maps are in that frame)", stacklevel=4)
    return orientation


def _warn_low_bit_depth(path: Path, peak: int) -> None:
    """A 16-bit image whose values all fit 12 (or 10, 8) bits is most likely such data stored
    in 16 bits: it is read on the 16-bit scale (near-black), so say so."""
    if 0 < peak <= 4095:
        bits = next(b for b in (8, 10, 12) if peak < 2 ** b)
        warnings.warn(f"{path}: a 16-bit image whose values all lie below {2 ** bits} (probably "
                      f"{bits}-bit data stored in 16 bits); read on the 16-bit scale it is nearly "
                      "black: rescale it to the full 16-bit range", stacklevel=4)


def _pillow_to_unit(path: Path, im: Image.Image, mode: str) -> np.ndarray:
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.float32)
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # "I": 16-bit PNG in some Pillow versions
        arr = np.asarray(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise _fail(path, "32-bit integer images are not supported")
        _warn_low_bit_depth(path, int(arr.max()))
        return arr.astype(np.float32) / 65535.0
    if mode not in ("L", "LA", "RGB", "RGBA"):
        raise _fail(path, f"unsupported pixel mode {mode!r} (expected greyscale)")
    arr = np.asarray(im)
    if mode in ("LA", "RGBA"):
        if (arr[..., -1] != 255).any():
            raise _fail(path, "image has transparent pixels; a radiograph must be opaque")
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        spread = int((arr.max(axis=-1).astype(np.int16) - arr.min(axis=-1)).max())
        if spread > 8:  # JPEG's colour conversion may leave equal channels a few levels apart
            raise _fail(path, f"colour image (channels differ by up to {spread} levels); "
                              "expected a greyscale radiograph")
        if spread == 0:
            arr = arr[..., 0]
        else:
            return arr.astype(np.float32).mean(axis=-1) / 255.0
    return arr.astype(np.float32) / 255.0


# ------------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class Geometry:
    """Where a source image lands after resizing (scale_x, scale_y) and cropping (left, top)."""

    scale_x: float
    scale_y: float
    left: int
    top: int
    out_height: int
    out_width: int

    def box(self, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        """Map a box (x, y, w, h) in source pixels to output pixels."""
        return (x * self.scale_x - self.left, y * self.scale_y - self.top,
                w * self.scale_x, h * self.scale_y)


def geometry(height: int, width: int, resize: int, crop: int | None = None) -> Geometry:
    """Resize the shorter side to ``resize`` (keeping the aspect), then centre-crop ``crop``²."""
    crop = resize if crop is None else crop
    if resize < 1 or crop < 1 or crop > resize:
        raise DataError(f"invalid size: resize {resize}, crop {crop} (need 1 <= crop <= resize)")
    scale = resize / min(height, width)
    nh = resize if height <= width else max(resize, int(round(height * scale)))
    nw = resize if width <= height else max(resize, int(round(width * scale)))
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return Geometry(nw / width, nh / height, left, top, crop, crop)


def resize_and_crop(img: np.ndarray, resize: int, crop: int | None = None,
                    nearest: bool = False) -> np.ndarray:
    """Resize a 2-D array's shorter side to ``resize`` (antialiased bilinear, or nearest for
    masks), then centre-crop ``crop``×``crop``."""
    g = geometry(img.shape[0], img.shape[1], resize, crop)
    nh, nw = int(round(img.shape[0] * g.scale_y)), int(round(img.shape[1] * g.scale_x))
    if (nh, nw) != img.shape:
        if nearest:
            src = Image.fromarray(img.astype(np.uint8))
            arr = np.asarray(src.resize((nw, nh), Image.NEAREST)).astype(img.dtype)
        else:
            src = Image.fromarray(img.astype(np.float32), mode="F")
            arr = np.asarray(src.resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    else:
        arr = img
    return np.ascontiguousarray(arr[g.top:g.top + g.out_height, g.left:g.left + g.out_width])


def box_mask(boxes: Sequence[tuple[float, float, float, float]], height: int,
             width: int) -> np.ndarray:
    """Boolean H×W mask of the pixels whose centres lie inside any box (x, y, w, h); a box too
    small to contain a pixel centre still marks the pixel holding its centre."""
    mask = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        c0, c1 = math.ceil(x - 0.5), math.floor(x + w - 0.5)
        r0, r1 = math.ceil(y - 0.5), math.floor(y + h - 0.5)
        if c1 < c0:
            c0 = c1 = math.floor(x + w / 2)
        if r1 < r0:
            r0 = r1 = math.floor(y + h / 2)
        mask[max(r0, 0):max(r1 + 1, 0), max(c0, 0):max(c1 + 1, 0)] = True
    return mask


# -------------------------------------------------------------------------- normalisation

@dataclass(frozen=True)
class Normalization:
    """``x_c = (v - mean[c]) / std[c]`` of a [0, 1] image ``v`` replicated on len(mean) channels."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("mean and std need the same, non-zero length")
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")

    @property
    def channels(self) -> int:
        return len(self.mean)

    def apply(self, img) -> "torch.Tensor":
        """A [0, 1] image → normalised tensor: H×W or 1×H×W gives C×H×W; N×H×W or N×1×H×W
        gives N×C×H×W (the grey values replicated on every channel)."""
        import torch

        if isinstance(img, np.ndarray):
            t = torch.from_numpy(np.array(img, dtype=np.float32, copy=True))
        else:
            t = torch.as_tensor(img, dtype=torch.float32)
        if t.ndim == 2 or (t.ndim == 3 and t.shape[0] != 1):
            t = t.unsqueeze(-3)
        if t.ndim not in (3, 4) or t.shape[-3] != 1:
            raise ValueError(f"expected a greyscale image (H×W, N×H×W or N×1×H×W), got "
                             f"shape {tuple(t.shape)}")
        t = t.expand(*t.shape[:-3], self.channels, *t.shape[-2:])
        mean, std = self._shaped(torch.tensor(self.mean)), self._shaped(torch.tensor(self.std))
        return (t - mean.to(t)) / std.to(t)

    def invert(self, x: "torch.Tensor") -> "torch.Tensor":
        """Normalised tensor (..., C, H, W) → [0, 1] image (..., H, W), averaged over channels."""
        import torch

        mean, std = self._shaped(torch.tensor(self.mean)), self._shaped(torch.tensor(self.std))
        return (x * std.to(x) + mean.to(x)).mean(dim=-3)

    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (low, high) of the normalised input: the images of 0 and 1."""
        low = tuple((0.0 - m) / s for m, s in zip(self.mean, self.std))
        high = tuple((1.0 - m) / s for m, s in zip(self.mean, self.std))
        return low, high

    def bound_tensors(self, like: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """``bounds()`` as tensors of ``like``'s shape (…, C, H, W), dtype and device."""
        import torch

        low, high = self.bounds()
        return (self._shaped(torch.tensor(low)).to(like).expand_as(like),
                self._shaped(torch.tensor(high)).to(like).expand_as(like))

    @staticmethod
    def _shaped(t: "torch.Tensor") -> "torch.Tensor":
        return t.view(-1, 1, 1)


#: torchvision models: ImageNet statistics on three replicated channels.
IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: torchxrayvision models: [0, 1] mapped to [-1024, 1024] on one channel.
XRV = Normalization((0.5,), (1.0 / 2048.0,))
NORMALIZATIONS = {"imagenet": IMAGENET, "xrv": XRV}


def get_normalization(name: str | Normalization) -> Normalization:
    """A :class:`Normalization` by name (``imagenet``, ``xrv``) or itself."""
    if isinstance(name, Normalization):
        return name
    try:
        return NORMALIZATIONS[str(name).lower()]
    except KeyError:
        raise DataError(f"unknown normalisation {name!r}; choose one of "
                        f"{', '.join(NORMALIZATIONS)}") from None


@dataclass(frozen=True)
class Preprocess:
    """Image → model input: resize the shorter side, centre-crop, normalise."""

    resize: int = 224
    crop: int | None = None
    normalization: Normalization = IMAGENET

    def image(self, img: np.ndarray) -> np.ndarray:
        """The resized, cropped [0, 1] image (H×W float32)."""
        return resize_and_crop(img, self.resize, self.crop)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A mask (H×W bool) carried through the same geometry by nearest neighbour."""
        return resize_and_crop(mask.astype(np.uint8), self.resize, self.crop, nearest=True) > 0

    def geometry(self, height: int, width: int) -> Geometry:
        return geometry(height, width, self.resize, self.crop)

    def __call__(self, img: np.ndarray | str | os.PathLike) -> "torch.Tensor":
        """A C×H×W normalised tensor from an array or an image file."""
        if not isinstance(img, np.ndarray):
            img = read_image(img)
        return self.normalization.apply(self.image(img))
