"""Composites: which rule explains which layer, and the named presets.

A :class:`Composite` picks a rule per layer by, in order of precedence, the layer's module
path (fnmatch patterns), whether it is the first linear layer (the input layer), and its
type ("dense", "conv", "affine"). Presets follow the literature: Bach et al. 2015 (z, ε, αβ),
Montavon et al. 2017 (Deep Taylor: z⁺ with z^B or w² at the input) and Kohlbrenner et al.
2020 (ε at the top, z⁺/γ/αβ in convolutions, flat or z^B at the input).

Presets with αβ or z⁺ take ``empty="literal"`` (Eq. 60 as written, the default of the
reference implementations) or ``empty="conserve"`` (an empty side passes all of R_j through the
other one); see :mod:`chexplain.lrp.rules`.

A preset registers its name with :func:`preset` where it is defined: here for the literature's
presets, in a rule's own module for a new rule (every module of :mod:`chexplain.lrp.rules` is
imported below), so that the method registry, and with it every entry point, offers it.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ChexplainError
from . import rules
from .rules import LRP0_STABILIZER, AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, Z, ZBox, ZPlus

#: name → factory of the named composite (keyword parameters, see :func:`make_composite`)
PRESETS: dict[str, Callable[..., "Composite"]] = {}


@dataclass
class Composite:
    """Rules per layer.

    layer_map: rule per layer type, keys "dense", "conv", "affine" (an un-merged BatchNorm);
        a missing type falls back to LRP-ε with ε = ``stabilizer``.
    name_map: (fnmatch pattern on the module path, rule) pairs; the first match wins.
    first: the rule of the first linear layer (the input layer), if special.
    maxpool: "wta" (winner takes all) or "proportional" (relevance ∝ input in the window).
    stabilizer: ε of the proportional rules (sums, average pooling) and of the fallback.
    attention: "cp" (CP-LRP, Ali et al. 2022: attention weights constant, relevance only through
    the values) or "attnlrp" (Achtibat et al. 2024: softmax and bilinear matmul rules).
    """

    layer_map: dict[str, Rule] = field(default_factory=dict)
    name_map: list[tuple[str, Rule]] = field(default_factory=list)
    first: Rule | None = None
    maxpool: str = "wta"
    stabilizer: float = 1e-6
    attention: str = "cp"

    def __post_init__(self) -> None:
        if self.attention not in ("cp", "attnlrp"):
            raise ChexplainError(f"attention must be 'cp' or 'attnlrp', got {self.attention!r}")
        if self.maxpool not in ("wta", "proportional"):
            raise ChexplainError(f"maxpool must be 'wta' or 'proportional', got {self.maxpool!r}")
        unknown = set(self.layer_map) - {"dense", "conv", "affine"}
        if unknown:
            raise ChexplainError(f"unknown layer type {sorted(unknown)[0]!r} in layer_map; use dense, conv, affine")

    def rule_for(self, path: str, layer_type: str, is_first: bool) -> Rule:
        for pattern, rule in self.name_map:
            if path and fnmatch.fnmatchcase(path, pattern):
                return rule
        if is_first and self.first is not None:
            return self.first
        return self.layer_map.get(layer_type) or Epsilon(self.stabilizer)


def preset(*names: str) -> Callable[[Callable[..., Composite]], Callable[..., Composite]]:
    """Register a factory of a :class:`Composite` under ``names`` (the first is its name, the
    others aliases); its keyword parameters are the method's parameters."""
    def deco(factory: Callable[..., Composite]) -> Callable[..., Composite]:
        for name in names:
            if name in PRESETS and PRESETS[name] is not factory:
                raise ChexplainError(f"LRP method {name!r} is registered twice")
            PRESETS[name] = factory
        return factory
    return deco


def layerwise(rule_dense: Rule, rule_conv: Rule, first: Rule | None = None, stabilizer: float = 1e-6,
              maxpool: str = "wta") -> Composite:
    """A preset's composite: ``rule_dense`` on dense layers, ``rule_conv`` on convolutions,
    ``first`` (if given) on the input layer, LRP-ε with ε = ``stabilizer`` on un-merged affine
    layers."""
    return Composite({"dense": rule_dense, "conv": rule_conv, "affine": Epsilon(stabilizer)}, [], first,
                     maxpool, stabilizer)


@preset("lrp-z")
def lrp_z(stabilizer: float = LRP0_STABILIZER, maxpool: str = "wta") -> Composite:
    """LRP-0 everywhere (Bach et al. 2015, Eq. 56); ``stabilizer`` (1e-12) only prevents division by zero,
    here and in the proportional rules."""
    return layerwise(Z(stabilizer), Z(stabilizer), None, stabilizer, maxpool)


@preset("lrp-epsilon")
def lrp_epsilon(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "wta") -> Composite:
    """LRP-ε everywhere (Bach et al. 2015, Eq. 58)."""
    return layerwise(Epsilon(epsilon), Epsilon(epsilon), None, stabilizer, maxpool)


