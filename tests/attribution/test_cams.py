import numpy as np
import pytest
import torch
from pytorch_grad_cam import LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import chexplain
from chexplain.cam.gradcam import GradCAM, feature_map

from .conftest import assert_refused_before_running


def _scaled(maps):
    """pytorch-grad-cam's output scaling (per image: shift to 0, divide by 1e-7 + max), twice
    as it applies it (per layer, then after averaging the layers)."""
    for _ in range(2):
        maps = maps - maps.amin((1, 2), keepdim=True)
        maps = maps / (1e-7 + maps.amax((1, 2), keepdim=True))
    return maps


def test_layercam_equals_pytorch_grad_cam_on_the_same_layer(cnn, images):
    ours = chexplain.explain(cnn, images, method="layercam", target=[0, 3, 1], layer="3")
    with LayerCAM(model=cnn, target_layers=[cnn[3]]) as ref_cam:
        ref = ref_cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in (0, 3, 1)])
    assert ours.shape == (3, 12, 12)
    assert ours.max() > 0
    np.testing.assert_allclose(_scaled(ours).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_layercam_is_relu_of_positive_gradients_times_features(cnn, images):
    x = images.clone()
    feats = cnn[:4](x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(cnn[4:](feats)[:, 2].sum(), feats)
    want = (g.clamp(min=0) * feats).sum(1).clamp(min=0)
    got = chexplain.explain(cnn, images, method="layercam", target=2, layer="3")
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_scorecam_channel_softmax_equals_pytorch_grad_cam(cnn, images):
    ours = chexplain.explain(cnn, images, method="scorecam", target=[4, 0, 2], layer="3",
                             weights="channel-softmax", batch_size=5)
    with ScoreCAM(model=cnn, target_layers=[cnn[3]]) as ref_cam:
        ref_cam.batch_size = 5
        ref = ref_cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in (4, 0, 2)])
    assert ours.max() > 0
    np.testing.assert_allclose(_scaled(ours).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_scorecam_probability_weights_follow_the_paper(cnn, images):
    """Wang et al.: α_k = softmax(f(x ∘ H_k))_c with H_k the min-max scaled channel."""
    A = cnn[:4](images).detach()
    want = torch.zeros(3, 12, 12)
    with torch.no_grad():
        for n in range(3):
            for k in range(A.shape[1]):
                a = A[n, k]
                if a.max() == a.min():
                    continue
                mask = (a - a.min()) / (a.max() - a.min())
                p = cnn(images[n : n + 1] * mask).softmax(1)[0, 1]
                want[n] += p * a
    got = chexplain.explain(cnn, images, method="scorecam", classes=[1, 2], layer="3", batch_size=3)
    assert got.shape == (3, 2, 12, 12)
    assert torch.allclose(got[:, 0], want.clamp(min=0), rtol=1e-5, atol=1e-6)


def test_layercam_and_scorecam_use_grad_cams_default_layer(images):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(weights=None, num_classes=3).eval()
    x = torch.rand(1, 3, 64, 64)
    grad_cam = GradCAM(model)
    grad_cam(x)
    assert feature_map(model, x).layer == grad_cam.layer
    default = chexplain.explain(model, x, method="layercam", target=1)
    named = chexplain.explain(model, x, method="layercam", target=1, layer=grad_cam.layer)
    assert torch.equal(default, named)
    small = chexplain.explain(model, x, method="scorecam", target=1, batch_size=128, upsample=False)
    assert small.shape == (1, 2, 2)  # ResNet-18's last feature map at 64 px


@pytest.mark.parametrize("params, name", [
    ({"weights": "logit"}, "weights"), ({"batch_size": 0}, "batch_size"), ({"relu": "no"}, "relu"),
    ({"steps": 3}, "steps"),
])
def test_scorecam_bad_parameters_fail_in_one_line_before_any_work(params, name):
    assert_refused_before_running("scorecam", params, name)
