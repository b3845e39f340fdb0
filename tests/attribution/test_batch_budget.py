"""``batch_size`` of the sampling methods bounds the images of one pass, not the copies per sample."""

import pytest
import torch

import chexplain


class _BatchSizes(torch.nn.Module):
    """Records the batch size of every forward pass of the model it wraps."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.shape[0])
        return self.model(x)


@pytest.mark.parametrize("method,params", [("smoothgrad", {"n": 7}),
                                           ("occlusion", {"window": 4, "stride": 2})])
def test_batch_size_is_a_budget_of_images_per_pass(cnn, images, method, params):
    """A pass holds at most batch_size images whatever the number of samples (3 here): 7 noisy
    copies or 25 patches per sample in passes of 2 copies/patches of each sample."""
    wrapped = _BatchSizes(cnn).eval()
    budget = chexplain.explain(wrapped, images, method=method, target=1, batch_size=7, **params)
    passes = [s for s in wrapped.seen if s != len(images)]  # the target's forward is one image each
    assert passes and max(passes) <= 7 and max(passes) == 2 * len(images)
    one = chexplain.explain(cnn, images, method=method, target=1, batch_size=1, **params)
    if method == "occlusion":
        assert torch.allclose(budget, one, rtol=1e-5, atol=1e-6)
