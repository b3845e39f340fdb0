"""Reading DICOM radiographs: the stored values through the modality and VOI transforms to
display values in [0, 1] (PS3.3 C.11), with every tag the decoder reads checked first."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

#: Images with more pixels than this are refused as decompression bombs (a large digital
#: radiograph has ~4300×3500 = 15 M pixels).
MAX_PIXELS = 64_000_000


def _fail(path: os.PathLike | str, reason: str) -> DataError:
    return DataError(f"{path}: {reason}")


def read_dicom(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a single-frame greyscale DICOM file as a float32 H×W array in [0, 1]."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, ValueError, KeyError, EOFError, TypeError) as exc:
        raise _fail(path, f"corrupt DICOM: {exc}") from None
    try:
        return _decode_dicom(path, ds, max_pixels)
    except DataError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"malformed DICOM value: {msg}") from None


#: DICOM tags whose value must be a finite number when present (a NaN slope makes every pixel
#: NaN, read as black).
_FINITE_TAGS = ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
#: Integer tags the decoder reads (pydicom keeps a malformed value such as '1A' as text).
_INTEGER_TAGS = ("Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored",
                 "PixelRepresentation", "SamplesPerPixel")


def _check_finite_tags(path: Path, ds) -> None:
    for tag in _FINITE_TAGS:
        value = ds.get(tag)
        if value is None or value == "":
            continue
        values = list(value) if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)) \
            else [value]
        for v in values:
            try:
                ok = math.isfinite(float(v))
            except (TypeError, ValueError):
                raise _fail(path, f"DICOM tag {tag} has the non-numeric value {str(v)!r}") from None
            if not ok:
                raise _fail(path, f"DICOM tag {tag} is {float(v)} (must be a finite number)")
    for tag in _INTEGER_TAGS:
        value = ds.get(tag)
        if value is None or value == "":
            continue
        try:
            int(value)
        except (TypeError, ValueError):
            raise _fail(path, f"DICOM tag {tag} has the malformed value {str(value)!r} (expected "
                              "an integer)") from None
    if ds.get("RescaleSlope") not in (None, "") and float(ds.RescaleSlope) == 0:
        raise _fail(path, "DICOM tag RescaleSlope is 0 (every pixel would be the intercept)")


#: Compressed transfer syntaxes (UID prefix) and the pip packages whose pydicom plugin decodes them.
_DECODERS = (("1.2.840.10008.1.2.4.5", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG baseline, extended
             ("1.2.840.10008.1.2.4.7", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG lossless
             ("1.2.840.10008.1.2.4.8", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG-LS
             ("1.2.840.10008.1.2.4.9", "pylibjpeg pylibjpeg-openjpeg"),  # JPEG 2000
             ("1.2.840.10008.1.2.4.20", "pylibjpeg pylibjpeg-openjpeg"),  # HTJ2K
             ("1.2.840.10008.1.2.5", "pylibjpeg pylibjpeg-rle"))  # RLE lossless


def _decoder_hint(ds) -> str | None:
    """For pixel data in a compressed transfer syntax that no installed plugin decodes: which
    syntax it is and what to install (None for an uncompressed one: the data is broken)."""
    meta = getattr(ds, "file_meta", None)
    uid = str(getattr(meta, "TransferSyntaxUID", "") or "")
    package = next((pkg for prefix, pkg in _DECODERS if uid.startswith(prefix)), None)
    if package is None:
        return None
    try:
        from pydicom.uid import UID

        name = UID(uid).name
    except Exception:  # noqa: BLE001 - the name is only for the message
        name = uid
    return (f"pixel data compressed as {name} (transfer syntax {uid}) that no installed decoder "
            f"could read: pip install {package} (or python-gdcm), or the data is corrupt")


def _decode_dicom(path: Path, ds, max_pixels: int) -> np.ndarray:
    _check_finite_tags(path, ds)
    if "PixelData" not in ds or not ds.get("PixelData"):
        raise _fail(path, "DICOM file has no pixel data")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols == 0:
        raise _fail(path, "DICOM image has no rows or columns")
    if rows * cols > max_pixels:
        raise _fail(path, f"{cols}x{rows} pixels exceeds the limit of {max_pixels}")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise _fail(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _fail(path, f"unsupported PhotometricInterpretation {photometric!r} "
                          "(expected MONOCHROME1 or MONOCHROME2)")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken/compressed pixel data
        hint = _decoder_hint(ds)
        if hint:
            raise _fail(path, hint) from None
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"cannot decode DICOM pixel data: {msg}") from None
    if stored.ndim != 2:
        raise _fail(path, f"DICOM pixel data has shape {stored.shape}, expected 2-D greyscale")
    try:
        return dicom_to_unit(stored, ds)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _fail(path, f"invalid DICOM attributes: {exc}") from None


def dicom_to_unit(stored: np.ndarray, ds) -> np.ndarray:
    """Map stored DICOM values to display values in [0, 1].

    The modality transform (Rescale Slope/Intercept or Modality LUT) comes first; then the
    first VOI LUT when present, else the first window (Window Center/Width, with its VOI LUT
    Function LINEAR, LINEAR_EXACT or SIGMOID, per PS3.3 C.11.2.1.2), else the full range the
    stored bits can hold. MONOCHROME1 is inverted so that bright always means dense.
    """
    from pydicom.pixels import apply_modality_lut

    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    x = apply_modality_lut(stored, ds).astype(np.float64)
    if "ModalityLUTSequence" in ds:
        out_bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        lo, hi = 0.0, float(2**out_bits - 1)
    else:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        icpt = float(ds.get("RescaleIntercept", 0) or 0)
        lo, hi = sorted((lo * slope + icpt, hi * slope + icpt))
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        entries, first, out_bits = (int(v) for v in item.LUTDescriptor)
        lut = np.asarray(item.LUTData, dtype=np.float64).ravel()
        entries = entries or 65536
        if len(lut) < entries:
            raise ValueError(f"VOI LUT has {len(lut)} entries, its descriptor says {entries}")
        index = np.clip(np.floor(x).astype(np.int64) - first, 0, entries - 1)
        y = lut[index] / float(2**out_bits - 1)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        y = _window(x, _first(ds.WindowCenter), _first(ds.WindowWidth),
                    str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR")
    else:
        y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    y = np.clip(y, 0.0, 1.0)
    if str(ds.PhotometricInterpretation).strip() == "MONOCHROME1":
        y = 1.0 - y
    return y.astype(np.float32)


def _first(value) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"WindowWidth {width} must be > 0")
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"WindowWidth {width} must be > 0")
        return (x - center) / width + 0.5
    if function != "LINEAR":
        raise ValueError(f"unknown VOILUTFunction {function!r}")
    if width < 1:
        raise ValueError(f"WindowWidth {width} must be >= 1 for LINEAR")
    if width == 1:  # a threshold at the centre
        return (x > center - 0.5).astype(np.float64)
    return (x - (center - 0.5)) / (width - 1) + 0.5
