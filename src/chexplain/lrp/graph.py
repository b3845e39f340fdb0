"""Trace a model with torch.fx into a list of nodes, each holding an operation with a rule.

Tracing sees functional operations (``F.relu``, ``F.adaptive_avg_pool2d``, ``torch.cat``,
residual ``+``, ``torch.flatten``) that module hooks miss. Every node must map to a supported
operation; anything else raises :class:`UnsupportedModelError` before any computation, naming
the operation and the module path where it occurs.
"""

from __future__ import annotations

import builtins
import copy
import operator
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnsupportedModelError
from . import ops, registry
from .ops import generic
from .inplace import out_of_place
from .snapshot import SymbolicTraceError, first_line as _first_line, snapshot

_SQUASH_FN = {torch.sigmoid, F.sigmoid, torch.softmax, F.softmax, F.log_softmax, torch.log_softmax}
_SQUASH_MOD = (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)


@dataclass
class Node:
    """One operation of the traced model.

    name: unique fx node name; op: the operation (None for the input);
    inputs: names of the nodes whose values are passed to ``op.forward``, in order;
    path: module path where it occurs (for rules by name and for error messages);
    users: names of the nodes that consume its value.
    """

    name: str
    op: ops.Op | None
    inputs: list[str]
    path: str
    users: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "input" if self.op is None else self.op.kind


@dataclass
class Graph:
    """Nodes in topological order; ``output`` names the node whose value is the logits."""

    nodes: list[Node]
    output: str

    def __post_init__(self) -> None:
        self.relink()

    def relink(self) -> None:
        self.by_name = {n.name: n for n in self.nodes}
        for n in self.nodes:
            n.users = []
        for n in self.nodes:
            for i in n.inputs:
                if n.name not in self.by_name[i].users:
                    self.by_name[i].users.append(n.name)

    def first_layer(self) -> str | None:
        """Name of the first dense or convolutional layer (the input layer of the composite's
        ``first`` rule). A BatchNorm (per-channel affine) before it is skipped: canonization
        merges it into that layer, which keeps its name."""
        return next((n.name for n in self.nodes if isinstance(n.op, ops.LinearOp)
                     and not isinstance(n.op, ops.AffineOp)), None)

    def copy(self) -> "Graph":
        nodes = [Node(n.name, copy.copy(n.op), list(n.inputs), n.path) for n in self.nodes]
        return Graph(nodes, self.output)


def trace(model: nn.Module) -> Graph:
    """Trace a private copy of ``model`` (:func:`snapshot.snapshot`) symbolically into a :class:`Graph`."""
    clone = snapshot(model)
    try:
        tracer = fx.Tracer(autowrap_functions=registry.autowrap_functions())
        gm = fx.GraphModule(clone, tracer.trace(clone, concrete_args=registry.optional_args(clone)),
                            type(clone).__name__)
    except UnsupportedModelError:  # a substitute's own refusal (an attention mask)
        raise
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds
        raise SymbolicTraceError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {_first_line(exc)}); "
            "LRP needs a forward without data-dependent control flow"
        ) from None
    return convert(gm)


def convert(gm: fx.GraphModule) -> Graph:
    """The :class:`Graph` of a traced copy (in-place methods made out-of-place, graph passes run)."""
    out_of_place(gm)  # h.relu_() as h = h.relu(): the in-place node's result replaces later uses
    registry.rewrite(gm)
    return _convert(gm)




def _path(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        return list(stack.values())[-1][0]
    return ""


def _where(node: fx.Node) -> str:
    path = _path(node)
    return f"at '{path}'" if path else "in the model's top-level forward"


def _describe(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(node.target)).__name__
    target = node.target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{module}.{name}" if module and module != "builtins" else name


def _refs(node: fx.Node) -> list[fx.Node]:
    refs: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), refs.append)
    return refs


def _bound(node: fx.Node, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called with the node's args, node references replaced by the values passed in."""

    def call(*values: Any) -> Any:
        it = iter(values)
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda _: next(it))
        return fn(*args, **kwargs)

    return call


