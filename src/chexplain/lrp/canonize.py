"""Canonization: merge BatchNorms into linear layers so that LRP sees only linear maps.

1. BatchNorm after a linear layer (conv → BN, linear → BN) is merged into that layer.
2. BatchNorm before a linear layer, possibly through a ReLU, average pooling, flatten and
   dropout (DenseNet's BN → ReLU → conv and its head BN → ReLU → pool → flatten → linear),
   is pushed forward into it. The ReLU becomes the threshold ReLU T with BN(T(x)) = ReLU(BN(x))
   (A. Binder, "Notes on canonization for ResNets and DenseNets", 2020; Motzkus et al., ICIP
   2022); with zero padding the merged shift of a convolution varies near the border, so the
   bias becomes a (C_out, H, W) tensor. T(x) = m ⊙ x + (1 − m) ⊙ t is split: the gated signal
   m ⊙ x carries relevance, the off units' constant (1 − m) ⊙ t travels on a side branch
   (:class:`~chexplain.lrp.ops.core.OffStateOp`, through copies of the pools and reshapes) into the
   layer, which adds W'·((1 − m) ⊙ t) to its bias. Without that split the off units would
   pass the relevance of their constant down to inputs the network ignores there (which blew
   LRP-0 and LRP-ε up by 1e30 and more on DenseNets with non-zero BatchNorm shifts).

Everything is computed in float64 on a copy of the traced graph; the result reproduces the
original outputs (checked in the tests at rtol 1e-5).
"""

from __future__ import annotations

import torch

from . import ops
from .graph import Graph, Node


def canonize(graph: Graph, shapes: dict[str, torch.Size]) -> Graph:
    """Return a canonized copy of ``graph``; ``shapes`` are the node output shapes (from a forward)."""
    g = graph.copy()
    changed = True
    while changed:
        changed = any(_merge_into_producer(g, n, shapes) for n in list(g.nodes) if isinstance(n.op, ops.AffineOp))
    for n in list(g.nodes):
        if isinstance(n.op, ops.AffineOp):
            _push_into_consumer(g, n, shapes)
    return g


def _remove(g: Graph, node: Node, replacement: str) -> None:
    """Drop ``node``; its users read ``replacement`` instead."""
    for other in g.nodes:
        other.inputs = [replacement if i == node.name else i for i in other.inputs]
    if g.output == node.name:
        g.output = replacement
    g.nodes.remove(node)
    g.relink()


def _value_users(g: Graph, node: Node) -> list[str]:
    """Users that read the node's values (not just its shape, as ``x.size(0)`` does)."""
    return [u for u in node.users if not isinstance(g.by_name[u].op, ops.MetaOp)]


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.view(-1, *([1] * (ndim - 1)))


def _merge_into_producer(g: Graph, bn: Node, shapes: dict[str, torch.Size]) -> bool:
    """conv/linear → BN: W' = a·W (per output channel), b' = a·b + c."""
    producer = g.by_name[bn.inputs[0]]
    layer = producer.op
    if not isinstance(layer, ops.LinearOp) or _value_users(g, producer) != [bn.name] or producer.name == g.output:
        return False
    if isinstance(layer, ops.DenseOp) and len(shapes[producer.name]) != 2:
        return False  # BatchNorm1d normalises dim 1, a Linear's outputs are the last dim
    a, c = bn.op.weight, bn.op.bias
    w = layer.weight.double()
    if isinstance(layer, ops.AffineOp):
        weight = a * w
    else:
        weight = _channel_view(a, w.ndim) * w
    bias = c.clone() if layer.bias is None else None
    if layer.bias is not None:
        b = layer.bias.double()
        bias = _channel_view(a, b.ndim) * b + _channel_view(c, b.ndim)
    producer.op = layer.with_params(weight, bias)
    _remove(g, bn, producer.name)
    return True


def _commutes(pool: ops.PoolOp, in_shape: torch.Size) -> bool:
    """Does ``pool`` commute with a per-channel affine map (pool(a·x + c) = a·pool(x) + c)?"""
    gen = torch.Generator().manual_seed(0)
    c_dim = in_shape[1]
    x = torch.randn((1, *in_shape[1:]), generator=gen, dtype=torch.float64)
    a = torch.randn(c_dim, generator=gen, dtype=torch.float64)
    c = torch.randn(c_dim, generator=gen, dtype=torch.float64)
    view = (1, -1, *([1] * (len(in_shape) - 2)))
    try:
        left = pool.forward(x * a.view(view) + c.view(view))
        y = pool.forward(x)
    except RuntimeError:
        return False
    if y.ndim < 2 or y.shape[1] != c_dim:
        return False
    out_view = (1, -1, *([1] * (y.ndim - 2)))
    return torch.allclose(left, y * a.view(out_view) + c.view(out_view), rtol=1e-10, atol=1e-12)


