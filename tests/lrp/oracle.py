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
               connectivity: torch.Tensor | None = None, empty: str = "literal") -> torch.Tensor:
    """R_i for one sample: W (J, I), b (J,), x (I,), R (J,) → (I,). ``empty`` (αβ, z⁺): "literal"
    (Eq. 60 as written) or "conserve" (an empty side passes all of R_j through the other)."""
    zij = x[:, None] * W.T  # (I, J): z_ij = x_i w_ij
    zj = zij.sum(0) + b
    if rule in ("z", "epsilon"):
        return (zij / stab(zj, eps)[None, :] * R[None, :]).sum(1)
    if rule == "alphabeta":
        zp, zn = zij.clamp(min=0), zij.clamp(max=0)
        sp, sn = zp.sum(0) + b.clamp(min=0), zn.sum(0) + b.clamp(max=0)
        a = torch.full_like(sp, alpha)
        c = torch.full_like(sn, beta)
        if empty == "conserve":  # one side empty: all of R_j goes through the other side
            a = torch.where(sn == 0, 1.0, alpha).double().masked_fill(sp == 0, 0.0)
            c = torch.where(sn == 0, 0.0, beta).double().masked_fill(sp == 0, -1.0)
        return (a * zp / stab(sp, eps)[None, :] * R[None, :] - c * zn / stab(sn, eps)[None, :] * R[None, :]).sum(1)
    if rule == "zplus":
        zp, zn = zij.clamp(min=0), zij.clamp(max=0)
        q = zp
        if empty == "conserve":
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


def sequential_oracle(layers, x: torch.Tensor, R: torch.Tensor, rule_of) -> torch.Tensor:
    """LRP through an ``nn.Sequential`` of Linear / Conv2d (any groups: a sum pooling is a
    depthwise conv with unit weights) / ReLU / Flatten layers for one sample x (*in), applying
    the per-neuron formula of :func:`lrp_oracle` at every linear layer; ``R``: the output
    relevance (J,); ``rule_of(k, is_first) -> (rule name, kwargs)`` for the k-th linear layer."""
    import torch.nn as nn

    acts, shapes, v = [], [], x
    with torch.no_grad():
        for layer in layers:  # the forward, keeping every layer's input
            acts.append(v.reshape(-1))
            shapes.append(v.shape)
            v = layer(v.unsqueeze(0))[0]
    linear = [i for i, layer in enumerate(layers) if isinstance(layer, (nn.Linear, nn.Conv2d))]
    for i in reversed(range(len(layers))):
        layer = layers[i]
        if isinstance(layer, (nn.ReLU, nn.Flatten)):
            continue  # relevance passes (a ReLU), or only its shape changes (flatten: same order)
        with torch.no_grad():  # the layer's matrix from one forward of the basis vectors, no bias
            basis = torch.eye(acts[i].numel(), dtype=torch.float64).reshape(-1, *shapes[i])
            cols = basis @ layer.weight.T if isinstance(layer, nn.Linear) else \
                layer._conv_forward(basis, layer.weight, None)
            W = cols.reshape(basis.shape[0], -1).T
        out_shape = layer(torch.zeros(shapes[i], dtype=torch.float64).unsqueeze(0))[0].shape
        b = torch.zeros(W.shape[0], dtype=torch.float64) if layer.bias is None else \
            layer.bias.detach().view(-1, *([1] * (len(out_shape) - 1))).expand(out_shape).reshape(-1)
        name, kwargs = rule_of(linear.index(i), i == linear[0])
        kwargs = dict(kwargs)
        if name == "flat":
            kwargs["connectivity"] = (W != 0).double()
        if name == "zbox":
            kwargs["low"] = torch.full_like(acts[i], kwargs["low"])
            kwargs["high"] = torch.full_like(acts[i], kwargs["high"])
        if name in ("zbox", "zplus", "wsquare", "flat"):
            b = torch.zeros_like(b)  # biases ignored (Montavon et al. 2017)
        R = lrp_oracle(name, W, b, acts[i], R, **kwargs)
    return R.reshape(x.shape)
