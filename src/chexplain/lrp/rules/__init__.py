"""LRP rules for linear layers (dense, convolution, per-channel affine).

Every rule maps the relevance R_j of a layer's outputs to its inputs,

    R_i = Σ_j  q_ij / Σ_i' q_i'j · R_j,

for a rule-specific contribution q_ij. All are computed with the layer's own transposed
operation: z = Σ_k f(a_k; w_k) + b (a forward with modified inputs a_k and weights w_k),
s = R / stab(z), R_i = Σ_k a_k,i · (w_kᵀ s)_i — never by materialising q_ij.

Shapes: x (N, *in) the layer input, z (N, *out) its output, R (N, T, *out) the relevance of T
targets; a rule returns (N, T, *in).

Every rule is linear in R: ``prepare`` computes what does not depend on R (modified forwards,
1/stab(z), masks) once per layer and explanation, ``apply`` maps any number of targets, so that
the engine can process targets in chunks without repeating the forwards.

stab(z) = z + ε·sign(z), with sign(0) = +1 (the convention of Bach et al. 2015 Eq. 58).
Stabilisers: LRP-ε's ε is a parameter of the method; in every other rule ε (``stabilizer``)
only keeps denominators away from zero: 1e-12 for LRP-0 (so it is Eq. 56, not LRP-ε with a
small ε), 1e-6 for γ, αβ, z⁺, w², flat and z^B (as in Zennit, whose denominators are sums of
same-signed terms, where ε matters only when they vanish).

Empty sides (αβ, z⁺): where a neuron has no positive (negative) contributions the literal
formula gives that side nothing (its numerators are zero), as in Bach et al. 2015 Eq. 60, the
LRP Toolbox, Zennit and iNNvestigate; ``empty="conserve"`` instead sends all of R_j through
the other side, which keeps the rule conservative (an option).

One module per rule (its presets, if it brings new ones, registered there with
:func:`chexplain.lrp.composites.preset`); the shared linear core in :mod:`.core`.
"""

from .alphabeta import AlphaBeta
from .base import EMPTY_MODES, LRP0_STABILIZER, Rule, SignedRule
from .epsilon import Epsilon, Z
from .gamma import Gamma
from .wsquare import Flat, WSquare
from .zbox import ZBox
from .zplus import ZPlus

__all__ = ["Rule", "SignedRule", "Z", "Epsilon", "Gamma", "AlphaBeta", "ZPlus", "WSquare", "Flat", "ZBox",
           "LRP0_STABILIZER", "EMPTY_MODES"]
