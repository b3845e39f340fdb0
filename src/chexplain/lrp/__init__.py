"""Layer-wise Relevance Propagation: graph (torch.fx), rules, composites, canonization, engine."""

from .composites import PRESETS, Composite, make_composite
from .engine import LRP, Explanation
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, Z, ZBox, ZPlus

__all__ = ["LRP", "Explanation", "Composite", "PRESETS", "make_composite", "Rule", "Z", "Epsilon", "Gamma",
           "AlphaBeta", "ZPlus", "WSquare", "Flat", "ZBox"]
