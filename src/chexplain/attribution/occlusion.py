"""Occlusion (Zeiler & Fergus 2014, Sec. 4.2): a ``window`` × ``window`` patch over all
channels, moved by ``stride``, is replaced by ``baseline``; each pixel's attribution is the
mean, over the patches covering it, of the drop in the explained logit,

    R_i = 1/|W_i| Σ_{w ∈ W_i} (f_c(x) − f_c(x with patch w set to the baseline)),

computed by Captum's Occlusion. ``batch_size`` is a budget of images per forward pass, as for
Integrated Gradients: a pass holds max(1, batch_size // N) patches of each of the N samples
(Captum's ``perturbations_per_eval``), each batch given to the model in the channels-last layout (the values are Captum's; oneDNN convolves that
layout fastest, see :mod:`chexplain.models.memory_format`). Patches
start at 0, stride, 2·stride, ... and the last one is cut by the border, so that every pixel is
covered; the stride may not exceed the window (pixels would be skipped).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ChexplainError
from ..models.memory_format import channels_last
from ..targets import TargetSpec
from . import params as P
from .common import per_target, prepare

NAME = "occlusion"
PARAMS = ("window", "stride", "baseline", "batch_size")


def check(window: Any = 16, stride: Any = 8, baseline: Any = 0.0, batch_size: Any = 64,
          x: torch.Tensor | None = None) -> None:
    """Refuse bad parameters in one line naming them, before any work (the window against the
    input's spatial size when ``x`` is given)."""
    w = P.positive_int(NAME, "window", window)
    if P.positive_int(NAME, "stride", stride) > w:
        raise ChexplainError(f"{NAME}: parameter stride={stride} is larger than the window ({w}); "
                             "pixels between the patches would not be explained")
    P.real(NAME, "baseline", baseline)
    P.positive_int(NAME, "batch_size", batch_size)
    if x is not None and isinstance(x, torch.Tensor) and x.ndim >= 3 and w > min(x.shape[2:]):
        raise ChexplainError(f"{NAME}: parameter window={w} is larger than the image "
                             f"({'x'.join(map(str, x.shape[2:]))})")


def occlusion(model: nn.Module, x: torch.Tensor, target: TargetSpec = None,
              classes: Sequence[int] | None = None, window: int = 16, stride: int = 8,
              baseline: float = 0.0, batch_size: int = 64) -> torch.Tensor:
    """Occlusion map of ``model`` at ``x`` (x's shape, or (N, T, ...) for several targets);
    at most ``batch_size`` occluded images (at least one per sample) per forward pass."""
    from captum.attr import Occlusion

    check(window, stride, baseline, batch_size, x)
    x = P.check_input(x)
    prep = prepare(model, x, target, classes)
    occ = Occlusion(lambda batch: prep.model(channels_last(batch)))  # oneDNN's fastest layout
    spatial = x.ndim - 2
    shape = (x.shape[1],) + (int(window),) * spatial
    strides = (x.shape[1],) + (int(stride),) * spatial
    per_pass = max(1, int(batch_size) // x.shape[0])  # patches of each sample per pass

    def attribute(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return occ.attribute(x, sliding_window_shapes=shape, strides=strides,
                                 baselines=float(baseline), target=t.tolist(),
                                 perturbations_per_eval=per_pass).detach()

    return per_target(prep, attribute)
