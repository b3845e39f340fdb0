"""Files that hold a compiled program rather than weights: TorchScript and ``torch.export``
archives. LRP attaches its rules to the layers of a Python module graph traced by ``torch.fx``;
these archives have none, so they are refused with the reason."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import UnsupportedModelError


def archive_kind(path: Path) -> str | None:
    """``torchscript``, ``export`` or None (not such an archive)."""
    if path.suffix.lower() == ".pt2":
        return "export"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(n.endswith("serialized_exported_program.json") or "/models/" in n and n.endswith(".json")
           for n in names):
        return "export"
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    return None


def refuse(path: Path, kind: str) -> UnsupportedModelError:
    if kind == "torchscript":
        return UnsupportedModelError(
            f"{path}: a TorchScript file cannot be explained: it holds a compiled program, not a "
            "Python module graph that LRP's tracer can follow; give the model's code and weights "
            "instead (--model timm:NAME|torchvision:NAME|FILE.py:FACTORY --weights FILE)")
    return UnsupportedModelError(
        f"{path}: a torch.export program cannot be explained: its graph holds ATen operations "
        "without the layers (Conv2d, BatchNorm, Linear ...) LRP's rules attach to; give the model's "
        "code and weights instead (--model FILE.py:FACTORY --weights FILE)")
