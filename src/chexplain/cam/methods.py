"""The names of the Grad-CAM family, without PyTorch."""

#: Methods giving class activation maps (N, H, W) of a feature layer (Score-CAM included).
CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "layercam", "scorecam")
