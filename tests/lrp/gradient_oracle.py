"""An oracle for LRP-0, written independently of chexplain's graph: gradient × input of a copy
of the model in which

- every activation f (SiLU, GELU, Hardswish, ReLU6, ELU, Mish, ...) has its derivative replaced
  by f(x)/x (so relevance passes it unchanged: R_in = x · s_in = f(x) · s_out = R_out),
- every sigmoid/hard-sigmoid is a gate whose value is detached (a constant weighting),
- LayerNorm/GroupNorm divide by a detached σ (CP-LRP).

On a bias-free network LRP-0 equals this modified gradient × input exactly; for ReLU networks
it is the plain gradient × input (ReLU's f(x)/x is its derivative).
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import timm.layers.activations as _timm_act
    _TIMM_GATES = (_timm_act.Sigmoid, _timm_act.HardSigmoid)
    _TIMM_ACTS = (_timm_act.GELU, _timm_act.Swish, _timm_act.HardSwish, _timm_act.Mish, _timm_act.GELUTanh)
except ImportError:  # pragma: no cover - timm is a test dependency
    _TIMM_GATES, _TIMM_ACTS = (), ()

GATES = (nn.Sigmoid, nn.Hardsigmoid) + _TIMM_GATES
ACTIVATIONS = (nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardtanh, nn.ELU, nn.CELU, nn.SELU, nn.Mish, nn.Softplus,
               nn.Tanh) + _TIMM_ACTS


class RatioGradient(nn.Module):
    """f(x) with d/dx replaced by f(x)/x: x · stopgrad(f(x)/x) (0 where x = 0)."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x):
        y = self.act(x)
        ratio = torch.where(x != 0, y / torch.where(x != 0, x, torch.ones_like(x)), torch.zeros_like(x))
        return x * ratio.detach()


class DetachedGate(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x):
        return self.act(x).detach()


def _swap(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, GATES):
            setattr(module, name, DetachedGate(child))
        elif isinstance(child, ACTIVATIONS):
            setattr(module, name, RatioGradient(child))
        else:
            _swap(child)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(-len(normalized_shape), 0))
    centred = x - x.mean(dims, keepdim=True)
    sigma = (x.var(dims, unbiased=False, keepdim=True) + eps).sqrt().detach()
    y = centred / sigma
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    g = x.reshape(x.shape[0], num_groups, -1)
    sigma = (g.var(-1, unbiased=False, keepdim=True) + eps).sqrt().detach()
    y = ((g - g.mean(-1, keepdim=True)) / sigma).view_as(x)
    view = (1, -1) + (1,) * (x.ndim - 2)
    y = y if weight is None else y * weight.view(view)
    return y if bias is None else y + bias.view(view)


@contextlib.contextmanager
def _detached_norms():
    saved = F.layer_norm, F.group_norm
    F.layer_norm, F.group_norm = _layer_norm, _group_norm
    try:
        yield
    finally:
        F.layer_norm, F.group_norm = saved


def modified_gradient_times_input(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(modified ∂f_target/∂x) ⊙ x for each sample's ``target`` (N,)."""
    clone = copy.deepcopy(model).eval()
    _swap(clone)
    x = x.detach().clone().requires_grad_(True)
    with _detached_norms():
        out = clone(x)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return grad * x.detach()
