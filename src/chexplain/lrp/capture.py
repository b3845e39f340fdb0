"""Capture of models that torch.fx cannot trace symbolically: a trace per input shape.

A forward that branches on sizes (pad H up to a multiple of the patch, ``int(N ** 0.5)``
tokens per side, ``x.reshape(B, H // p, p, ...)`` with Python ints) cannot be traced with
symbolic sizes. :class:`ShapeTracer` traces it with proxies that carry a tensor on the meta
device, shaped like the example input: size queries (``shape``, ``size()``, ``dim()``,
``numel()``) answer concrete ints, so each shape-dependent branch resolves for that shape and
the graph is valid for inputs of that shape (batch included) only. Meta tensors carry no
values, so control flow on values (``bool()`` of a tensor, ``.item()``) cannot be resolved:
it is refused, in one line naming the model, before any computation.

:class:`Capture` holds what ``LRP`` explains: the symbolic graph (every shape) when torch.fx
traces the model, else one captured graph per input shape, dtype and device.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn as nn
from torch.func import functional_call

from ..errors import InputError, UnsupportedModelError
from . import registry
from .graph import Graph, convert, trace
from .snapshot import SymbolicTraceError, first_line, snapshot

Tensor = torch.Tensor


class _Misfit(Exception):
    """An operation fails for the example's shape (wrong channels, too small an image)."""


#: values a tensor without values can give: sizes, flags, dtypes, devices
_PLAIN = (bool, int, float, str, torch.Size, torch.dtype, torch.device)


class _Refused(Exception):
    """The forward cannot be captured: it needs a tensor's values (control flow, ``.item()``)."""


class _Shaped:
    """Size queries of a traced tensor answered from its meta tensor (concrete ints)."""

    tracer: "ShapeTracer"

    def _meta(self) -> Any:
        return self.tracer.meta_of(self)

    @property
    def shape(self) -> torch.Size:
        return self._meta().shape

    @property
    def ndim(self) -> int:
        return self._meta().ndim

    @property
    def dtype(self) -> torch.dtype:
        return self._meta().dtype

    @property
    def device(self) -> torch.device:
        return self.tracer.device

    @property
    def is_cuda(self) -> bool:
        return self.tracer.device.type == "cuda"

    @property
    def requires_grad(self) -> bool:
        return False

    def size(self, dim: int | None = None) -> Any:
        return self._meta().size() if dim is None else self._meta().size(dim)

    def dim(self) -> int:
        return self._meta().dim()

    def numel(self) -> int:
        return self._meta().numel()

    def element_size(self) -> int:
        return self._meta().element_size()

    def is_floating_point(self) -> bool:
        return self._meta().is_floating_point()

    def __len__(self) -> int:
        return len(self._meta())

    def __getattr__(self, name: str) -> Any:
        return _ShapedAttribute(self, name)

    def __setitem__(self, index: Any, value: Any) -> None:  # x[index] = v, made out of place later
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})


class _ShapedProxy(_Shaped, fx.Proxy):
    pass


class _ShapedAttribute(_Shaped, fx.proxy.Attribute):
    pass


