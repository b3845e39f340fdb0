import pytest
import torch
from captum.attr import IntegratedGradients

import chexplain
from chexplain.attribution.integrated_gradients import gaussian_blur

from .conftest import assert_refused_before_running, small_cnn


def _completeness(model, x, reference, steps=64, **kw):
    with torch.no_grad():
        logits, base = model(x), model(reference)
    t = logits.argmax(1)
    attr = chexplain.explain(model, x, method="integrated-gradients", steps=steps, **kw)
    want = logits.gather(1, t[:, None])[:, 0] - base.gather(1, t[:, None])[:, 0]
    return attr.flatten(1).sum(1), want


def test_completeness_small_relu_cnn():
    model = small_cnn(torch.float64)
    with torch.no_grad():
        model[-1].weight.mul_(20)  # logits far enough apart that 1 % is a real bound
    x = 2 * torch.randn(2, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got, want = _completeness(model, x, torch.zeros_like(x))
    assert torch.allclose(got, want, rtol=0.01, atol=0)
    assert want.abs().min() > 0.1  # the check is not vacuous


def test_completeness_densenet121_blur_baseline():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.densenet121(weights=None, num_classes=4).double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    got, want = _completeness(model, x, gaussian_blur(x, 10.0), baseline="blur", batch_size=32)
    assert torch.allclose(got, want, rtol=0.01, atol=0)
    assert want.abs().min() > 1e-6


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle", "riemann_left", "riemann_right"])
def test_equals_captum_on_the_same_settings(cnn, images, rule):
    base = torch.full_like(images, 0.3)
    ours = chexplain.explain(cnn, images, method="integrated-gradients", classes=[1, 4], steps=20,
                             baseline=base, rule=rule, batch_size=7)
    ig = IntegratedGradients(cnn)
    assert ours.shape == (3, 2, 3, 12, 12)
    for j, c in enumerate([1, 4]):
        ref = ig.attribute(images, baselines=base, target=c, n_steps=20, method=rule)
        assert torch.allclose(ours[:, j], ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_trapezoid_weights_sum_to_one_where_captums_sum_to_one_minus_1_over_n(cnn, images):
    ours = chexplain.explain(cnn, images, method="integrated-gradients", target=2, steps=20,
                             rule="riemann_trapezoid")
    ref = IntegratedGradients(cnn).attribute(images, target=2, n_steps=20, method="riemann_trapezoid")
    assert torch.allclose(ours * (1 - 1 / 20), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    model = small_cnn(torch.float64)
    with torch.no_grad():
        model[-1].weight.mul_(20)
    x = 2 * torch.randn(2, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got, want = _completeness(model, x, torch.zeros_like(x), rule="riemann_trapezoid")
    assert torch.allclose(got, want, rtol=0.01, atol=0)


def test_batch_size_does_not_change_the_result(cnn, images):
    a = chexplain.explain(cnn, images, method="integrated-gradients", target=2, steps=16, batch_size=3)
    b = chexplain.explain(cnn, images, method="integrated-gradients", target=2, steps=16, batch_size=1000)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_blur_baseline_is_smoother_and_keeps_the_mean():
    x = torch.rand(1, 2, 20, 20, generator=torch.Generator().manual_seed(5))
    b = gaussian_blur(x, 2.0)
    assert b.shape == x.shape
    assert b.std() < 0.5 * x.std()
    assert abs(float(b.mean() - x.mean())) < 0.02


@pytest.mark.parametrize("params, name", [
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"baseline": "mean"}, "baseline"),
    ({"rule": "simpson"}, "rule"), ({"rule": "riemann_trapezoid", "steps": 1}, "steps"), ({"batch_size": -1}, "batch_size"), ({"bogus": 1}, "bogus"),
])
def test_bad_parameters_fail_in_one_line_before_any_work(params, name):
    assert_refused_before_running("integrated-gradients", params, name)
