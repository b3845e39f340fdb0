"""chexplain: Layer-wise Relevance Propagation and Grad-CAM for image classifiers.

Public API::

    R = chexplain.explain(model, x, method="lrp-epsilon", target=3)
    lrp = chexplain.LRP(model, composite="epsilon-plus-flat")
    R = lrp(x, classes=[0, 5, 13])
    m = chexplain.load_model("xrv:densenet121-res224-all")  # any model, see chexplain.zoo

The names are imported on first use (PEP 562), so that ``import chexplain`` and commands that
need no model (``chexplain view``) do not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the names below, for readers and type checkers
    from .api import explain, methods
    from .cam.gradcam import GradCAM
    from .lrp.composites import PRESETS, Composite
    from .lrp.engine import LRP
    from .zoo import LoadedModel, load_model


def _lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562): ``exports`` maps each name to the submodule
    (relative to ``package``) that defines it, imported when the name is first read."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__


_EXPORTS = {"explain": ".api", "methods": ".api", "LRP": ".lrp.engine", "GradCAM": ".cam.gradcam",
            "Composite": ".lrp.composites", "PRESETS": ".lrp.composites", "load_model": ".zoo",
            "LoadedModel": ".zoo"}
__getattr__ = _lazy_exports(__name__, _EXPORTS)
__all__ = ["explain", "methods", "LRP", "GradCAM", "Composite", "PRESETS", "load_model", "LoadedModel"]
__version__ = "0.1.0"
