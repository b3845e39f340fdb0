"""Converters from torch.fx nodes to LRP operations, extensible by other modules.

``graph.trace`` looks every fx node up here, torch's own layers and functions included
(:mod:`chexplain.lrp.ops.builtin`):

- :func:`register_module` for ``call_module`` nodes, by module type (the most specific class in
  the module's MRO wins);
- :func:`register_function` for ``call_function`` nodes, by the called function;
- :func:`register_method` for ``call_method`` nodes, by the Tensor method's name.

A converter receives a :class:`Context` and returns an :class:`~chexplain.lrp.ops.base.Op` (whose
``forward`` gets the values of ``ctx.refs`` in order), or None when it does not apply (then the
node is unsupported and ``trace`` raises, naming the op and module path), or raises
:class:`~chexplain.errors.UnsupportedModelError` with a specific message.

Two more kinds of extension prepare the graph before conversion: :func:`register_substitute`
swaps a leaf module for a traceable equivalent, :func:`register_graph_pass` rewrites the fx
graph. :func:`load` imports every module of :mod:`chexplain.lrp.ops` (torch's own layers and
functions first), so a new operation is one module there; ``docs/lrp-ops.md`` lists every
operation and its rule.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.fx as fx

Converter = Callable[["Context"], Any]

MODULES: dict[type, Converter] = {}
FUNCTIONS: dict[Any, Converter] = {}
METHODS: dict[str, Converter] = {}

def register_module(*types: type) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for t in types:
            MODULES[t] = fn
        return fn
    return deco


def register_function(*targets: Any) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for t in targets:
            FUNCTIONS[t] = fn
        return fn
    return deco


def register_method(*names: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for n in names:
            METHODS[n] = fn
        return fn
    return deco


#: module type → factory of an equivalent traceable module, swapped into the traced copy (a leaf
#: module such as nn.MultiheadAttention becomes explicit ops that have rules).
SUBSTITUTES: dict[type, Callable[[torch.nn.Module], torch.nn.Module]] = {}
#: rewrites of the fx graph before conversion, ``fn(gm)`` in place (e.g. q, k, v = qkv.permute(2, 0, ...).unbind(0)).
GRAPH_PASSES: list[Callable[[fx.GraphModule], None]] = []


def register_substitute(*types: type) -> Callable[[Callable], Callable]:
    """Swap modules of ``types`` for ``factory(module)`` in the traced copy."""
    def deco(factory: Callable[[torch.nn.Module], torch.nn.Module]) -> Callable:
        for t in types:
            SUBSTITUTES[t] = factory
        return factory
    return deco


def register_graph_pass(fn: Callable[[fx.GraphModule], None]) -> Callable[[fx.GraphModule], None]:
    """Run ``fn(gm)`` on every traced graph before conversion (in registration order)."""
    if fn not in GRAPH_PASSES:
        GRAPH_PASSES.append(fn)
    return fn


def autowrap_functions() -> tuple[Callable[..., Any], ...]:
    """Functions traced as one node (fx ``autowrap_functions``) because their bodies branch on
    sizes: timm's position-embedding resampling, called with the input's size and a parameter,
    becomes a value computed at run time (a constant shift of the tokens, like the embedding)."""
    try:
        from timm.layers import pos_embed
    except ImportError:  # timm is optional
        return ()
    names = ("resample_abs_pos_embed", "resample_abs_pos_embed_nhwc")
    return tuple(getattr(pos_embed, n) for n in names if hasattr(pos_embed, n))


def optional_args(model: torch.nn.Module) -> dict[str, Any] | None:
    """forward's arguments after the input that default to None or a constant (timm's ``attn_mask``):
    traced at their default (fx concrete_args), so the model is explained as called with one tensor."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    optional = {p.name: p.default for p in params if p.kind in kinds and p.default is not inspect.Parameter.empty
                and (p.default is None or isinstance(p.default, (bool, int, float, str)))}
    return optional or None


def substitute(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (a private copy) with every module of a :data:`SUBSTITUTES` type replaced."""
    if type(model) in SUBSTITUTES:
        return SUBSTITUTES[type(model)](model)
    for name, child in list(model.named_children()):
        new = substitute(child)
        if new is not child:
            setattr(model, name, new)
    return model


def rewrite(gm: fx.GraphModule) -> None:
    for fn in GRAPH_PASSES:
        fn(gm)
    gm.graph.lint()
    gm.recompile()


def load() -> None:
    """Import every module of :mod:`chexplain.lrp.ops`, torch's own layers and functions
    (``builtin``) first (idempotent; the package's folders are read once per set of folders,
    not at every trace)."""
    package = importlib.import_module("chexplain.lrp.ops")
    _load_folders(package.__name__, tuple(package.__path__))


@functools.lru_cache(maxsize=None)
def _load_folders(package: str, folders: tuple[str, ...]) -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(list(folders), package + "."))
    builtin = package + ".builtin"
    for name in [builtin] + [n for n in names if n != builtin]:
        importlib.import_module(name)


@dataclass
class Context:
    """What a converter sees of one fx node.

    node: the fx node; gm: the traced GraphModule; refs: the fx nodes its args refer to, in the
    order their values reach ``Op.forward``; path: the module path (for rules and errors);
    meta: names of nodes with non-tensor values (sizes); consts: values of ``get_attr`` nodes
    (parameters and buffers read in forward), by node name; producers: the converted op of every
    earlier node, by name (to look at a tensor's origin, e.g. whether it is a gate); virtual:
    tuple-valued nodes (chunk, split) that are not nodes themselves: name → (fx node, op, inputs).
    """

    node: fx.Node
    gm: fx.GraphModule
    refs: list[fx.Node]
    path: str
    meta: set[str]
    consts: dict[str, torch.Tensor]
    producers: dict[str, Any] = field(default_factory=dict)
    virtual: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> torch.nn.Module:
        return self.gm.get_submodule(self.node.target)

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """The node's argument by position or keyword (an fx.Node for tensors)."""
        if index < len(self.node.args):
            return self.node.args[index]
        return self.node.kwargs.get(name, default)

    def const(self, value: Any) -> Optional[torch.Tensor]:
        """The tensor of a ``get_attr`` node (None for anything else)."""
        return self.consts.get(value.name) if isinstance(value, fx.Node) else None

    def tensor_refs(self) -> list[fx.Node]:
        """refs carrying tensors that depend on the input (not sizes, not constants)."""
        return [r for r in self.refs if r.name not in self.meta and r.name not in self.consts]

    def bound(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` called with the node's args, its refs replaced by the values passed in (in order)."""
        node = self.node

        def call(*values: Any) -> Any:
            it = iter(values)
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda _: next(it))
            return fn(*args, **kwargs)
        return call

    def target_fn(self) -> Callable[..., Any]:
        """The node's callable: the function, or the Tensor method as a function."""
        if self.node.op == "call_method":
            name = self.node.target
            return lambda obj, *a, **k: getattr(obj, name)(*a, **k)
        if self.node.op == "call_module":
            return self.module
        return self.node.target


def lookup(ctx: Context) -> Optional[Converter]:
    node = ctx.node
    if node.op == "call_module":
        for cls in type(ctx.module).__mro__:
            if cls in MODULES:
                return MODULES[cls]
        return None
    if node.op == "call_method":
        return METHODS.get(node.target)
    try:
        return FUNCTIONS.get(node.target)
    except TypeError:  # an unhashable target
        return None
