import pytest
import torch
from captum.attr import NoiseTunnel, Saliency

import chexplain

from .conftest import assert_refused_before_running

CAPTUM = {"plain": "smoothgrad", "squared": "smoothgrad_sq", "vargrad": "vargrad"}


def _same_range(images):
    """Every sample spans [0, 1] exactly, so one noise level serves the batch as in Captum."""
    lo = images.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = images.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (images - lo) / (hi - lo)


@pytest.mark.parametrize("variant", ["plain", "squared", "vargrad"])
def test_equals_captum_noise_tunnel_from_the_same_seed(cnn, images, variant):
    x = _same_range(images)
    ours = chexplain.explain(cnn, x, method="smoothgrad", target=3, n=7, sigma=0.2,
                             variant=variant, batch_size=3 * len(x), seed=11)
    torch.manual_seed(11)
    ref = NoiseTunnel(Saliency(cnn)).attribute(x, nt_type=CAPTUM[variant], nt_samples=7,
                                               nt_samples_batch_size=3, stdevs=0.2, target=3, abs=False)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_zero_noise_is_the_gradient(cnn, images):
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cnn(x)[:, 2].sum(), x)
    sg = chexplain.explain(cnn, images, method="smoothgrad", target=2, sigma=0.0, n=4)
    sq = chexplain.explain(cnn, images, method="smoothgrad", target=2, sigma=0.0, n=4, variant="squared")
    var = chexplain.explain(cnn, images, method="smoothgrad", target=2, sigma=0.0, n=4, variant="vargrad")
    assert torch.allclose(sg, grad, atol=1e-7)
    assert torch.allclose(sq, grad * grad, atol=1e-9)
    assert var.abs().max() < 1e-9


def test_noise_level_is_a_share_of_each_samples_range(cnn, images):
    """A sample scaled by 10 (and the model's first layer by 1/10) sees the same noise."""
    model = torch.nn.Sequential(torch.nn.Identity(), *cnn).eval()
    scaled = torch.nn.Sequential(torch.nn.Identity(), *cnn)
    x = images[:1]
    a = chexplain.explain(model, x, method="smoothgrad", target=0, n=5, seed=4)
    conv = torch.nn.Conv2d(3, 6, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(cnn[0].weight / 10)
        conv.bias.copy_(cnn[0].bias)
    scaled[1] = conv
    b = chexplain.explain(scaled.eval(), 10 * x, method="smoothgrad", target=0, n=5, seed=4)
    assert torch.allclose(a, 10 * b, rtol=1e-4, atol=1e-6)


def test_several_targets_and_the_global_random_state(cnn, images):
    state = torch.random.get_rng_state()
    both = chexplain.explain(cnn, images, method="smoothgrad", classes=[0, 4], n=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    one = chexplain.explain(cnn, images, method="smoothgrad", target=4, n=3)
    assert both.shape == (3, 2, 3, 12, 12)
    assert torch.allclose(both[:, 1], one)


@pytest.mark.parametrize("params, name", [
    ({"sigma": -0.1}, "sigma"), ({"n": 0}, "n"), ({"variant": "cubed"}, "variant"),
    ({"batch_size": 0}, "batch_size"), ({"seed": 1.5}, "seed"),
])
def test_bad_parameters_fail_in_one_line_before_any_work(params, name):
    assert_refused_before_running("smoothgrad", params, name)