def _convert(gm: fx.GraphModule) -> Graph:
    registry.load()
    nodes: list[Node] = []
    meta: set[str] = set()
    consts: dict[str, torch.Tensor] = {}
    virtual: dict[str, Any] = {}
    squash: dict[str, fx.Node] = {}
    producers: dict[str, ops.Op | None] = {}
    output = None
    for node in gm.graph.nodes:
        if node.op == "placeholder" and node.args:  # an optional argument traced at its default
            meta.add(node.name)
            nodes.append(Node(node.name, ops.MetaOp(lambda v=node.args[0]: v), [], ""))
            continue
        if node.op == "placeholder":
            if any(n.op is None for n in nodes):
                raise UnsupportedModelError("the model's forward takes several inputs; LRP explains one input tensor")
            nodes.append(Node(node.name, None, [], ""))
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise UnsupportedModelError(
                    f"the model returns {type(out).__name__}; LRP needs a single tensor of logits")
            output = out.name
            continue
        if node.op == "get_attr":  # a parameter or buffer read in forward: a constant
            value = _attr(gm, node.target)
            if isinstance(value, torch.Tensor):
                consts[node.name] = value.detach().clone()
                nodes.append(Node(node.name, generic.ConstOp(consts[node.name]), [], _path(node)))
            else:
                meta.add(node.name)
                nodes.append(Node(node.name, ops.MetaOp(lambda v=value: v), [], _path(node)))
            continue
        refs = _refs(node)
        for r in refs:
            if r.name in virtual and not (node.op == "call_function" and node.target is operator.getitem):
                raise UnsupportedModelError(
                    f"{_describe(node)} {_where(node)} uses the tuple returned by {_describe(virtual[r.name][0])}; "
                    "chexplain supports indexing it")
        if refs and all(r.name in consts for r in refs):
            fn = gm.get_submodule(node.target) if node.op == "call_module" else _target_fn(node)
            with torch.no_grad():  # constant folding (Swin v2's position-bias MLP on its coordinate table)
                value = _bound(node, fn)(*(consts[r.name] for r in refs))
            if isinstance(value, torch.Tensor):
                consts[node.name] = value.detach()
                nodes.append(Node(node.name, generic.ConstOp(value.detach()), [], _path(node)))
                continue
            meta.add(node.name)  # a non-tensor read from constants (a parameter's dtype, read at run time)
            nodes.append(Node(node.name, ops.MetaOp(_bound(node, fn)), [r.name for r in refs], _path(node)))
            continue
        if _is_squash(gm, node):
            squash[node.name] = node
        if refs and all(r.name in meta or r.name in consts for r in refs) and any(r.name in meta for r in refs) \
                or _is_meta(node, refs, meta):  # sizes, and statistics held constant (a norm) with parameters
            meta.add(node.name)
            op = MetaModuleOp(node, gm.get_submodule(node.target)) if node.op == "call_module" else \
                ops.MetaOp(_bound(node, _target_fn(node)))
            nodes.append(Node(node.name, op, [r.name for r in refs],
                              _path(node)))
            continue
        ctx = registry.Context(node, gm, refs, _path(node), meta, consts, producers, virtual)
        converter = registry.lookup(ctx)
        op = converter(ctx) if converter is not None else None
        inputs = [r.name for r in refs]
        if isinstance(op, tuple):  # (op, input names): a converter that rewires its inputs
            op, inputs = op
        if op is None and node.name in squash:
            op = SquashOp()  # allowed only as the model's last operation, see _check_squash_only_at_end
        if op is None:
            raise UnsupportedModelError(
                f"unsupported operation {_describe(node)} {_where(node)}: chexplain has no relevance rule for it")
        if getattr(op, "virtual", False):  # a tuple (chunk, split): only its items become nodes
            virtual[node.name] = (node, op, inputs)
            continue
        tensor_inputs = [i for i in inputs if i not in meta and i not in consts]
        if not (isinstance(op, (ops.ReshapeOp, ops.AddOp, ops.CatOp)) or getattr(op, "multi_input", False)) \
                and len(tensor_inputs) != 1:
            raise UnsupportedModelError(
                f"{_describe(node)} {_where(node)} takes {len(tensor_inputs)} tensors; chexplain supports it on one")
        producers[node.name] = op
        nodes.append(Node(node.name, op, inputs, _path(node)))
    assert output is not None
    if output in virtual or output in consts:
        raise UnsupportedModelError("the model's output does not depend on its input as one tensor of logits")
    output = _strip_squash(nodes, output, squash)
    graph = _prune(Graph(nodes, output))
    _check_squash_only_at_end(graph, squash)
    return graph


