"""stab(z) = z + ε·sign(z), with sign(0) = +1 (Bach et al. 2015 Eq. 58): the stabilised
denominators of the LRP rules and of the proportional rules of sums and pooling."""

from __future__ import annotations

from typing import Optional

import torch

Tensor = torch.Tensor


def inverse(z: Tensor, epsilon: float, mask: Optional[Tensor] = None) -> Tensor:
    """1 / stab(z) (times ``mask``): the per-neuron factor s_j = R_j · inverse_j.

    Computed as 1 / (z + copysign(ε, z)), which differs from stab only at z = −0, where every
    contribution z_ij is zero, so R_i does not depend on it.
    """
    inv = torch.full_like(z, epsilon).copysign_(z).add_(z).reciprocal_()
    return inv if mask is None else inv.mul_(mask)


def inverse_signed(z: Tensor, epsilon: float, sign: float) -> Tensor:
    """1 / stab(z) for z of known sign (z ≥ 0 for sign +1, z ≤ 0 for −1), **in place** on a
    z the caller no longer needs: two passes, not four. At z = 0 it may differ from stab's
    sign(0) = +1, where only zero contributions meet it."""
    return z.add_(epsilon * sign).reciprocal_()
