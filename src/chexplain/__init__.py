"""chexplain: Layer-wise Relevance Propagation and Grad-CAM for image classifiers.

Public API::

    R = chexplain.explain(model, x, method="lrp-epsilon", target=3)
    lrp = chexplain.LRP(model, composite="epsilon-plus-flat")
    R = lrp(x, classes=[0, 5, 13])
    m = chexplain.load_model("xrv:densenet121-res224-all")  # any model, see chexplain.zoo
"""

from .api import explain, methods
from .cam.gradcam import GradCAM
from .lrp.composites import PRESETS, Composite
from .lrp.engine import LRP
from .zoo import LoadedModel, load_model

__all__ = ["explain", "methods", "LRP", "GradCAM", "Composite", "PRESETS", "load_model",
           "LoadedModel"]
__version__ = "0.1.0"
