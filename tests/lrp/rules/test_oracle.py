"""Every rule equals the per-neuron formula of its paper (float64, ≤ 1e-8 relative)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import chexplain
from chexplain.lrp import make_composite, rules
from chexplain.lrp.graph import trace

from ..oracle import dense_matrix, lrp_oracle, sequential_oracle

LAYERS = {
    "dense": lambda bias: nn.Linear(7, 5, bias=bias),
    "conv2d": lambda bias: nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias),
    "conv2d-dilated-groups": lambda bias: nn.Conv2d(4, 6, 3, stride=1, padding=2, dilation=2, groups=2, bias=bias),
    "conv1d": lambda bias: nn.Conv1d(3, 4, 3, stride=2, padding=1, bias=bias),
    # an image stem: its transposed convolution runs as a sub-pixel convolution (ops.subpixel_transpose)
    "conv2d-stem": lambda bias: nn.Conv2d(3, 5, 7, stride=2, padding=3, bias=bias),
    "convT2d": lambda bias: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, bias=bias),
    "convT2d-dilated-groups": lambda bias: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                                              dilation=2, groups=2, bias=bias),
    # output_padding ≥ stride (allowed below the dilation): rows no input reaches
    "convT2d-outpad-dilation": lambda bias: nn.ConvTranspose2d(3, 4, 2, padding=1, output_padding=2, dilation=3,
                                                               bias=bias),
    "convT1d": lambda bias: nn.ConvTranspose1d(3, 4, 4, stride=3, padding=1, output_padding=2, bias=bias),
    "convT3d": lambda bias: nn.ConvTranspose3d(2, 3, 2, stride=2, padding=(0, 1, 0), bias=bias),
}
SHAPES = {"dense": (7,), "conv2d": (4, 7, 7), "conv2d-dilated-groups": (4, 6, 6), "conv1d": (3, 9),
          "conv2d-stem": (3, 9, 8), "convT2d": (4, 5, 5), "convT2d-dilated-groups": (4, 4, 4),
          "convT2d-outpad-dilation": (3, 4, 5), "convT1d": (3, 5), "convT3d": (2, 2, 3, 2)}

RULES = {
    "z": (lambda: rules.Z(), {"eps": 1e-12}),
    "epsilon": (lambda: rules.Epsilon(0.1), {"eps": 0.1}),
    "gamma": (lambda: rules.Gamma(0.3), {"gamma": 0.3}),
    "alpha1beta0": (lambda: rules.AlphaBeta(1.0, 0.0), {"alpha": 1.0, "beta": 0.0}),
    "alpha2beta1": (lambda: rules.AlphaBeta(2.0, 1.0), {"alpha": 2.0, "beta": 1.0}),
    "alpha3beta2": (lambda: rules.AlphaBeta(3.0, 2.0), {"alpha": 3.0, "beta": 2.0}),
    "zplus": (lambda: rules.ZPlus(), {}),
    # the conservative fallback for empty sides (an option)
    "alpha1beta0-conserve": (lambda: rules.AlphaBeta(1.0, 0.0, empty="conserve"),
                             {"alpha": 1.0, "beta": 0.0, "empty": "conserve"}),
    "alpha2beta1-conserve": (lambda: rules.AlphaBeta(2.0, 1.0, empty="conserve"),
                             {"alpha": 2.0, "beta": 1.0, "empty": "conserve"}),
    "zplus-conserve": (lambda: rules.ZPlus(empty="conserve"), {"empty": "conserve"}),
    "wsquare": (lambda: rules.WSquare(), {}),
    "flat": (lambda: rules.Flat(), {}),
    "zbox": (lambda: rules.ZBox(-1.5, 2.0), {}),
}
ORACLE_NAME = {"alpha1beta0": "alphabeta", "alpha2beta1": "alphabeta", "alpha3beta2": "alphabeta",
               "alpha1beta0-conserve": "alphabeta", "alpha2beta1-conserve": "alphabeta", "zplus-conserve": "zplus"}


def _without_bias(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's map x -> W x (its bias left out), from torch's own functionals."""
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}[x.ndim]
        return fn(x, layer.weight, None, layer.stride, layer.padding, layer.output_padding, layer.groups,
                  layer.dilation)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return layer._conv_forward(x, layer.weight, None)
    return x @ layer.weight.T


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
    if rule_name.endswith("conserve") or rule_name.startswith(("alpha", "zplus")):
        x[0] = x[0].abs()  # ≥ 0 inputs: neurons with an empty side (a row of w of one sign) occur
        if isinstance(layer, nn.modules.conv._ConvTransposeNd):  # weight (C_in, C_out/g, *K)
            layer.weight.data[:, 0] = layer.weight.data[:, 0].abs()
            layer.weight.data[:, -1] = -layer.weight.data[:, -1].abs()
        elif isinstance(layer, nn.Linear):
            layer.weight.data[0] = layer.weight.data[0].abs()
            layer.weight.data[1] = -layer.weight.data[1].abs()
        else:
            layer.weight.data[0] = layer.weight.data[0].abs()
            layer.weight.data[-1] = -layer.weight.data[-1].abs()
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

    W = dense_matrix(lambda v: _without_bias(layer, v.unsqueeze(0))[0], in_shape)
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


LOW, HIGH = -1.5, 2.0


def sum_pool(channels: int) -> nn.Conv2d:
    """2×2 sum pooling as a depthwise convolution with unit weights (an explicit linear layer)."""
    pool = nn.Conv2d(channels, channels, 2, stride=2, groups=channels, bias=False)
    nn.init.ones_(pool.weight)
    return pool