def _push_into_consumer(g: Graph, bn: Node, shapes: dict[str, torch.Size]) -> bool:
    """BN → [ReLU] → [avg pool | flatten | dropout]* → conv/linear: merge BN into the layer."""
    a, c = bn.op.weight, bn.op.bias
    relu: Node | None = None
    chain: list[Node] = []
    layout = shapes[bn.name]  # shape whose dim 1 holds the channels, before any reshape
    cur = bn
    while True:
        users = _value_users(g, cur)
        if len(users) != 1 or cur.name == g.output:
            return False
        nxt = g.by_name[users[0]]
        if nxt.inputs.count(cur.name) != 1:
            return False
        op = nxt.op
        if isinstance(op, ops.ActivationOp) and op.name == "relu" and relu is None and not chain:
            relu = nxt
        elif isinstance(op, ops.IdentityOp):
            chain.append(nxt)
        elif isinstance(op, ops.ReshapeOp) and nxt.inputs[0] == cur.name:
            if not any(isinstance(n.op, ops.ReshapeOp) for n in chain):
                layout = shapes[cur.name]
            chain.append(nxt)
        elif isinstance(op, ops.PoolOp) and _commutes(op, shapes[cur.name]):
            chain.append(nxt)
        elif isinstance(op, (ops.DenseOp, ops.ConvOp)):
            consumer = nxt
            break
        else:
            return False
        cur = nxt
    shift = torch.where(a == 0, c.clamp(min=0), c) if relu is not None else c
    merged = _merge_affine_into(consumer.op, a, shift, shapes[cur.name], layout)
    if merged is None:
        return False
    consumer.op = merged
    if relu is not None:
        threshold = torch.where(a == 0, torch.zeros_like(c), -c / torch.where(a == 0, torch.ones_like(a), a))
        relu.op = ops.ThresholdReLUOp(a, c, threshold)
        consumer.inputs = [cur.name, _off_state_branch(g, bn, relu, chain)]
    _remove(g, bn, bn.inputs[0])
    return True


def _off_state_branch(g: Graph, bn: Node, relu: Node, chain: list[Node]) -> str:
    """Add the nodes that carry the threshold ReLU's off-state constant (1 − m) ⊙ t through
    the same pools and reshapes to the consumer (which adds it to its bias); returns the last."""
    def add(after: Node, op: ops.Op, inputs: list[str]) -> Node:
        name = f"{after.name}_off"
        while name in g.by_name:
            name += "_"
        node = Node(name, op, inputs, after.path)
        g.nodes.insert(g.nodes.index(after) + 1, node)
        g.by_name[name] = node
        return node

    last = add(relu, ops.OffStateOp(relu.op), [bn.name])
    for node in chain:
        last = add(node, node.op, [last.name, *node.inputs[1:]])
    return last.name


def _merge_affine_into(layer: ops.LinearOp, a: torch.Tensor, c: torch.Tensor, in_shape: torch.Size,
                       layout: torch.Size) -> ops.LinearOp | None:
    """layer(a·x + c) as a layer of x; ``in_shape``: the layer's input shape; ``layout``: the shape,
    channels on dim 1, that was flattened into a dense layer's input."""
    w = layer.weight.double()
    b = None if layer.bias is None else layer.bias.double()
    if isinstance(layer, ops.DenseOp):
        if len(in_shape) != 2:
            return None
        view = (1, -1, *([1] * (len(layout) - 2)))
        ones = torch.ones((1, *layout[1:]), dtype=torch.float64)
        scale = (ones * a.view(view)).reshape(-1)
        shift = (ones * c.view(view)).reshape(-1)
        if scale.numel() != in_shape[1]:
            return None
        bias = w @ shift + (0 if b is None else b)
        return layer.with_params(w * scale, bias)
    # convolution: channels are preserved along the chain (only pools and identities)
    if in_shape[1] != a.numel():
        return None
    groups = layer.groups
    c_out = w.shape[0]
    wg = w.view(groups, c_out // groups, *w.shape[1:])
    weight = (wg * a.view(groups, 1, -1, *([1] * (w.ndim - 2)))).view_as(w)
    kernel_dims = tuple(range(2, w.ndim))
    if not any(layer.padding):  # every output sees the full kernel: a constant bias
        per_out = (wg * c.view(groups, 1, -1, *([1] * (w.ndim - 2)))).sum(dim=(2, *[d + 1 for d in kernel_dims]))
        bias = per_out.reshape(c_out)
        if b is not None:
            bias = bias.view(-1, *([1] * (b.ndim - 1))) + b
    else:  # zero padding: outputs near the border see part of the shift only
        shift_map = torch.ones((1, *in_shape[1:]), dtype=torch.float64) * c.view(1, -1, *([1] * (len(in_shape) - 2)))
        bias = layer.forward_with(shift_map, w, b)[0]
    return layer.with_params(weight, bias)
