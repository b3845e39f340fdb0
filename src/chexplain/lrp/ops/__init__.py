"""The operations of a traced model, each with its own forward and relevance.

A model becomes a list of nodes (:mod:`chexplain.lrp.graph`); every node holds one
:class:`Op`. Linear layers (dense, convolution, per-channel affine) expose their forward with
arbitrary (modified) weights and the matching vector-Jacobian product, so that every LRP rule
is computed with the layer's own transposed operation, never by materialising z_ij.

Every module of this package is imported by :func:`chexplain.lrp.registry.load`: a new
operation is one module here whose converters register themselves
(:func:`~chexplain.lrp.registry.register_module`, ``register_function``, ``register_method``).
This namespace holds the operation kinds the engine and canonization look for.
"""

from .base import Op
from .core import (ActivationOp, AddOp, CatOp, IdentityOp, MaxPoolOp, MetaOp, OffStateOp, PoolOp, ReshapeOp,
                   ThresholdReLUOp)
from .linear import SUBPIXEL_MAX_CHANNELS, AffineOp, ConvOp, DenseOp, LinearOp, TokenDenseOp, subpixel_transpose

__all__ = ["Op", "ActivationOp", "AddOp", "CatOp", "IdentityOp", "MaxPoolOp", "MetaOp", "OffStateOp", "PoolOp",
           "ReshapeOp", "ThresholdReLUOp", "SUBPIXEL_MAX_CHANNELS", "AffineOp", "ConvOp", "DenseOp", "LinearOp",
           "TokenDenseOp", "subpixel_transpose"]
