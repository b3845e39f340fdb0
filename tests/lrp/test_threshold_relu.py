"""The threshold ReLU of DenseNet canonization (BN → ReLU → linear): the off units' constant is
a bias, so LRP-0 equals gradient × input of the original model and LRP-ε stays bounded on
DenseNets with non-zero BatchNorm shifts and calibrated running statistics
(a canonization that passes the off units' constant down puts LRP-0 off by 6e31 relative on
densenet121, 2e42 on torchxrayvision's)."""

import pytest
import torch
import torchvision

import chexplain
from chexplain.lrp import ops
from chexplain.lrp.values import forward_values as _forward

from .models import calibrated_batchnorm, one_block

TINY = 1e-12


def _xrv(size):
    xrv = pytest.importorskip("torchxrayvision")
    from chexplain.models.densenet import XRVLogits

    return XRVLogits(xrv.models.DenseNet(weights=None)), (1, size, size)


NETS = {
    "one-block": lambda: (one_block(), (3, 8, 8)),
    "densenet121": lambda: (torchvision.models.densenet121(weights=None, num_classes=5), (3, 32, 32)),
    "xrv-densenet": lambda: _xrv(32),
}
SLOW_NETS = {name: (lambda n=name: (getattr(torchvision.models, n)(weights=None, num_classes=5), (3, 32, 32)))
             for name in ("densenet161", "densenet169", "densenet201")}


def _gradient_times_input(model, x, target):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return (grad * x).detach(), out.detach().gather(1, target[:, None])[:, 0]


def _relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _check(name, make):
    model, shape = make()
    model = calibrated_batchnorm(model, shape, seed=1)
    torch.manual_seed(2)
    x = torch.randn(2, *shape, dtype=torch.float64)
    target = torch.tensor([1, 0])
    gxi, logit = _gradient_times_input(model, x, target)
    lrp = chexplain.LRP(model, "lrp-z", stabilizer=TINY)
    graph = lrp.canonized(x)
    assert any(isinstance(n.op, ops.ThresholdReLUOp) for n in graph.nodes)
    with torch.no_grad():
        want = model(x)
    assert _relative(_forward(graph, x)[graph.output], want) <= 1e-6, f"{name}: canonized logits differ"
    res = lrp.explain(x, target=target, report=True)
    assert _relative(res.relevance, gxi) <= 1e-6, f"{name}: LRP-0 differs from gradient × input"
    # input relevance + what the layers absorbed (biases, off-state constants) = the logit
    absorbed = sum(r.absorbed for r in res.report.layers)[:, 0]
    torch.testing.assert_close(res.relevance.flatten(1).sum(1) + absorbed, logit, rtol=1e-6, atol=1e-9)
    # LRP-ε at its default ε stays bounded: at the scale of gradient × input, not 1e16 × the logit
    eps = chexplain.explain(model, x, method="lrp-epsilon", target=target)
    assert _relative(eps, gxi) <= 1e-2, f"{name}: LRP-ε is far from gradient × input"


@pytest.mark.parametrize("name", list(NETS))
def test_lrp0_equals_gradient_times_input_with_batchnorm_shifts(name):
    _check(name, NETS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_NETS))
def test_lrp0_equals_gradient_times_input_larger_densenets(name):
    _check(name, SLOW_NETS[name])


def test_off_units_pass_no_relevance_to_their_input():
    """One block BN → ReLU → conv: where BN(x) ≤ 0 the network ignores x, and so does LRP; the
    conv's report shows the off-state constant's share as absorbed."""
    model = calibrated_batchnorm(one_block(), (3, 8, 8), seed=3)
    torch.manual_seed(4)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    off = model[0](x) <= 0
    assert 0.2 < off.double().mean() < 0.8
    for method in ("lrp-z", "lrp-epsilon", "lrp-alpha2beta1", "lrp-zplus", "epsilon-plus"):
        res = chexplain.LRP(model, method).explain(x, target="all", report=True)
        assert bool((res.relevance[off.unsqueeze(1).expand_as(res.relevance)] == 0).all()), method
        assert bool(torch.isfinite(res.relevance).all())
    res = chexplain.LRP(model, "lrp-z", stabilizer=TINY).explain(x, target=0, report=True)
    conv = next(r for r in res.report.layers if r.path == "2")
    # LRP-0 at the conv: it absorbs Σ_j B_j / z_j · R_j for its whole bias B = z − W'(m ⊙ x), W' = W·a:
    # its own bias, the BatchNorm shift and the off units' constant, from the original model
    bn, conv_layer = model[0], model[2]
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().view(1, -1, 1, 1)
    with torch.no_grad():
        z = conv_layer(model[1](bn(x)))
        B = z - torch.nn.functional.conv2d(a * x * (bn(x) > 0), conv_layer.weight, None, padding=1)
    rel_at_z = _relevance_at(model, x, 0)  # LRP-0: R_j = z_j ∂f/∂z_j
    torch.testing.assert_close(conv.absorbed[:, 0], (B * rel_at_z / z).flatten(1).sum(1), rtol=1e-8, atol=1e-10)

def _relevance_at(model, x, target):
    """z_j ∂f_target/∂z_j at the conv's output (LRP-0 on the layers above is gradient × input)."""
    x = x.detach()
    with torch.no_grad():
        h = model[2](model[1](model[0](x)))
    h = h.clone().requires_grad_(True)
    out = model[4](model[3](h))[:, target].sum()
    (g,) = torch.autograd.grad(out, h)
    return (g * h).detach()
