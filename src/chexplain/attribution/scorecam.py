"""Score-CAM (Wang et al. 2020, Eq. 4-6 and Algorithm 1): each channel A_k of the Grad-CAM
layer, upsampled to the input and min-max scaled to [0, 1] (H_k), masks the input; its weight
is the score of the masked input,

    α_k^c = softmax(f(x ∘ H_k))_c      (``weights="probability"``, the paper's),
    L^c   = ReLU(Σ_k α_k^c A_k),

computed at the layer's resolution and upsampled to the input like Grad-CAM. Channels that
are constant (H_k undefined) get weight 0, as in the authors' code. ``weights="channel-softmax"``
is pytorch-grad-cam's variant: α^c = softmax_k(f_c(x ∘ H_k)) over the channels, of the logits,
constant channels masking with 0. The layer is Grad-CAM's (:func:`chexplain.cam.gradcam.feature_map`);
every target comes from the same K masked passes per sample, ``batch_size`` masks at a time.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..targets import TargetSpec, resolve_targets
from . import params as P
from .common import eval_model

NAME = "scorecam"
WEIGHTS = ("probability", "channel-softmax")
PARAMS = ("layer", "batch_size", "weights", "relu", "upsample")
_INTERP = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check(layer: Any = None, batch_size: Any = 32, weights: Any = "probability",
          relu: Any = True, upsample: Any = True) -> None:
    """Refuse bad parameters in one line naming them, before any work."""
    from ..cam.gradcam import _check_flags

    P.positive_int(NAME, "batch_size", batch_size)
    P.choice(NAME, "weights", weights, WEIGHTS)
    _check_flags(NAME, relu, upsample)


def _masks(A: torch.Tensor, size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """H (N, K, *size) in [0, 1] and which channels vary (N, K)."""
    H = F.interpolate(A, size=size, mode=_INTERP[len(size)], align_corners=False) if A.shape[2:] != size else A
    flat = H.flatten(2)
    lo, hi = flat.amin(2), flat.amax(2)
    varies = hi > lo
    span = torch.where(varies, hi - lo, torch.ones_like(hi))
    shape = (*lo.shape, *([1] * len(size)))
    H = torch.where(varies.view(shape), (H - lo.view(shape)) / span.view(shape), torch.zeros_like(H))
    return H, varies


def scorecam(model: nn.Module, x: torch.Tensor, target: TargetSpec = None,
             classes: Sequence[int] | None = None, layer: str | nn.Module | None = None,
             batch_size: int = 32, weights: str = "probability", relu: bool = True,
             upsample: bool = True) -> torch.Tensor:
    """Score-CAM of ``model`` at ``x``: (N, *S) for one class per sample, (N, T, *S) for
    several, S the input's spatial size with ``upsample``, the layer's otherwise."""
    from ..cam.gradcam import feature_map

    check(layer, batch_size, weights, relu, upsample)
    x = P.check_input(x)
    net = eval_model(model)
    fm = feature_map(net, x, layer)
    targets = resolve_targets(fm.logits, target, classes)
    A = fm.A.to(x.dtype)
    spatial = tuple(x.shape[2:])
    if len(spatial) not in _INTERP:
        from ..errors import InputError

        raise InputError(f"Score-CAM needs 1 to 3 spatial axes, got {len(spatial)}")
    H, varies = _masks(A, spatial)
    N, K = A.shape[:2]
    scores = torch.empty(N, K, targets.count, dtype=x.dtype, device=x.device)
    with torch.inference_mode(False), torch.no_grad():
        for n in range(N):
            t = targets.index[n]
            for k0 in range(0, K, int(batch_size)):
                masked = x[n : n + 1] * H[n, k0 : k0 + int(batch_size)].unsqueeze(1)
                out = net(masked)
                if weights == "probability":
                    out = out.softmax(1)
                scores[n, k0 : k0 + masked.shape[0]] = out[:, t].to(x.dtype)
    if weights == "probability":
        alpha = scores * varies.unsqueeze(2)
    else:
        alpha = scores.softmax(1)
    cam = torch.einsum("nkt,nk...->nt...", alpha, A)
    if relu:
        cam = cam.clamp(min=0)
    if upsample and cam.shape[2:] != x.shape[2:]:
        t_count, s = cam.shape[1], cam.shape[2:]
        cam = F.interpolate(cam.reshape(N * t_count, 1, *s), size=spatial, mode=_INTERP[len(s)],
                            align_corners=False).reshape(N, t_count, *spatial)
    return (cam[:, 0] if targets.squeeze else cam).detach()


class ScoreCAM:
    """Reusable Score-CAM: ``ScoreCAM(model, layer=None, ...)(x, target=..., classes=...)``."""

    def __init__(self, model: nn.Module, **params: Any) -> None:
        P.unknown(NAME, params, PARAMS)
        check(**params)
        self.model, self.params = model, params

    def __call__(self, x: torch.Tensor, target: TargetSpec = None,
                 classes: Sequence[int] | None = None) -> torch.Tensor:
        return scorecam(self.model, x, target=target, classes=classes, **self.params)
