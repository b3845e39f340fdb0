import pytest
import torch
from captum.attr import Occlusion

import chexplain

from .conftest import assert_refused_before_running, small_cnn


def _by_hand(model, x, c, window, stride, value):
    """Zeiler & Fergus: the logit's drop per patch, averaged over the patches covering a pixel."""
    n, ch, h, w = x.shape
    total, count = torch.zeros_like(x), torch.zeros_like(x)
    with torch.no_grad():
        ref = model(x)[:, c]
        for i in range(0, h - window + 1, stride):
            for j in range(0, w - window + 1, stride):
                occluded = x.clone()
                occluded[:, :, i:i + window, j:j + window] = value
                drop = ref - model(occluded)[:, c]
                total[:, :, i:i + window, j:j + window] += drop.view(-1, 1, 1, 1)
                count[:, :, i:i + window, j:j + window] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def test_equals_the_definition_and_captum(cnn, images):
    ours = chexplain.explain(cnn, images, method="occlusion", target=1, window=4, stride=2,
                             baseline=0.5, batch_size=5 * len(images))
    hand = _by_hand(cnn, images, 1, 4, 2, 0.5)
    ref = Occlusion(cnn).attribute(images, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
                                   baselines=0.5, target=1)
    scale = ref.abs().max().item()
    assert scale > 0
    assert torch.allclose(ours, hand, rtol=1e-5, atol=1e-5 * scale)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)


def test_patches_cut_by_the_border_as_captum(images):
    # float64: a drop of a logit is a difference of near-equal numbers, which float32 rounds
    # differently in the channels-last layout chexplain convolves in (a few 1e-8 here)
    cnn, images = small_cnn(torch.float64), images.double()
    ours = chexplain.explain(cnn, images, method="occlusion", target=0, window=5, stride=3)
    ref = Occlusion(cnn).attribute(images, sliding_window_shapes=(3, 5, 5), strides=(3, 3, 3),
                                   baselines=0.0, target=0)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    assert (ours[..., -1] != 0).any()  # the last column is explained too


def test_several_targets(cnn, images):
    both = chexplain.explain(cnn, images, method="occlusion", classes=[2, 0], window=6, stride=3)
    assert both.shape == (3, 2, 3, 12, 12)
    assert torch.allclose(both[:, 1], _by_hand(cnn, images, 0, 6, 3, 0.0), atol=1e-6)


@pytest.mark.parametrize("params, name", [
    ({"window": 13}, "window"), ({"window": 0}, "window"), ({"stride": 0}, "stride"), ({"window": 4, "stride": 5}, "stride"),
    ({"baseline": float("nan")}, "baseline"), ({"baseline": "zero"}, "baseline"),
])
def test_bad_parameters_fail_in_one_line_before_any_work(params, name):
    assert_refused_before_running("occlusion", params, name, side=12)
