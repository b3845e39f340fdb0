"""The Grad-CAM family (Selvaraju et al. 2017; Grad-CAM++, HiResCAM, LayerCAM; Score-CAM in
:mod:`chexplain.attribution.scorecam`): the layer's choice (:mod:`.layer`), the feature map
and logits in one forward (:mod:`.features`), the maps (:mod:`.gradcam`) and their checks
(:mod:`.checks`)."""

from .gradcam import CAM_METHODS, GradCAM, explain_cam

__all__ = ["CAM_METHODS", "GradCAM", "explain_cam"]
