"""Baseline maps for the evaluation, and one callable giving 2-D maps for every method.

* ``"gradient-x-input"``: x ⊙ ∂f_c/∂x summed over channels (Shrikumar et al. 2016; equal to
  LRP-0 on ReLU networks without biases, Ancona et al. 2018) — the simplest gradient baseline;
* ``"random"``: i.i.d. uniform noise (seeded): what any metric should score at chance level.

:class:`Attributor` wraps these and every name of :mod:`chexplain.registry` behind one call,
``Attributor(model, method, normalization)(x, target) -> (N, H, W)``: LRP relevance summed
over the colour channels, the Grad-CAM family (LayerCAM, Score-CAM included) upsampled to
the input, Integrated Gradients, SmoothGrad and Occlusion summed over the colour channels
(their parameters checked when the Attributor is made, defaults otherwise). z^B bounds for ``dtd``
and ``epsilon-gamma-box`` come from the preprocessing's :class:`Normalization`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..attribution import BASELINE_METHODS
from ..errors import InputError
from ..registry import all_methods, family
from ..models.memory_format import channels_last

__all__ = ["BASELINE_METHODS", "Attributor", "all_methods", "gradient_x_input", "random_map",
           "params_record"]


def gradient_x_input(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """x ⊙ ∂f_t/∂x summed over channels: (N, H, W) for per-sample classes ``target`` (N,)."""
    t = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1, 1)
    with torch.inference_mode(False), torch.enable_grad():
        xg = channels_last(x.detach()).clone().requires_grad_(True)
        logits = model(xg)
        (grad,) = torch.autograd.grad(logits.gather(1, t).sum(), xg)
    return (grad * x.detach()).sum(1)


def random_map(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform noise in [0, 1) shaped (N, H, W), reproducible for a seed."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand((x.shape[0], *x.shape[2:]), generator=g, dtype=x.dtype).to(x.device)


def params_record(method_params: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``{method: {name: value}}`` as JSON for a run's fingerprint: a tensor by its shape and
    SHA-256, an image file given as Integrated Gradients' baseline by its path and SHA-256."""
    import hashlib

    from ..io import file_sha256

    def one(method: str, name: str, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous()
            return {"tensor": list(data.shape), "dtype": str(data.dtype),
                    "sha256": hashlib.sha256(data.numpy().tobytes()).hexdigest()}
        if method == "integrated-gradients" and name == "baseline" and isinstance(value, str) \
                and value not in ("zero", "blur"):
            return {"file": value, "sha256": file_sha256(value)}
        return value if isinstance(value, (bool, int, float, str)) or value is None else repr(value)

    return {m: {k: one(m, k, v) for k, v in sorted(p.items())}
            for m, p in sorted((method_params or {}).items())}


class Attributor:
    """2-D maps of ``method`` for ``model``, traced once: ``self(x, target) -> (N, H, W)``.

    ``target`` is one class per sample (N,) or an int; ``classes=[...]`` gives (N, T, H, W).
    ``traces``: a :class:`TraceCache` shared by the Attributors of several LRP methods, so that
    they trace and canonize a model once.
    """

    def __init__(self, model: torch.nn.Module, method: str, normalization: Any = None,
                 seed: int = 0, traces: "TraceCache | None" = None, **params: Any) -> None:
        from ..lrp.composites import PRESETS

        kind = family(method)
        self.model, self.method, self.params, self.seed = model, method, dict(params), seed
        self.traces = traces
        self.normalization = normalization
        self._calls = 0
        self._lrp = None
        self._cam = None
        self._baseline: tuple[Any, torch.Tensor] | None = None  # an image file's, read once per size
        if method in PRESETS:
            accepted = inspect.signature(PRESETS[method]).parameters
            self._needs_bounds = "low" in accepted and "low" not in params
        elif method == "scorecam":
            from ..attribution.scorecam import ScoreCAM

            self._cam = ScoreCAM(model, **params)
        elif kind == "cam":
            from ..cam.gradcam import GradCAM

            self._cam = GradCAM(model, method=method, **params)
        elif kind == "attribution":
            from ..registry import check_method_params

            check_method_params(method, params)
        self.kind = method if kind == "baseline" else kind

    def __call__(self, x: torch.Tensor, target: Any = None, classes: Any = None) -> torch.Tensor:
        if self.kind == "cam":
            return self._cam(x, target=target, classes=classes).detach()
        if self.kind == "attribution":
            from ..attribution import attribute

            if classes is not None:
                classes = [int(c) for c in classes]
            elif target is not None:
                target = torch.as_tensor(target, dtype=torch.long, device=x.device)
                target = target.expand(x.shape[0]) if target.ndim == 0 else target
            maps = attribute(self.model, x, self.method, target=target, classes=classes,
                             **self._input_params(x))
            return maps.sum(2 if classes is not None else 1).detach()
        if classes is not None:
            if self.kind == "lrp":  # one relevance pass carries every class
                return self._lrp_map(x, None, classes)
            maps = [self(x, torch.full((x.shape[0],), int(c), device=x.device)) for c in classes]
            return torch.stack(maps, 1)
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmax(1)
        t = torch.as_tensor(target, dtype=torch.long, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if self.kind == "gradient-x-input":
            return gradient_x_input(self.model, x, t).detach()
        if self.kind == "random":
            self._calls += 1
            return random_map(x, self.seed * 100003 + self._calls)
        return self._lrp_map(x, t)

    def _input_params(self, x: torch.Tensor) -> dict[str, Any]:
        """The parameters, with an image file given as Integrated Gradients' baseline read
        through the model's preprocessing at ``x``'s size."""
        baseline = self.params.get("baseline")
        if self.method != "integrated-gradients" or not isinstance(baseline, str) or \
                baseline in ("zero", "blur"):
            return self.params
        from ..data.images import Preprocess, get_normalization, read_image

        if self.normalization is None:
            raise InputError(f"{self.method}: an image file as baseline needs the model's "
                             "normalization")
        norm = get_normalization(self.normalization)
        if x.shape[-2] != x.shape[-1]:
            raise InputError(f"{self.method}: an image file as baseline needs square inputs, "
                             f"got {tuple(x.shape[-2:])}")
        key = (int(x.shape[-1]), x.device, x.dtype)
        if self._baseline is None or self._baseline[0] != key:
            image = Preprocess(key[0], None, norm)(read_image(baseline))
            self._baseline = (key, image[None].to(x.device, x.dtype))
        return dict(self.params, baseline=self._baseline[1])

    def _lrp_map(self, x: torch.Tensor, t: torch.Tensor | None, classes: Any = None) -> torch.Tensor:
        from ..lrp.engine import LRP

        params = dict(self.params)
        if self._needs_bounds:
            if self.normalization is None:
                raise InputError(f"{self.method} needs the input bounds: pass the preprocessing's "
                                 "normalization")
            from ..data.images import get_normalization

            low, high = get_normalization(self.normalization).bounds()  # one value per channel
            params.update(low=torch.tensor(low), high=torch.tensor(high))
        if self._lrp is None:
            self._lrp = (LRP(self.model, composite=self.method, **params) if self.traces is None
                         else self.traces.lrp(self.model, self.method, params))
        if classes is not None:
            return self._lrp(x, classes=[int(c) for c in classes]).sum(2).detach()
        return self._lrp(x, target=t).sum(1).detach()


class TraceCache:
    """The LRP explainer of the model seen last, from which explainers of other composites on
    the same model are made as siblings (one trace and canonization, :meth:`chexplain.LRP.sibling`).

    The model counts as the same while it is the same object with the same tensors at the same
    in-place versions (every in-place change, re-initialisation included, raises a tensor's
    version): a model changed in place, as by the randomisation test, is traced anew."""

    def __init__(self) -> None:
        self._model: torch.nn.Module | None = None
        self._key: tuple = ()
        self._lrp: Any = None

    def lrp(self, model: torch.nn.Module, method: str, params: dict[str, Any]) -> Any:
        from ..lrp.engine import LRP

        key = tuple((id(t), t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))
        if model is self._model and key == self._key:
            return self._lrp.sibling(method, **params)
        self._model, self._key, self._lrp = model, key, LRP(model, composite=method, **params)
        return self._lrp
