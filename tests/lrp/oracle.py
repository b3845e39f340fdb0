"""Independent oracles: the papers' per-neuron LRP formulas on an explicit weight matrix.

A layer (dense or convolution) is written as its dense matrix W (out × in), obtained from
autograd's Jacobian of the layer (not from chexplain's code), and every rule is evaluated by
materialising the contributions z_ij = x_i W_ji, exactly as in the papers.
"""

from __future__ import annotations

import torch


def stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).double()


def dense_matrix(fn, in_shape) -> torch.Tensor:
    """The matrix of the linear map ``fn`` (no bias) for one sample of ``in_shape``: (out, in)."""
    x0 = torch.zeros(in_shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(fn, x0)
    out_numel = jac.numel() // x0.numel()
    return jac.reshape(out_numel, x0.numel())


def lrp_oracle(rule: str, W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, R: torch.Tensor, *,
               eps: float = 1e-6, gamma: float = 0.25, alpha: float = 2.0, beta: float = 1.0,
               low: torch.Tensor | None = None, high: torch.Tensor | None = None,
               connectivity: torch.Tensor | None = None) -> torch.Tensor:
    """R_i for one sample: W (J, I), b (J,), x (I,), R (J,) → (I,)."""
    zij = x[:, None] * W.T  # (I, J): z_ij = x_i w_ij
    zj = zij.sum(0) + b
    if rule in ("z", "epsilon"):
        return (zij / stab(zj, eps)[None, :] * R[None, :]).sum(1)
    if rule == "alphabeta":
        zp, zn = zij.clamp(min=0), zij.clamp(max=0)
        sp, sn = zp.sum(0) + b.clamp(min=0), zn.sum(0) + b.clamp(max=0)
        # one side empty: all of R_j goes through the other side (conservative limit of Eq. 60)
        a = torch.where(sn == 0, 1.0, alpha).double().masked_fill(sp == 0, 0.0)
        c = torch.where(sn == 0, 0.0, beta).double().masked_fill(sp == 0, -1.0)
        return (a * zp / stab(sp, eps)[None, :] * R[None, :] - c * zn / stab(sn, eps)[None, :] * R[None, :]).sum(1)
    if rule == "zplus":
        zp, zn = zij.clamp(min=0), zij.clamp(max=0)
        q = torch.where(zp.sum(0)[None, :] == 0, zn, zp)  # no positive part: the negative one
        return (q / stab(q.sum(0), eps)[None, :] * R[None, :]).sum(1)
    if rule == "gamma":
        out = torch.zeros_like(x)
        for j in range(W.shape[0]):
            if zj[j] > 0:
                q = zij[:, j] + gamma * zij[:, j].clamp(min=0)
                d = q.sum() + b[j] + gamma * b[j].clamp(min=0)
            elif zj[j] < 0:
                q = zij[:, j] + gamma * zij[:, j].clamp(max=0)
                d = q.sum() + b[j] + gamma * b[j].clamp(max=0)
            else:
                continue
            out += q / stab(d, eps) * R[j]
        return out
    if rule == "wsquare":
        q = (W.T) ** 2
        return (q / stab(q.sum(0), eps)[None, :] * R[None, :]).sum(1)
    if rule == "flat":
        q = connectivity.T
        return (q / stab(q.sum(0), eps)[None, :] * R[None, :]).sum(1)
    if rule == "zbox":
        q = x[:, None] * W.T - low[:, None] * W.T.clamp(min=0) - high[:, None] * W.T.clamp(max=0)
        return (q / stab(q.sum(0), eps)[None, :] * R[None, :]).sum(1)
    raise ValueError(rule)
