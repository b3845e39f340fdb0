"""In-place operations of a traced forward, rewritten as what they compute.

``h2.relu_()`` whose result is not assigned changes ``h2`` for every later use, but torch.fx
records the later uses against the node of ``h2`` itself: replayed on values (LRP's forward,
Grad-CAM's cut graph) they would read the tensor before the ReLU, or after, depending on the
order of evaluation. :func:`out_of_place` makes the graph functional: every in-place node
(``Tensor.*_`` methods, ``torch.relu_``, ``F.*(..., inplace=True)``, ``operator.iadd`` and
friends, modules with ``inplace=True``) becomes its out-of-place form, and its result replaces
the uses of its input that come after it. An in-place op without an out-of-place form, or one
that writes into a view of another tensor (which would change that tensor too), is refused by
name before any computation.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F

from ..errors import UnsupportedModelError

#: in-place functions → their out-of-place form
_FUNCTIONS = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
              operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
              operator.ipow: operator.pow, operator.imatmul: operator.matmul}
for _name in dir(torch):
    if _name.endswith("_") and not _name.startswith("_") and hasattr(torch, _name[:-1]):
        _FUNCTIONS[getattr(torch, _name)] = getattr(torch, _name[:-1])
for _name in ("relu_", "elu_", "leaky_relu_", "rrelu_", "hardtanh_", "threshold_", "celu_", "selu_"):
    if hasattr(F, _name) and hasattr(F, _name[:-1]):
        _FUNCTIONS[getattr(F, _name)] = getattr(F, _name[:-1])



def assigned(x: torch.Tensor, index, value) -> torch.Tensor:
    """``x`` with ``x[index] = value``, out of place (the form of an item assignment)."""
    out = x.clone()
    out[index] = value
    return out


_FUNCTIONS[operator.setitem] = assigned

#: in-place methods that set a flag and change no value
_FLAGS = {"requires_grad_", "share_memory_", "retain_grad_"}

#: methods returning a view of their input (writing into one changes the base tensor)
_VIEWS = {"view", "view_as", "reshape", "transpose", "permute", "t", "expand", "expand_as", "narrow", "select",
          "squeeze", "unsqueeze", "flatten", "unflatten", "chunk", "split", "unbind", "diagonal", "as_strided",
          "movedim", "swapaxes", "unfold", "T", "mT"}
_VIEW_FUNCTIONS = {operator.getitem, torch.transpose, torch.permute, torch.narrow, torch.select, torch.squeeze,
                   torch.unsqueeze, torch.flatten, torch.reshape, torch.chunk, torch.split, torch.unbind,
                   torch.movedim, torch.diagonal}


def _in_place(node: fx.Node, gm: fx.GraphModule) -> str | None:
    """How ``node`` writes into its first argument ('method', 'function', 'kwarg', 'module'), or None."""
    if node.op == "call_method" and isinstance(node.target, str) and node.target.endswith("_") \
            and not node.target.startswith("_"):
        return "method"
    if node.op == "call_function":
        if node.target in _FUNCTIONS and node.target not in (operator.getitem,):
            return "function"
        if node.kwargs.get("inplace") is True:
            return "kwarg"
    if node.op == "call_module":
        try:
            if getattr(gm.get_submodule(node.target), "inplace", False) is True:
                return "module"
        except AttributeError:
            return None
    return None


def _describe(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_module":
        return f"{node.target} (inplace=True)"
    return getattr(node.target, "__name__", str(node.target))


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = str(node.target) if node.op == "call_module" else (list(stack.values())[-1][0] if stack else "")
    return f"at '{path}'" if path else "in the model's top-level forward"


def _is_view(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target in _VIEWS) or (
        node.op == "call_function" and node.target in _VIEW_FUNCTIONS)


def out_of_place(gm: fx.GraphModule) -> bool:
    """Rewrite every in-place node of ``gm.graph`` as its out-of-place form (in place, on the
    traced copy's graph); returns whether anything changed. Raises UnsupportedModelError for an
    in-place op that cannot be rewritten."""
    graph = gm.graph
    order = {n: i for i, n in enumerate(graph.nodes)}
    changed = False
    for node in list(graph.nodes):
        kind = _in_place(node, gm)
        if kind is None or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        if kind == "method" and node.target in _FLAGS:
            continue  # sets a flag, changes no value
        if kind == "method" and not hasattr(torch.Tensor, node.target[:-1]):
            raise UnsupportedModelError(
                f"in-place {_describe(node)} {_where(node)} has no out-of-place form; chexplain cannot follow what it "
                "writes")
        base = node.args[0]
        later = [u for u in base.users if u is not node and order[u] > order[node]]
        if _is_view(base) and (later or any(order[u] > order[node] for u in base.args[0].users
                                            if isinstance(base.args[0], fx.Node))):
            raise UnsupportedModelError(
                f"in-place {_describe(node)} {_where(node)} writes into a view ({base.name}) of another tensor; "
                "chexplain needs the out-of-place form (e.g. torch.relu instead of relu_)")
        if kind == "method":
            node.target = node.target[:-1]
        elif kind == "function":
            node.target = _FUNCTIONS[node.target]
        elif kind == "kwarg":
            node.kwargs = {**node.kwargs, "inplace": False}
        # a module with inplace=True computes in place; its result is the value, and later uses of
        # its input (which it overwrote) read that result
        for user in later:
            user.replace_input_with(base, node)
        changed = True
    if changed:
        graph.lint()
        gm.recompile()
    return changed