class MetaModuleOp(ops.MetaOp):
    """A module applied to values without relevance (EdgeNeXt's Fourier position encoding, computed
    from the input's shape): evaluated, cast with the graph."""

    def __init__(self, node: fx.Node, module: nn.Module) -> None:
        super().__init__(_bound(node, module))
        self.node, self.module = node, module

    def to(self, dtype, device):
        module = copy.deepcopy(self.module).to(device=device)
        module = module.to(dtype=dtype) if any(p.is_floating_point() for p in module.parameters()) else module
        return MetaModuleOp(self.node, module)


class SquashOp(ops.IdentityOp):
    """A final sigmoid/softmax, skipped (the logits before it are explained)."""


def _attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _is_squash(gm: fx.GraphModule, node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _SQUASH_FN) or (
        node.op == "call_method" and node.target in ("sigmoid", "softmax", "log_softmax")) or (
        node.op == "call_module" and isinstance(gm.get_submodule(node.target), _SQUASH_MOD))


def _prune(graph: Graph) -> Graph:
    """Drop the nodes the output does not depend on (assertions, constants merged into ops)."""
    live = _live(graph)
    kept = [n for n in graph.nodes if n.name in live or n.op is None]
    return graph if len(kept) == len(graph.nodes) else Graph(kept, graph.output)


def token_dense(graph: Graph, shapes: dict[str, torch.Size]) -> Graph:
    """Dense layers applied to (N, ..., C) inputs become :class:`ops.TokenDenseOp` (in place)."""
    for node in graph.nodes:
        if type(node.op) is ops.DenseOp and len(shapes[node.inputs[0]]) > 2:
            node.op = ops.TokenDenseOp(node.op.weight, node.op.bias)
    return graph


def _target_fn(node: fx.Node) -> Callable[..., Any]:
    if node.op == "call_method":
        return lambda obj, *a, **k: getattr(obj, node.target)(*a, **k)
    return node.target


def _is_meta(node: fx.Node, refs: list[fx.Node], meta: set[str]) -> bool:
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and node.target is builtins.getattr and node.args[1] in (
            "shape", "ndim", "device", "dtype", "is_cuda", "requires_grad", "layout"):
        return True
    return bool(refs) and node.op == "call_function" and node.target is operator.getitem and refs[0].name in meta


def _strip_squash(nodes: list[Node], output: str, squash: dict[str, fx.Node]) -> str:
    by_name = {n.name: n for n in nodes}
    while output in squash:
        fxn = squash[output]
        warnings.warn(
            f"the model ends with {_describe(fxn)} {_where(fxn)}: chexplain explains the logits before it",
            stacklevel=3)
        output = by_name[output].inputs[0]
    return output


def _check_squash_only_at_end(graph: Graph, squash: dict[str, fx.Node]) -> None:
    live = _live(graph)
    for name, fxn in squash.items():
        if name in live and isinstance(graph.by_name[name].op, SquashOp):
            raise UnsupportedModelError(
                f"unsupported operation {_describe(fxn)} {_where(fxn)}: a sigmoid/softmax inside the model has no "
                "relevance rule (only a final one is skipped)")


def _live(graph: Graph) -> set[str]:
    live, stack = set(), [graph.output]
    while stack:
        name = stack.pop()
        if name not in live:
            live.add(name)
            stack.extend(graph.by_name[name].inputs)
    return live
