"""The Grad-CAM family: Grad-CAM, Grad-CAM++, HiResCAM and LayerCAM on one gradient machinery.

With A (N, K, *S) the target layer's feature map and G = dy_c/dA the gradient of the
explained logit y_c:

* Grad-CAM (Selvaraju et al. 2017, Eq. 1-2): w_k = 1/Z sum_ij G_kij; map = ReLU(sum_k w_k A_k).
* Grad-CAM++ (Chattopadhay et al. 2018, Eq. 19 and 9): a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)
  (0 where the denominator is 0); w_k = sum_ij a_kij ReLU(G_kij); map = ReLU(sum_k w_k A_k).
* HiResCAM (Draelos & Carin 2020): map = ReLU(sum_k G_k * A_k) (element-wise, no averaging).
* LayerCAM (Jiang et al. 2021, Eq. 5-6): map = ReLU(sum_k ReLU(G_k) * A_k) (element-wise
  positive gradients as weights).

Score-CAM (chexplain.attribution.scorecam) reads the same layer through :func:`feature_map`.

The model is traced with torch.fx (its weights are shared, never copied or modified); the
target layer's output is cut out as a gradient leaf, so the layers before it run without
autograd and the backward pass stops at the layer: the cost is about one forward pass. All
targets come from that one forward pass (one short backward through the head per target).

The default layer is the last spatial feature map the logits depend on (chexplain.cam.layer
documents the rule and the choice per family): for CNNs the input of the global pooling (for
torchvision's DenseNet-121 the output of the functional final ReLU, not ``features.norm5``
before it), for class-token ViTs the tokens entering the last block's attention, for Swin the
final norm's output; token and channels-last outputs are read as (N, C, h, w) maps (class
tokens dropped), never a 1x1 or a channels-last tensor as channels-first. ``layer=`` takes a
module path ("layer4", "features.norm5"), a node name of the traced graph ("relu" is DenseNet's
final ReLU) or the module object itself. Models that torch.fx cannot trace symbolically (shape-
dependent branches) are traced per input shape (:mod:`chexplain.lrp.capture`); with a module
``layer=`` they also work through temporary forward hooks, removed before returning. The trace does not run the
model's own forward hooks on the modules it traces through (pytorch-grad-cam's, for example).
"""

from __future__ import annotations

import copy
import itertools
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .features import Hooked, Traced
from .layer import layout_of
from ..errors import ChexplainError, InputError, UnsupportedModelError
from ..models.memory_format import channels_last
from ..targets import TargetSpec, resolve_targets
from ..validate import check_batch

METHODS = ("gradcam", "gradcam++", "hirescam", "layercam")
_INTERP = {1: "linear", 2: "bilinear", 3: "trilinear"}
#: Half precision runs in float32 (a float32 copy of a half model), returned in the input's dtype.
_HALF = (torch.float16, torch.bfloat16)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _training(model: nn.Module) -> bool:
    return any(m.training for m in model.modules())


def _fingerprint(model: nn.Module) -> int:
    """Changes when a submodule, parameter or buffer object is replaced (weights are shared)."""
    ids: list[int] = []
    for m in model.modules():
        ids += [id(m), id(type(m)), *map(id, m._parameters.values()), *map(id, m._buffers.values())]
    return hash(tuple(ids))


def _check_input(x: Any, model: nn.Module) -> torch.Tensor:
    x = check_batch(x, "Grad-CAM")
    ref = next((p for p in itertools.chain(model.parameters(), model.buffers()) if p.is_floating_point()), None)
    half = x.dtype in _HALF or (ref is not None and ref.dtype in _HALF)
    if ref is not None and ref.dtype != x.dtype and not half:
        raise InputError(f"the input is {x.dtype} but the model is {ref.dtype}; convert one to the other")
    if ref is not None and ref.device != x.device:
        raise InputError(f"the input is on {x.device} but the model is on {ref.device}; move one to the other")
    return channels_last(x.detach())  # the layout oneDNN and cuDNN convolve fastest; same values


