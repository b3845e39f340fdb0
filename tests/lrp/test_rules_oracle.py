"""Every rule equals the per-neuron formula of its paper (float64, ≤ 1e-8 relative)."""

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.lrp import rules
from chexplain.lrp.graph import trace

from .oracle import dense_matrix, lrp_oracle

LAYERS = {
    "dense": lambda bias: nn.Linear(7, 5, bias=bias),
    "conv2d": lambda bias: nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias),
    "conv2d-dilated-groups": lambda bias: nn.Conv2d(4, 6, 3, stride=1, padding=2, dilation=2, groups=2, bias=bias),
    "conv1d": lambda bias: nn.Conv1d(3, 4, 3, stride=2, padding=1, bias=bias),
    # an image stem: its transposed convolution runs as a sub-pixel convolution (ops.subpixel_transpose)
    "conv2d-stem": lambda bias: nn.Conv2d(3, 5, 7, stride=2, padding=3, bias=bias),
}
SHAPES = {"dense": (7,), "conv2d": (4, 7, 7), "conv2d-dilated-groups": (4, 6, 6), "conv1d": (3, 9),
          "conv2d-stem": (3, 9, 8)}

RULES = {
    "z": (lambda: rules.Z(1e-6), {}),
    "epsilon": (lambda: rules.Epsilon(0.1), {"eps": 0.1}),
    "gamma": (lambda: rules.Gamma(0.3), {"gamma": 0.3}),
    "alpha1beta0": (lambda: rules.AlphaBeta(1.0, 0.0), {"alpha": 1.0, "beta": 0.0}),
    "alpha2beta1": (lambda: rules.AlphaBeta(2.0, 1.0), {"alpha": 2.0, "beta": 1.0}),
    "alpha3beta2": (lambda: rules.AlphaBeta(3.0, 2.0), {"alpha": 3.0, "beta": 2.0}),
    "zplus": (lambda: rules.ZPlus(), {}),
    "wsquare": (lambda: rules.WSquare(), {}),
    "flat": (lambda: rules.Flat(), {}),
    "zbox": (lambda: rules.ZBox(-1.5, 2.0), {}),
}
ORACLE_NAME = {"alpha1beta0": "alphabeta", "alpha2beta1": "alphabeta", "alpha3beta2": "alphabeta"}


def _layer_op(layer: nn.Module):
    graph = trace(nn.Sequential(layer))
    return graph.nodes[1].op


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("rule_name", list(RULES))
def test_rule_equals_per_neuron_formula(rule_name, layer_name, bias):
    torch.manual_seed(hash((rule_name, layer_name, bias)) % 2**31)
    layer = LAYERS[layer_name](bias).double()
    if bias:
        nn.init.uniform_(layer.bias, -0.5, 0.5)
    in_shape = SHAPES[layer_name]
    n, t = 2, 3
    x = torch.randn(n, *in_shape, dtype=torch.float64)  # mixed-sign inputs
    op = _layer_op(layer).to(torch.float64, torch.device("cpu"))
    z = op.forward(x)
    R = torch.randn(n, t, *z.shape[1:], dtype=torch.float64)
    make, kwargs = RULES[rule_name]
    got = make()(op, x, z, R)
    assert got.shape == (n, t, *in_shape)
    fused = make().forward_prepare(op, x)  # αβ and γ: the layer's output from the rule's own forwards
    if fused is not None:
        torch.testing.assert_close(fused[0], z, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(make().apply(op, x, fused[1], R), got, rtol=1e-10, atol=1e-12)

    W = dense_matrix(lambda v: layer._conv_forward(v.unsqueeze(0), layer.weight, None)[0]
                     if isinstance(layer, (nn.Conv1d, nn.Conv2d)) else v @ layer.weight.T, in_shape)
    b = (layer.bias.detach().view(-1, *([1] * (len(z.shape) - 2))).expand(z.shape[1:]).reshape(-1)
         if bias else torch.zeros(W.shape[0], dtype=torch.float64))
    ones_layer = LAYERS[layer_name](False).double()
    nn.init.ones_(ones_layer.weight)
    C = dense_matrix(lambda v: ones_layer(v.unsqueeze(0))[0], in_shape)
    for i in range(n):
        for k in range(t):
            extra = dict(kwargs)
            if rule_name == "zbox":
                extra.update(low=torch.full((x[i].numel(),), -1.5, dtype=torch.float64),
                             high=torch.full((x[i].numel(),), 2.0, dtype=torch.float64))
                b_used = torch.zeros_like(b)
            else:
                b_used = b
            want = lrp_oracle(ORACLE_NAME.get(rule_name, rule_name), W.detach(), b_used, x[i].reshape(-1),
                              R[i, k].reshape(-1), connectivity=C.detach(), **extra)
            err = (got[i, k].reshape(-1) - want).abs().max() / want.abs().max().clamp(min=1e-300)
            assert err <= 1e-8, f"{rule_name} on {layer_name}: relative error {err:.3g}"


def test_end_to_end_single_layer_uses_logit_as_relevance():
    """Through the engine: the relevance put on the target is its logit (Bach et al. Eq. 2)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(7, 5)).double().eval()
    x = torch.randn(3, 7, dtype=torch.float64)
    R = chexplain.explain(model, x, method="lrp-epsilon", target=2, epsilon=0.1)
    W, b = model[0].weight.detach(), model[0].bias.detach()
    for i in range(3):
        logits = x[i] @ W.T + b
        want = lrp_oracle("epsilon", W, b, x[i], torch.eye(5, dtype=torch.float64)[2] * logits[2], eps=0.1)
        torch.testing.assert_close(R[i], want, rtol=1e-10, atol=1e-12)
