"""The forward pass over a traced graph and what the relevance pass learns from it before it
starts: every node's value, its shape, which values are non-negative by construction, which
ReLUs may overwrite their input and which nodes hand back relevance tensors of their own."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import InputError, UnsupportedModelError
from . import ops
from .graph import Graph, Node

Tensor = torch.Tensor


def shapes(graph: Graph, x: Tensor) -> dict[str, torch.Size]:
    """Output shape of every node for inputs shaped like ``x`` (on the meta device; the batch size
    matters to graphs captured per input shape)."""
    try:
        meta = cast_graph(graph, torch.float32, torch.device("meta"))
        values = forward_values(meta, torch.empty(x.shape, dtype=torch.float32, device="meta"))
    except InputError:  # an op without meta support: measure on a real zero input
        values = forward_values(cast_graph(graph, torch.float32, torch.device("cpu")),
                                torch.zeros(x.shape, dtype=torch.float32))
    return {k: v.shape for k, v in values.items() if isinstance(v, Tensor)}


def nonnegative_nodes(graph: Graph) -> set[str]:
    """Nodes whose values are ≥ 0 by construction (ReLU outputs and what pools or joins them),
    so that rules can skip the x⁻ part without looking at the values."""
    keep = (ops.IdentityOp, ops.ReshapeOp, ops.PoolOp, ops.MaxPoolOp, ops.CatOp, ops.AddOp)
    out: set[str] = set()
    for node in graph.nodes:
        op = node.op
        if isinstance(op, ops.ActivationOp) and op.name == "relu":
            out.add(node.name)
        elif isinstance(op, ops.ThresholdReLUOp) and op.nonnegative:
            out.add(node.name)
        elif getattr(op, "nonnegative_output", False):
            out.add(node.name)
        elif (isinstance(op, keep) or getattr(op, "preserves_sign", False)) and node.inputs and all(
                i in out for i in node.inputs if graph.by_name[i].kind not in ("meta", "const")):
            out.add(node.name)
    return out


def forward_values(graph: Graph, x: Tensor, hook: Callable[[Node, list], Tensor | None] | None = None) -> dict[str, Any]:
    """Every node's value; ``hook(node, inputs)`` may supply a node's output instead of its op."""
    values: dict[str, Any] = {graph.nodes[0].name: x}
    n = x.shape[0]
    for node in graph.nodes[1:]:
        try:
            inputs = [values[i] for i in node.inputs]
            out = hook(node, inputs) if hook is not None else None
            if out is None:
                out = node.op.forward(*inputs)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            where = f"'{node.path}'" if node.path else f"'{node.name}' (top-level forward)"
            text = str(exc).strip().splitlines()
            raise InputError(f"an input of shape {tuple(x.shape)} does not fit layer {where}: "
                             f"{text[0] if text else type(exc).__name__}") from None
        # a multiple of the batch: the windows of each sample (Swin's (B·nW, L, C)), made by a reshape
        # that keeps each sample's entries together (the converters refuse ops that move the batch axis)
        if isinstance(out, Tensor) and node.kind not in ("meta", "const") and (
                out.ndim == 0 or out.shape[0] % n or _moves_batch(node, inputs, out)):
            what = getattr(node.op, "description", None) or type(node.op).__name__
            raise UnsupportedModelError(f"{what} at '{node.path or node.name}' changes the batch dimension "
                                        f"({n} -> {tuple(out.shape)}), mixing the samples of a batch; LRP needs "
                                        "per-sample operations")
        values[node.name] = out
    out = values[graph.output]
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != n:
        raise InputError(f"the model's output has shape {tuple(getattr(out, 'shape', ()))} for {n} input(s); "
                         "LRP explains logits of shape (N, classes)")
    return values


#: ops that reorder dimensions: the batch must stay first (a negative dim may name it)
_REORDERS = ("transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "permute")


def _moves_batch(node: Node, inputs: list, out: Tensor) -> bool:
    """Whether a dimension reorder put another dimension first (kᵀ of a (B, N) tensor)."""
    what = str(getattr(node.op, "description", "")).split(".")[-1]
    return (what in _REORDERS and bool(inputs) and isinstance(inputs[0], Tensor)
            and out.shape[0] != inputs[0].shape[0])


def cast_graph(graph: Graph, dtype: torch.dtype, device: torch.device) -> Graph:
    g = graph.copy()
    for node in g.nodes:
        if node.op is not None:
            node.op = node.op.to(dtype, device)
    return g


def inplace_relus(graph: Graph, reads_output: Callable[[Node], bool]) -> set[str]:
    """ReLU nodes that may run in place on their input: fed by a linear layer that feeds nothing
    else and whose rule never reads the layer's output z (``Rule.uses_output`` False: z⁺, w²,
    flat). The layer's value is then the ReLU's, which no one reads: the forward keeps one
    tensor per such pair instead of two (ResNet-50: a third less memory, and fewer first-touch
    page faults on CPU)."""
    consumers: dict[str, int] = {}
    for node in graph.nodes:
        for i in node.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    out: set[str] = set()
    for node in graph.nodes:
        if not (isinstance(node.op, ops.ActivationOp) and node.op.name == "relu" and len(node.inputs) == 1):
            continue
        src = graph.by_name[node.inputs[0]]
        if (isinstance(src.op, ops.LinearOp) and consumers.get(src.name) == 1 and src.name != graph.output
                and not reads_output(src)):
            out.add(node.name)
    return out


def fresh_nodes(graph: Graph, fresh_rule: Callable[[Node], bool]) -> set[str]:
    """Nodes whose relevance parts are tensors they allocated, which the relevance pass may add
    into in place: sums (the proportional rule) and linear layers whose rule says so
    (``Rule.fresh_result``), each with distinct inputs (x + x hands one input two parts)."""
    return {node.name for node in graph.nodes
            if len(set(node.inputs)) == len(node.inputs)
            and (isinstance(node.op, ops.AddOp) or (isinstance(node.op, ops.LinearOp) and fresh_rule(node)))}
