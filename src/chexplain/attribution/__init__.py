"""Attribution methods beside LRP and the Grad-CAM family, behind one dispatch:

* ``integrated-gradients`` (Sundararajan et al. 2017), :mod:`.integrated_gradients`;
* ``smoothgrad`` (Smilkov et al. 2017; variants squared and vargrad), :mod:`.smoothgrad`;
* ``occlusion`` (Zeiler & Fergus 2014), :mod:`.occlusion`;
* ``scorecam`` (Wang et al. 2020) on Grad-CAM's layer, :mod:`.scorecam`.

(LayerCAM, a gradient weighting of that layer, lives with Grad-CAM in :mod:`chexplain.cam.gradcam`.)
Input-space methods return maps of the input's shape ((N, T, *x.shape[1:]) for several
targets); Score-CAM returns (N, H, W) maps like Grad-CAM.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import ChexplainError
from ..targets import TargetSpec
from . import integrated_gradients as _ig
from . import occlusion as _occ
from . import params as _params
from . import scorecam as _sc
from . import smoothgrad as _sg

#: name -> (function, accepted parameters, parameter check)
_METHODS: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...], Callable[..., None]]] = {
    _ig.NAME: (_ig.integrated_gradients, _ig.PARAMS, _ig.check),
    _sg.NAME: (_sg.smoothgrad, _sg.PARAMS, _sg.check),
    _occ.NAME: (_occ.occlusion, _occ.PARAMS, _occ.check),
    _sc.NAME: (_sc.scorecam, _sc.PARAMS, _sc.check),
}
METHODS = tuple(_METHODS)
#: The methods whose maps live in the input's space (summed over channels for 2-D maps).
INPUT_SPACE = (_ig.NAME, _sg.NAME, _occ.NAME)
#: References of the evaluation beside the methods: gradient × input and a random map
#: (:mod:`chexplain.evaluate.baselines`).
BASELINE_METHODS = ("gradient-x-input", "random")


def check_params(method: str, params: dict[str, Any]) -> None:
    """Refuse an unknown method, unknown or bad parameters, in one line, before any work."""
    if method not in _METHODS:
        raise ChexplainError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    _, accepted, check = _METHODS[method]
    _params.unknown(method, params, accepted)
    check(**params)


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: TargetSpec = None,
              classes: Sequence[int] | None = None, **params: Any) -> torch.Tensor:
    """``method``'s attribution of ``model`` at ``x`` for ``target`` / ``classes``."""
    check_params(method, params)
    return _METHODS[method][0](model, x, target=target, classes=classes, **params)


__all__ = ["METHODS", "INPUT_SPACE", "BASELINE_METHODS", "attribute", "check_params"]
