"""Grad-CAM's feature map and logits in one forward: the model's graph cut at the layer.

:class:`Traced` traces the model with torch.fx (its submodules and weights shared, its own hooks
not run on the modules traced through) and cuts the graph after the layer: ``forward(x)`` returns
(A, logits) with A a fresh autograd leaf, so one backward gives dy/dA. A model torch.fx cannot
trace symbolically is traced per input shape (:mod:`chexplain.lrp.capture`). :class:`Hooked`
is the fallback for a module ``layer=``: temporary forward hooks, removed before returning.
"""

from __future__ import annotations

import difflib
import threading
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .checks import strip_squash, warn_hooks
from .layer import HookFreeTracer, Layout, default_layer
from ..errors import InputError, UnsupportedModelError
from ..lrp.capture import ShapeTracer, trace_shaped
from ..lrp.inplace import out_of_place
from ..lrp.snapshot import first_line as _first_line


def _grad_leaf(t: torch.Tensor) -> torch.Tensor:
    """Inserted after the target layer: a copy that starts the (only) autograd graph."""
    if not isinstance(t, torch.Tensor):
        raise InputError(f"the chosen layer outputs a {type(t).__name__}, not a feature map tensor; "
                         "pick a convolutional layer")
    torch.set_grad_enabled(True)  # the caller's `torch.no_grad()` block restores the mode
    return t.detach().clone().requires_grad_(True)



def _in_module(node: fx.Node, path: str) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    for value in stack.values():
        name = value[0] if isinstance(value, tuple) else str(value)
        if name == path or name.startswith(path + "."):
            return True
    return False


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, todo = set(), [node]
    while todo:
        for a in todo.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                todo.append(a)
    return seen


class _ShapedHookFreeTracer(HookFreeTracer, ShapeTracer):
    """For models torch.fx cannot trace symbolically: a trace per input shape (sizes answered
    from meta tensors, see :mod:`chexplain.lrp.capture`), without the model's hooks."""


class Traced:
    """The model's fx graph with the layer cut out as a leaf: forward(x) -> (features, logits)."""

    def __init__(self, model: nn.Module, layer: str | None, example: torch.Tensor | None) -> None:
        self.shape: tuple[int, ...] | None = None  # traced for inputs of this shape only
        try:
            graph = HookFreeTracer().trace(model)
        except Exception as exc:  # noqa: BLE001 - tracing fails in many ways
            if example is None:
                raise UnsupportedModelError(
                    f"torch.fx cannot trace {type(model).__name__} ({_first_line(exc)}); pass "
                    "layer='module.path' to explain it through module hooks"
                ) from exc
            try:
                graph = trace_shaped(model, example, _ShapedHookFreeTracer(example)).graph
            except UnsupportedModelError as refused:  # control flow on values
                raise UnsupportedModelError(f"{refused}; pass layer='module.path' to explain it "
                                            "through module hooks") from None
            self.shape = tuple(example.shape)
        gm = fx.GraphModule(model, graph)  # shares the model's submodules and weights
        out_of_place(gm)  # h.relu_() as h = h.relu(), so that the cut below reads what the model reads
        nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
        out = next(n for n in reversed(graph.nodes) if n.op == "output")
        strip_squash(gm, out)
        warn_hooks(model, {str(n.target) for n in nodes if n.op == "call_module"})
        feeding = _ancestors(out)
        self.layout: Layout | None = None  # None: read from the output's shape at each call
        if layer is None:
            assert example is not None
            node, self.layout = default_layer(gm, feeding, example, whole_batch=self.shape is not None)
        else:
            node = self._named(model, nodes, layer)
            if node not in feeding:
                raise InputError(f"layer {layer!r} does not feed the model's output")
        self.layer = self._name(node, nodes)
        with graph.inserting_after(node):
            leaf = graph.call_function(_grad_leaf, (node,))
        with graph.inserting_after(leaf):
            head = graph.call_function(torch.clone, (leaf,))
        node.replace_all_uses_with(head, delete_user_cb=lambda user: user is not leaf)
        out.args = ((leaf, out.args[0]),)
        graph.lint()
        gm.recompile()
        self.gm = gm

    def __call__(self, x: torch.Tensor) -> tuple[Any, Any]:
        return self.gm(x)

    def fits(self, x: torch.Tensor) -> bool:
        return self.shape is None or self.shape == tuple(x.shape)

    @staticmethod
    def _name(node: fx.Node, nodes: list[fx.Node]) -> str:
        """A name that layer= resolves back to this node: the outermost module it is the output of."""
        stack = node.meta.get("nn_module_stack") or {}
        paths = [v[0] if isinstance(v, tuple) else str(v) for v in stack.values()]
        calls = [n for n in nodes if n.op == "call_module" and n.target == node.target]
        for path in paths:
            inside = [n for n in nodes if _in_module(n, path)]
            outs = [n for n in inside if any(not _in_module(u, path) for u in n.users)]
            if outs == [node] and (path != node.target or len(calls) == 1):
                return path
        return node.name

    @staticmethod
    def _named(model: nn.Module, nodes: list[fx.Node], layer: str) -> fx.Node:
        calls = [n for n in nodes if n.op == "call_module" and n.target == layer]
        if len(calls) > 1:
            names = ", ".join(n.name for n in calls)
            raise InputError(f"module {layer!r} is called {len(calls)} times in forward; pick one call by its graph name: {names}")
        if calls:
            return calls[0]
        by_name = next((n for n in nodes if n.name == layer), None)
        modules = dict(model.named_modules())
        if layer in modules and layer:  # a module path wins over a graph node of the same name
            inside = [n for n in nodes if _in_module(n, layer)]
            outs = [n for n in inside if any(not _in_module(u, layer) for u in n.users)]
            if len(outs) == 1:
                return outs[0]
            if by_name is None:
                why = "is not used in forward" if not inside else f"has {len(outs)} outputs"
                raise InputError(f"module {layer!r} {why}; pass one of its submodules or a graph node name")
        if by_name is not None:
            return by_name
        names = sorted({n for n in modules if n} | {n.name for n in nodes})
        near = difflib.get_close_matches(layer, names, n=6, cutoff=0.4)
        hint = f"did you mean {', '.join(near)}?" if near else f"valid names include {', '.join(names[-6:])}"
        raise InputError(f"unknown layer {layer!r}; {hint}")


class Hooked:
    """Fallback for models torch.fx cannot trace: temporary forward hooks on a module layer."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            near = difflib.get_close_matches(layer, [n for n in modules if n], n=6, cutoff=0.4)
            raise InputError(f"unknown layer {layer!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))
        self.model, self.module, self.layer = model, modules[layer], layer

    def __call__(self, x: torch.Tensor) -> tuple[Any, Any]:
        leaves: list[torch.Tensor] = []
        owner = threading.get_ident()

        def hook(_m: nn.Module, _inp: Any, output: Any) -> Any:
            if threading.get_ident() != owner or not isinstance(output, torch.Tensor):
                return None
            leaves.append(_grad_leaf(output))
            return leaves[-1].clone()

        handle = self.module.register_forward_hook(hook)
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if len(leaves) != 1:
            raise InputError(f"module {self.layer!r} ran {len(leaves)} times with a tensor output; pick another layer")
        return leaves[0], logits
