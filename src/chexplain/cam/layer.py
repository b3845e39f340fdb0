"""Grad-CAM's automatic target layer and the layout of a layer's output.

A Grad-CAM map needs a feature map A (N, K, *S) whose positions S are image positions. Networks
keep their features in three layouts, all handled by :class:`Layout`:

* channels first (N, C, *S): convolutional networks;
* channels last (N, *S, C): timm's Swin stages and norm, ConvNeXt's block internals;
* tokens (N, P + h*w, C): vision transformers; the P prefix tokens (class, distillation,
  register tokens) are dropped and the patch tokens reshaped row-major to the (h, w) grid.

A tensor is a map only if its spatial sizes are consistent with the input (about the same
downsampling factor on every axis) and it has more than one position: never a pooled 1x1 tensor,
never a channels-last tensor read as channels-first.

The default layer (:func:`default_layer`) is the last such map, in graph order, that feeds the
logits and whose positions the logits depend on (one backward pass of one sample, at trace time:
a random combination of the logits, gradient not identically zero at the positions). Stepping
back over an adaptive pooling keeps the map before a resampling pool (VGG). Per family:

* CNNs (ResNet, DenseNet, VGG, EfficientNet, MobileNet, ConvNeXt, RegNet, ...): the input of
  the global pooling (ConvNeXt: the last stage, not the 1x1 LayerNorm of its classifier;
  Inception-v3: ``Mixed_7c``, not the 1x1 dropout; timm MobileNetV3: the last block, not the
  1x1 ``conv_head``);
* class-token ViTs (torchvision ViT, timm ViT/DeiT): the tokens entering the last block's
  attention (its first LayerNorm's output): after the last attention only the class token
  reaches the head, so later tokens have zero gradient at every patch (pytorch-grad-cam's
  recommendation, ``blocks[-1].norm1``);
* Swin: the final norm's output, (N, H, W, C) permuted to channels first (torchvision's own
  ``permute``); MaxViT: the last block's output.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, UnsupportedModelError

_ADAPTIVE_POOLS = tuple(getattr(nn, f"Adaptive{k}Pool{d}d") for k in ("Avg", "Max") for d in (1, 2, 3))
_ADAPTIVE_FNS = {getattr(F, f"adaptive_{k}_pool{d}d") for k in ("avg", "max") for d in (1, 2, 3)}
_MAX_PREFIX = 16  # class + distillation + register tokens
_TOLERANCE = math.log(1.3)  # downsampling factors of the spatial axes agree within 30 %


class HookFreeTracer(fx.Tracer):
    """Traces through modules without running their forward hooks (e.g. pytorch-grad-cam's, which
    test ``output.requires_grad`` and would fail on a proxy); hooks on leaf modules still run."""

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        if not self.is_leaf_module(m, self.path_of_module(m)):
            forward = m.forward
        return super().call_module(m, forward, args, kwargs)


class Layout(NamedTuple):
    """How a layer's output holds a spatial map: kind 'first', 'last' or 'tokens' (+ prefix)."""

    kind: str
    prefix: int = 0

    def to_map(self, t: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """The map (N, C, *S) of output ``t``, for an input of spatial size ``spatial``."""
        if self.kind == "first":
            return t
        if self.kind == "last":
            return t.movedim(-1, 1)
        grid = token_grid(t.shape[1] - self.prefix, spatial)
        if grid is None:
            raise InputError(f"{t.shape[1] - self.prefix} tokens do not form a grid for an input of size {spatial}")
        return t[:, self.prefix :].transpose(1, 2).reshape(t.shape[0], t.shape[2], *grid)


def _consistent(sizes: tuple[int, ...], spatial: tuple[int, ...]) -> bool:
    """Spatial sizes with about one downsampling factor for every axis, and more than 1 position."""
    if len(sizes) != len(spatial) or math.prod(sizes) <= 1 or any(s < 1 or s > i for s, i in zip(sizes, spatial)):
        return False
    logs = [math.log(i / s) for s, i in zip(sizes, spatial)]
    return max(logs) - min(logs) <= _TOLERANCE


def token_grid(n: int, spatial: tuple[int, ...]) -> tuple[int, int] | None:
    """The (h, w) grid of ``n`` patch tokens for a 2-D input of size ``spatial``, or None."""
    if len(spatial) != 2 or n < 4:
        return None
    best: tuple[float, tuple[int, int]] | None = None
    for h in range(2, math.isqrt(n) + 1):
        for hh in {h, n // h}:
            if n % hh == 0 and _consistent((hh, n // hh), spatial):
                err = abs(math.log(spatial[0] / hh) - math.log(spatial[1] / (n // hh)))
                if best is None or err < best[0]:
                    best = (err, (hh, n // hh))
    return None if best is None else best[1]


def layout_of(shape: tuple[int, ...], spatial: tuple[int, ...], batch: int, strict: bool = True) -> Layout | None:
    """The layout of a tensor of ``shape`` in a model with inputs (batch, C, *spatial), or None.

    ``strict=False`` (a layer the caller named) reads any tensor of the input's rank as channels
    first when neither layout is consistent with the input, as Grad-CAM always has.
    """
    if not shape or shape[0] != batch:
        return None
    rank = len(spatial) + 2
    if len(shape) == rank:
        if _consistent(tuple(shape[2:]), spatial):
            return Layout("first")
        if _consistent(tuple(shape[1:-1]), spatial):
            return Layout("last")
        return None if strict else Layout("first")
    if len(shape) == 3 and len(spatial) == 2:
        for prefix in range(min(_MAX_PREFIX, shape[1] - 4) + 1):
            if token_grid(shape[1] - prefix, spatial) is not None:
                return Layout("tokens", prefix)
    return None


def _pooled(gm: fx.GraphModule, n: fx.Node) -> bool:
    if n.op == "call_module":
        return isinstance(gm.get_submodule(str(n.target)), _ADAPTIVE_POOLS)
    return n.op == "call_function" and n.target in _ADAPTIVE_FNS


class _Recorder(fx.Interpreter):
    """Runs the graph and keeps every node's output (one sample: small)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node) -> object:
        out = super().run_node(n)
        self.values[n] = out
        return out


def _head_chain(gm: fx.GraphModule, values: dict, from_input: set[fx.Node], steps: int = 8) -> list[torch.Tensor]:
    """The output, then the tensors it is computed from, back along the first input-derived argument.

    A zero-initialised head (torchvision's ViT) makes every gradient of the logits zero; the
    tensor before it still shows which positions the model reads."""
    node = next(n for n in reversed(gm.graph.nodes) if n.op == "output").all_input_nodes[0]
    chain = []
    while node is not None and len(chain) < steps:
        v = values.get(node)
        if isinstance(v, torch.Tensor) and v.requires_grad:
            chain.append(v)
        node = next((a for a in node.all_input_nodes if a in from_input), None)
    return chain


def default_layer(gm: fx.GraphModule, feeding: set[fx.Node], example: torch.Tensor,
                  whole_batch: bool = False) -> tuple[fx.Node, Layout]:
    """The last spatial map feeding the logits whose positions they depend on; see the module doc.
    Found on the first sample, or on the whole ``example`` for a graph traced for its batch size."""
    spatial = tuple(example.shape[2:])
    rec = _Recorder(gm)
    from_input: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder" or any(a in from_input for a in n.all_input_nodes):
            from_input.add(n)
    with torch.inference_mode(False), torch.enable_grad():
        x = (example if whole_batch else example[:1]).detach().clone().requires_grad_(True)
        try:
            out = rec.run(x)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"the model's forward failed on input of shape {tuple(example.shape)}: {text}") from exc
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise UnsupportedModelError("the model's output is not a tensor that depends on its input; pass layer='module.path'")
        cands: list[tuple[fx.Node, Layout, torch.Tensor]] = []
        for n in gm.graph.nodes:
            v = rec.values.get(n)
            if n in feeding and n in from_input and isinstance(v, torch.Tensor) and v.requires_grad and v.is_floating_point():
                lay = layout_of(tuple(v.shape), spatial, x.shape[0])
                if lay is not None:
                    cands.append((n, lay, v))
        tokens = [v.shape for _, lay, v in cands if lay.kind == "tokens"]
        if tokens:  # the residual stream (N, L, D): not q/k/v (N, L, 3D), MLP hidden units or heads (N, h, L, d)
            stream = tokens[-1]
            cands = [c for c in cands if (c[2].shape == stream if c[1].kind == "tokens" else stream[1] not in c[2].shape[1:])]
        if not cands:
            raise UnsupportedModelError("found no spatial feature map feeding the model's output; pass layer='module.path'")
        alive: list[tuple[fx.Node, Layout]] = []
        for score in _head_chain(gm, rec.values, from_input):
            weights = torch.randn(score.shape, generator=torch.Generator().manual_seed(0)).to(score)
            grads = torch.autograd.grad((score * weights).sum(), [v for _, _, v in cands], allow_unused=True, retain_graph=True)
            alive = [(n, la) for (n, la, _), g in zip(cands, grads) if g is not None and bool(la.to_map(g, spatial).ne(0).any())]
            if alive:
                break
    if not alive:
        raise UnsupportedModelError("the model's output depends on no spatial feature map; pass layer='module.path'")
    node, lay = alive[-1]
    known = dict(alive)
    while node.all_input_nodes and node.all_input_nodes[0] in known and _pooled(gm, node):
        node = node.all_input_nodes[0]
        lay = known[node]
    return node, lay
