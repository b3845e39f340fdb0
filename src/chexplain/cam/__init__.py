"""The Grad-CAM family (Selvaraju et al. 2017; Grad-CAM++, HiResCAM, LayerCAM; Score-CAM in
:mod:`chexplain.attribution.scorecam`): the layer's choice (:mod:`.layer`), the feature map
and logits in one forward (:mod:`.features`), the maps (:mod:`.gradcam`) and their checks
(:mod:`.checks`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy_exports
from .methods import CAM_METHODS

if TYPE_CHECKING:
    from .gradcam import GradCAM, explain_cam

# imported on first use: the method names are read without PyTorch
__getattr__ = _lazy_exports(__name__, {"GradCAM": ".gradcam", "explain_cam": ".gradcam"})
__all__ = ["CAM_METHODS", "GradCAM", "explain_cam"]