class ShapeTracer(fx.Tracer):
    """An fx tracer whose proxies carry meta tensors shaped like the example input's values."""

    def __init__(self, example: Tensor) -> None:
        super().__init__(autowrap_functions=registry.autowrap_functions())
        self.example = torch.empty(example.shape, dtype=example.dtype, device="meta")
        self.device = example.device  # what ``x.device`` answers: constants made in forward land there
        self.metas: dict[fx.Node, Any] = {}
        self._inside = False  # computing a meta value: modules run their own forward

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ShapedProxy(node, self)

    def meta_of(self, proxy: fx.Proxy) -> Any:
        node = proxy.node
        if node not in self.metas:
            raise _Refused(f"the size of {node.name} is unknown")
        return self.metas[node]

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, name: str | None = None,
                     type_expr: Any = None, proxy_factory_fn: Callable | None = None) -> fx.Proxy:
        rv = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if kind == "output":
            return rv
        try:
            meta = self._meta_value(kind, target, args, kwargs)
        except (_Refused, UnsupportedModelError):
            raise
        except Exception as exc:  # noqa: BLE001 - an op that needs values, or fails for this shape
            if "meta" not in str(exc).lower():  # not about missing values: the input does not fit
                raise _Misfit(f"{self._describe(kind, target)} {self._where()}: {first_line(exc)}") from None
            raise _Refused(f"{self._describe(kind, target)} {self._where()} fails on a tensor without values "
                           f"({type(exc).__name__}: {first_line(exc)}); LRP needs a forward that reads sizes, "
                           "not values") from None
        if kind in ("call_function", "call_method") and isinstance(meta, _PLAIN):
            self.graph.erase_node(rv.node)  # a size or flag (x.is_contiguous()): a tensor without values
            return meta  # gave it, so it cannot depend on the input's values
        self.metas[rv.node] = meta
        return rv

    def _meta_value(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        if kind == "placeholder":  # the input, then optional arguments at their defaults
            first = not any(n.op == "placeholder" for n in self.metas)
            return self.example if first else (args[0] if args else None)
        a, k = fx.node.map_aggregate((args, kwargs), self._to_meta)
        self._inside = True
        try:
            if kind == "get_attr":
                value: Any = self.root
                for part in str(target).split("."):
                    value = getattr(value, part)
                return value.to("meta") if isinstance(value, Tensor) else value
            if kind == "call_function":
                return target(*a, **k)
            if kind == "call_method":
                return getattr(a[0], target)(*a[1:], **k)
            module = self.root.get_submodule(target)
            state = {n: t.to("meta") for n, t in [*module.named_parameters(), *module.named_buffers()]}
            return functional_call(module, state, tuple(a), k)
        finally:
            self._inside = False

    def _to_meta(self, v: Any) -> Any:
        if isinstance(v, fx.Proxy):
            return self.meta_of(v)
        if isinstance(v, Tensor):
            return v.to("meta")
        return v

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        if self._inside:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if self._inside:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def to_bool(self, obj: fx.Proxy) -> bool:
        raise _Refused(f"its forward branches on tensor values {self._where()} (bool() of {obj.node.name}); "
                       "LRP needs a forward whose control flow depends on sizes only")

    def iter(self, obj: fx.Proxy):
        meta = self.meta_of(obj)
        if isinstance(meta, (tuple, list)):
            return iter([obj[i] for i in range(len(meta))])
        if isinstance(meta, Tensor) and meta.ndim > 0:
            return iter([obj[i] for i in range(meta.shape[0])])
        raise _Refused(f"its forward iterates over {obj.node.name} {self._where()}, which has no length")

    def keys(self, obj: fx.Proxy) -> Any:
        raise _Refused(f"its forward unpacks {obj.node.name} as a mapping {self._where()}")

    def _describe(self, kind: str, target: Any) -> str:
        return type(self.root.get_submodule(target)).__name__ if kind == "call_module" else _describe(kind, target)

    def _where(self) -> str:
        stack = getattr(self, "module_stack", None) or {}
        path = list(stack.keys())[-1] if stack else ""
        return f"at '{path}'" if path else "in the model's top-level forward"


def _describe(kind: str, target: Any) -> str:
    if kind == "call_method":
        return f"Tensor.{target}"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{module}.{name}" if module and module != "builtins" else name


def trace_shaped(root: nn.Module, x: Tensor, tracer: ShapeTracer | None = None,
                 name: str | None = None) -> fx.GraphModule:
    """``root`` traced for inputs shaped like ``x`` with meta tensors (``tracer``: a
    :class:`ShapeTracer` for ``x``, or a subclass); the GraphModule shares ``root``'s modules.
    Control flow on values is refused in one line naming the model."""
    name = name or type(root).__name__
    tracer = tracer or ShapeTracer(x)
    try:
        return fx.GraphModule(root, tracer.trace(root, concrete_args=registry.optional_args(root)), name)
    except _Refused as exc:
        raise UnsupportedModelError(f"cannot trace {name} for inputs of shape {tuple(x.shape)}: {exc}") from None
    except _Misfit as exc:
        raise InputError(f"an input of shape {tuple(x.shape)} does not fit {name}: {exc}") from None
    except UnsupportedModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds
        raise UnsupportedModelError(f"cannot trace {name} for inputs of shape {tuple(x.shape)} "
                                    f"({type(exc).__name__}: {first_line(exc)})") from None


def capture(model: nn.Module, x: Tensor, name: str | None = None) -> Graph:
    """The graph of ``model`` for inputs shaped like ``x`` (shape, dtype, device), traced with
    meta tensors (:func:`trace_shaped`, on a snapshot of the model)."""
    return convert(trace_shaped(snapshot(model), x, name=name or type(model).__name__))


class Capture:
    """The graphs LRP explains: the symbolic trace of ``model`` (valid for every input shape),
    or, when torch.fx cannot trace it symbolically, one capture per input shape, dtype and
    device (:func:`capture`, on first use). The caller's model is only read (deep-copied)."""

    def __init__(self, model: nn.Module) -> None:
        self.name = type(model).__name__
        self.graphs: dict[tuple, Graph] = {}
        try:
            self.symbolic: Graph | None = trace(model)
            self.model: nn.Module | None = None
        except SymbolicTraceError:
            self.symbolic = None
            self.model = snapshot(model)  # read again, per shape, by capture()

    def key(self, x: Tensor) -> tuple:
        """Inputs with the same key share a graph (a captured graph holds the batch size too)."""
        shape = tuple(x.shape[1:]) if self.symbolic is not None else tuple(x.shape)
        return shape, x.dtype, x.device

    def graph_for(self, x: Tensor) -> Graph:
        if self.symbolic is not None:
            return self.symbolic
        key = self.key(x)
        if key not in self.graphs:
            assert self.model is not None
            self.graphs[key] = capture(self.model, x, self.name)
        return self.graphs[key]