@preset("lrp-alpha1beta0")
def lrp_alpha1beta0(stabilizer: float = 1e-6, maxpool: str = "wta", empty: str = "literal") -> Composite:
    """LRP-α1β0 everywhere (Bach et al. 2015, Eq. 60 with α = 1, β = 0)."""
    return lrp_alphabeta(1.0, 0.0, stabilizer, maxpool, empty)


@preset("lrp-alpha2beta1", "lrp-alphabeta")
def lrp_alphabeta(alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6, maxpool: str = "wta",
                  empty: str = "literal") -> Composite:
    """LRP-αβ everywhere (Bach et al. 2015, Eq. 60)."""
    rule = AlphaBeta(alpha, beta, stabilizer, empty)
    return layerwise(rule, rule, None, stabilizer, maxpool)


@preset("lrp-zplus")
def lrp_zplus(stabilizer: float = 1e-6, maxpool: str = "wta", empty: str = "literal") -> Composite:
    """z⁺ everywhere (Montavon et al. 2017)."""
    return layerwise(ZPlus(stabilizer, empty), ZPlus(stabilizer, empty), None, stabilizer, maxpool)


@preset("dtd")
def dtd(low: Any = None, high: Any = None, stabilizer: float = 1e-6, maxpool: str = "wta",
        empty: str = "literal") -> Composite:
    """Deep Taylor decomposition (Montavon et al. 2017): z⁺ on ReLU layers, z^B at the input when
    its bounds ``low``/``high`` are known, w² otherwise."""
    if (low is None) != (high is None):
        raise ChexplainError("dtd needs both input bounds low= and high=, or neither (then w² at the input)")
    first = ZBox(low, high, stabilizer) if low is not None else WSquare(stabilizer)
    return layerwise(ZPlus(stabilizer, empty), ZPlus(stabilizer, empty), first, stabilizer, maxpool)


@preset("epsilon-plus")
def epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "wta",
                 empty: str = "literal") -> Composite:
    """ε on dense layers, z⁺ on convolutions (Kohlbrenner et al. 2020)."""
    return layerwise(Epsilon(epsilon), ZPlus(stabilizer, empty), None, stabilizer, maxpool)


@preset("epsilon-plus-flat")
def epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "wta",
                      empty: str = "literal") -> Composite:
    """ε on dense layers, z⁺ on convolutions, flat at the input (Kohlbrenner et al. 2020)."""
    return layerwise(Epsilon(epsilon), ZPlus(stabilizer, empty), Flat(stabilizer), stabilizer, maxpool)


@preset("epsilon-gamma-box")
def epsilon_gamma_box(low: Any = None, high: Any = None, epsilon: float = 1e-6, gamma: float = 0.25,
                      stabilizer: float = 1e-6, maxpool: str = "wta") -> Composite:
    """ε on dense layers, γ on convolutions, z^B at the input (Kohlbrenner et al. 2020)."""
    if low is None or high is None:
        raise ChexplainError("epsilon-gamma-box needs the input bounds low= and high= (the z^B rule at the input)")
    return layerwise(Epsilon(epsilon), Gamma(gamma, stabilizer), ZBox(low, high, stabilizer), stabilizer, maxpool)


@preset("epsilon-alpha2beta1")
def epsilon_alpha2beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "wta",
                        empty: str = "literal") -> Composite:
    """ε on dense layers, α2β1 on convolutions."""
    return layerwise(Epsilon(epsilon), AlphaBeta(2.0, 1.0, stabilizer, empty), None, stabilizer, maxpool)


@preset("epsilon-alpha2beta1-flat")
def epsilon_alpha2beta1_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "wta",
                             empty: str = "literal") -> Composite:
    """ε on dense layers, α2β1 on convolutions, flat at the input (Kohlbrenner et al. 2020)."""
    return layerwise(Epsilon(epsilon), AlphaBeta(2.0, 1.0, stabilizer, empty), Flat(stabilizer), stabilizer, maxpool)


def make_composite(name: str, **params: Any) -> Composite:
    """The preset ``name`` with its parameters; unknown names or parameters raise one-line errors."""
    if name not in PRESETS:
        raise ChexplainError(f"unknown LRP method {name!r}; choose one of: {', '.join(PRESETS)}")
    factory = PRESETS[name]
    attention = params.pop("attention", "cp")  # every preset: how attention layers are explained
    accepted = list(inspect.signature(factory).parameters)
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise ChexplainError(f"{name} has no parameter {unknown[0]!r}; it takes: {', '.join(accepted + ['attention'])}")
    composite = factory(**params)
    composite.attention = attention
    composite.__post_init__()
    return composite


def _import_rule_modules() -> None:
    """Import every module of :mod:`chexplain.lrp.rules`: a new rule's module registers its
    presets with :func:`preset`."""
    for module in pkgutil.iter_modules(rules.__path__, rules.__name__ + "."):
        importlib.import_module(module.name)


_import_rule_modules()