def _layer_path(model: nn.Module, layer: str | nn.Module | None) -> str | None:
    if layer is None or isinstance(layer, str):
        return layer
    if isinstance(layer, nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                if not name:
                    raise InputError("layer= is the model itself; pass one of its feature layers")
                return name
        raise InputError(f"layer= is a {type(layer).__name__} that is not a submodule of this model")
    raise InputError(f"layer= must be a module path (str) or a submodule, got {type(layer).__name__}")


def _cam(method: str, A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Class activation map (N, *S) before the ReLU, from features A and gradients G (N, K, *S)."""
    dims = tuple(range(2, A.ndim))
    if method == "hirescam":
        return (G * A).sum(1)
    if method == "layercam":  # Eq. 5-6
        return (G.clamp(min=0) * A).sum(1)
    if method == "gradcam":
        w = G.mean(dim=dims, keepdim=True)  # Eq. 1
    else:  # gradcam++: Eq. 19 (closed-form alpha), Eq. 9 (weights)
        g2 = G * G
        denom = 2.0 * g2 + A.sum(dim=dims, keepdim=True) * g2 * G
        nonzero = denom != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(denom))
        w = (alpha * G.clamp(min=0)).sum(dim=dims, keepdim=True)
    return (w * A).sum(1)  # Eq. 2 without the ReLU


def _build(model: nn.Module, layer: str | None, example: torch.Tensor | None) -> Traced | Hooked:
    try:
        return Traced(model, layer, example)
    except UnsupportedModelError:
        if layer is None or layer not in dict(model.named_modules()):
            raise
        return Hooked(model, layer)


_Held = tuple  # (fingerprint, Traced): a cached trace; never holds the model itself


def _engine_for(model: nn.Module, layer: str | None, x: torch.Tensor, held: _Held | None) -> tuple[Any, _Held | None]:
    """The engine for this call and what to cache; a training-mode model gets an eval copy,
    a half-precision model a float32 copy (not cached)."""
    if any(p.dtype in _HALF for p in itertools.chain(model.parameters(), model.buffers())):
        try:
            twin = copy.deepcopy(model).float().eval()
        except Exception as exc:  # noqa: BLE001
            raise UnsupportedModelError(f"cannot copy the half-precision model to float32 ({_first_line(exc)}); "
                                        "call model.float()") from exc
        return _build(twin, layer, x), held
    if _training(model):
        warnings.warn(
            "the model is in training mode; explaining an eval-mode copy (call model.eval() to explain it directly)",
            UserWarning,
            stacklevel=3,
        )
        try:
            twin = copy.deepcopy(model).eval()
        except Exception as exc:  # noqa: BLE001
            raise UnsupportedModelError(f"cannot copy the model to eval mode ({_first_line(exc)}); call model.eval()") from exc
        return _build(twin, layer, x), held
    fp = _fingerprint(model)
    if held is not None and held[0] == fp and held[1].fits(x):
        return held[1], held
    if layer is None:  # a forward that fails (wrong channels ...) says so in one line, before tracing
        try:
            with torch.no_grad():
                model(x[:1])
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InputError(f"the model's forward failed on input of shape {tuple(x.shape)}: {_first_line(exc)}") from None
    engine = _build(model, layer, x)
    return engine, ((fp, engine) if isinstance(engine, Traced) else None)


class GradCAM:
    """Reusable Grad-CAM / Grad-CAM++ / HiResCAM / LayerCAM explainer; traces the model once.

    ``GradCAM(model, method="gradcam", layer=None, relu=True, upsample=True)(x, target=...)``.
    One class per sample gives (N, *S), several (N, T, *S); S is the input's spatial size with
    ``upsample`` (bilinear, align_corners=False), the layer's otherwise. No normalisation.
    The weights are shared with ``model`` (updates are seen; a replaced submodule triggers a
    new trace); a model in training mode is explained as an eval-mode copy, with a warning.
    ``.layer`` names the layer used (known after the first call when ``layer`` is None).
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "gradcam",
        layer: str | nn.Module | None = None,
        relu: bool = True,
        upsample: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _check_method(method)
        _check_flags(method, relu, upsample)
        self.model, self.method, self.relu, self.upsample = model, method, bool(relu), bool(upsample)
        self._layer = _layer_path(model, layer)
        self.layer: str | None = self._layer
        self._held: _Held | None = None
        if self._layer is not None and not _training(model):  # unknown layers fail here, early
            engine = _build(model, self._layer, None)
            self.layer = engine.layer
            self._held = (_fingerprint(model), engine) if isinstance(engine, Traced) else None

    def __call__(self, x: torch.Tensor, target: TargetSpec = None, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Explain ``x`` (N, C, *spatial) for ``target`` / ``classes`` (see chexplain.targets)."""
        x = _check_input(x, self.model)
        dtype, x = x.dtype, (x.float() if x.dtype in _HALF else x)
        engine, self._held = _engine_for(self.model, self._layer, x, self._held)
        self.layer = engine.layer
        return _explain(engine, x, self.method, target, classes, self.relu, self.upsample).to(dtype)


def _check_flags(method: str, relu: Any, upsample: Any) -> None:
    """``relu`` and ``upsample`` are bools (``bool("no")`` would be True)."""
    for name, value in (("relu", relu), ("upsample", upsample)):
        if not isinstance(value, bool):
            raise ChexplainError(f"{method}: parameter {name}={value!r} ({type(value).__name__}) "
                                 "must be True or False")


def _check_method(method: str) -> None:
    if not isinstance(method, str) or method not in METHODS:
        raise ChexplainError(f"unknown Grad-CAM method {method!r}; use one of {', '.join(METHODS)}")


def _explain(
    engine: Callable, x: torch.Tensor, method: str, target: TargetSpec, classes: Sequence[int] | None, relu: bool, upsample: bool
) -> torch.Tensor:
    """One forward pass (autograd from the layer on), one backward through the head per target."""
    name = getattr(engine, "layer", "?")
    with torch.inference_mode(False):
        try:
            with torch.no_grad():  # the leaf switches autograd on after the target layer
                feats, logits = engine(x)
        except (ChexplainError, torch.OutOfMemoryError):
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InputError(f"the model's forward failed on input of shape {tuple(x.shape)}: {_first_line(exc)}") from exc
        if not isinstance(logits, torch.Tensor):
            raise UnsupportedModelError(f"the model returns {type(logits).__name__}; Grad-CAM needs a logits tensor (N, classes)")
        spatial = tuple(x.shape[2:])
        layout = None if not isinstance(feats, torch.Tensor) else (
            getattr(engine, "layout", None) or layout_of(tuple(feats.shape), spatial, x.shape[0], strict=False))
        if layout is None:
            raise InputError(
                f"layer {name!r} outputs shape {tuple(getattr(feats, 'shape', ()))}, not a spatial feature map "
                f"(N, C, *spatial) of rank {x.ndim} or patch tokens (N, L, C); pick a convolutional layer"
            )
        if not bool(torch.isfinite(logits.detach()).all()):
            raise InputError("the model's output holds NaN or infinite values for this input (NaN or "
                             "infinite weights?); there is nothing to explain")
        targets = resolve_targets(logits.detach(), target, classes)
        A, cams = layout.to_map(feats.detach(), spatial), []
        if A.dtype in (torch.float16, torch.bfloat16):
            A = A.float()
        for j in range(targets.count):
            onehot = torch.zeros_like(logits).scatter_(1, targets.index[:, j : j + 1], 1.0)
            G = None
            if logits.requires_grad:
                (G,) = torch.autograd.grad(logits, feats, onehot, retain_graph=j + 1 < targets.count, allow_unused=True)
            if G is None:
                raise InputError(f"layer {name!r} does not feed the model's output")
            cams.append(_cam(method, A, layout.to_map(G, spatial).to(A.dtype)))
        cam = torch.stack(cams, dim=1)  # (N, T, *s)
        if relu:
            cam = cam.clamp(min=0)
        if upsample and cam.shape[2:] != x.shape[2:]:
            n, t, s = cam.shape[0], cam.shape[1], cam.shape[2:]
            if len(s) not in _INTERP:
                raise InputError(f"cannot upsample a map with {len(s)} spatial axes; use upsample=False")
            cam = F.interpolate(cam.reshape(n * t, 1, *s), size=tuple(x.shape[2:]), mode=_INTERP[len(s)], align_corners=False)
            cam = cam.reshape(n, t, *x.shape[2:])
        return (cam[:, 0] if targets.squeeze else cam).to(dtype=x.dtype, device=x.device)


_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[str | None, _Held]]" = weakref.WeakKeyDictionary()


def explain_cam(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "gradcam",
    target: TargetSpec = None,
    classes: Sequence[int] | None = None,
    layer: str | nn.Module | None = None,
    relu: bool = True,
    upsample: bool = True,
    **unknown: Any,
) -> torch.Tensor:
    """Grad-CAM / Grad-CAM++ / HiResCAM / LayerCAM of ``model`` at ``x``; see :class:`GradCAM`.

    The trace is cached per model and layer (weakly: it dies with the model).
    """
    if unknown:
        raise ChexplainError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for {method!r}; Grad-CAM takes layer, relu, upsample"
        )
    _check_method(method)
    _check_flags(method, relu, upsample)
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = _layer_path(model, layer)
    x = _check_input(x, model)
    dtype, x = x.dtype, (x.float() if x.dtype in _HALF else x)
    per_model = _CACHE.setdefault(model, {})
    engine, held = _engine_for(model, path, x, per_model.get(path))
    if held is not None:
        per_model[path] = held
    return _explain(engine, x, method, target, classes, bool(relu), bool(upsample)).to(dtype)


@dataclass(frozen=True)
class FeatureMap:
    """The default (or chosen) Grad-CAM layer's output read as a map, and the logits.

    A: (N, K, *s) features, detached; logits: (N, classes), detached; layer: its name."""

    A: torch.Tensor
    logits: torch.Tensor
    layer: str


def feature_map(model: nn.Module, x: torch.Tensor, layer: str | nn.Module | None = None) -> FeatureMap:
    """One forward pass of an eval-mode ``model`` at ``x``, cut at the layer Grad-CAM uses
    (same default, same trace cache); for methods that weight the layer's channels otherwise."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = _layer_path(model, layer)
    x = _check_input(x, model)
    per_model = _CACHE.setdefault(model, {})
    engine, held = _engine_for(model, path, x, per_model.get(path))
    if held is not None:
        per_model[path] = held
    name = getattr(engine, "layer", "?")
    with torch.inference_mode(False), torch.no_grad():
        try:
            feats, logits = engine(x)
        except (ChexplainError, torch.OutOfMemoryError):
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InputError(f"the model's forward failed on input of shape {tuple(x.shape)}: {_first_line(exc)}") from exc
    spatial = tuple(x.shape[2:])
    layout = None if not isinstance(feats, torch.Tensor) else (
        getattr(engine, "layout", None) or layout_of(tuple(feats.shape), spatial, x.shape[0], strict=False))
    if layout is None or not isinstance(logits, torch.Tensor):
        raise InputError(f"layer {name!r} outputs shape {tuple(getattr(feats, 'shape', ()))}, not a spatial "
                         "feature map; pick a convolutional layer")
    return FeatureMap(layout.to_map(feats.detach(), spatial), logits.detach(), str(name))