def lenet_sum_pool() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), sum_pool(4), nn.Conv2d(4, 6, 5), nn.ReLU(),
                         sum_pool(6), nn.Flatten(), nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 5))


# preset (and its parameters) -> oracle rule of (dense layers, convolutions, the first layer)
EPS = ("epsilon", {"eps": 1e-6})
ZP = ("zplus", {})
AB21 = ("alphabeta", {"alpha": 2.0, "beta": 1.0})
BOX = ("zbox", {"low": LOW, "high": HIGH})
PRESET_ORACLES = {
    "lrp-z": ({}, ("z", {"eps": 1e-12}), None, None),
    "lrp-epsilon": ({"epsilon": 0.1}, ("epsilon", {"eps": 0.1}), None, None),
    "lrp-alpha1beta0": ({}, ("alphabeta", {"alpha": 1.0, "beta": 0.0}), None, None),
    "lrp-alpha2beta1": ({}, AB21, None, None),
    "lrp-alpha2beta1-conserve": ({"empty": "conserve"}, ("alphabeta", {"alpha": 2.0, "beta": 1.0, "empty": "conserve"}),
                                 None, None),
    "lrp-zplus": ({}, ZP, None, None),
    "lrp-zplus-conserve": ({"empty": "conserve"}, ("zplus", {"empty": "conserve"}), None, None),
    "dtd": ({}, ZP, None, ("wsquare", {})),
    "dtd-box": ({"low": LOW, "high": HIGH}, ZP, None, BOX),
    "epsilon-plus": ({}, EPS, ZP, None),
    "epsilon-plus-flat": ({}, EPS, ZP, ("flat", {})),
    "epsilon-gamma-box": ({"low": LOW, "high": HIGH}, EPS, ("gamma", {"gamma": 0.25}), BOX),
    "epsilon-alpha2beta1": ({}, EPS, AB21, None),
    "epsilon-alpha2beta1-flat": ({}, EPS, AB21, ("flat", {})),
}


@pytest.mark.parametrize("case", list(PRESET_ORACLES))
def test_preset_equals_per_neuron_formula_at_every_layer(case):
    """Every preset on a LeNet with sum pooling (unit-weight depthwise convolutions) equals the
    per-neuron formulas applied literally layer by layer (float64, ≤ 1e-8 relative)."""
    params, dense, conv, first = PRESET_ORACLES[case]
    conv = conv or dense
    torch.manual_seed(21)
    model = lenet_sum_pool().double().eval()
    for layer in model:
        if getattr(layer, "bias", None) is not None:
            nn.init.uniform_(layer.bias, -0.3, 0.3)
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64) * (HIGH - LOW) + LOW
    target = torch.tensor([2, 4])
    preset = case.removesuffix("-conserve").replace("dtd-box", "dtd")
    got = chexplain.explain(model, x, method=preset, target=target, **params)
    kinds = ["conv", "conv", "conv", "conv", "dense", "dense"]  # the linear layers, in order

    def rule_of(k, is_first):
        return first if is_first and first is not None else (dense if kinds[k] == "dense" else conv)

    for i in range(2):
        with torch.no_grad():
            logit = model(x[i:i + 1])[0]
        R = torch.zeros_like(logit)
        R[target[i]] = logit[target[i]]
        want = sequential_oracle(model, x[i], R, rule_of)
        err = ((got[i] - want).abs().max() / want.abs().max()).item()
        assert err <= 1e-8, f"{case}: relative error {err:.3g}"


def test_alpha2beta1_literal_differs_from_the_conservative_fallback():
    """Sum pooling after a ReLU has no negative contributions: Eq. 60 passes α·R_j = 2 R_j there,
    the fallback R_j, so the totals differ by a factor 2 per pooling layer (here two: 4)."""
    torch.manual_seed(22)
    model = nn.Sequential(nn.ReLU(), sum_pool(2), nn.ReLU(), sum_pool(2), nn.Flatten(), nn.Linear(8, 3)).double().eval()
    with torch.no_grad():
        model[5].weight.abs_()
        model[5].bias.zero_()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    literal = chexplain.explain(model, x, method="lrp-alpha2beta1", target=0, stabilizer=1e-15)
    conserve = chexplain.explain(model, x, method="lrp-alpha2beta1", target=0, empty="conserve", stabilizer=1e-15)
    logit = model(x)[:, 0].detach()
    # the top layer has positive weights and inputs: α R passes there too (a third factor 2)
    torch.testing.assert_close(literal.flatten(1).sum(1), 8 * logit, rtol=1e-10, atol=0)
    torch.testing.assert_close(conserve.flatten(1).sum(1), logit, rtol=1e-10, atol=0)


def test_empty_option_is_validated():
    from chexplain.errors import ChexplainError

    with pytest.raises(ChexplainError, match="empty must be 'literal'"):
        make_composite("lrp-zplus", empty="bogus")
    with pytest.raises(ChexplainError, match="empty must be 'literal'"):
        rules.AlphaBeta(2.0, 1.0, empty="conservative")
    comp = make_composite("epsilon-alpha2beta1-flat", empty="conserve")
    assert comp.layer_map["conv"].empty == "conserve" and rules.ZPlus().empty == "literal"
    assert rules.Z().epsilon == 1e-12 and make_composite("lrp-z").stabilizer == 1e-12
