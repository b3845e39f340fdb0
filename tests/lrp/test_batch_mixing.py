"""A model that mixes the samples of a batch (CSATv2's spatial attention multiplies q (B, N) by
kᵀ (N, B), attending across the batch) has no per-sample explanation: it is refused as an
unsupported model, in one line naming the op and the module path, from the shape pass that
precedes every computation, not reported as a mistake in the caller's input."""

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.errors import InputError, UnsupportedModelError


class CrossBatch(nn.Module):
    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.q = nn.Linear(features, features, bias=False)
        self.k = nn.Linear(features, features, bias=False)

    def forward(self, x):  # (B, 5)
        return self.q(x) @ self.k(x).transpose(-1, -2) @ x  # (B, B) @ (B, 5)


class Net(nn.Module):
    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.mix = CrossBatch(features)
        self.head = nn.Linear(features, 3)

    def forward(self, x):
        return self.head(self.mix(x))


def test_cross_batch_product_is_refused_naming_the_layer():
    torch.manual_seed(0)
    model = Net().double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    with torch.no_grad():  # the model does mix: sample 0 alone gives another output
        assert not torch.allclose(model(x)[:1], model(x[:1]))
    with pytest.raises(UnsupportedModelError, match=r"^Tensor.transpose at 'mix' changes the batch dimension "
                                                    r"\(2 -> \(5, 2\)\), mixing the samples") as info:
        chexplain.explain(model, x, method="lrp-epsilon", target=torch.tensor([0, 1]))
    assert not isinstance(info.value, InputError) and "\n" not in str(info.value)


def test_transposed_batch_is_refused_when_its_size_is_a_multiple_of_the_batch():
    """kᵀ of a (2, 4) tensor is (4, 2): a multiple of the batch, as Swin's windows are, but the
    batch has moved, which the reorder's output shows."""
    torch.manual_seed(0)
    model = Net(features=4).double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"^Tensor.transpose at 'mix' changes the batch dimension "
                                                    r"\(2 -> \(4, 2\)\)"):
        chexplain.explain(model, x, method="lrp-epsilon", target=torch.tensor([0, 1]))


def test_csatv2_is_refused_naming_its_spatial_attention():
    timm = pytest.importorskip("timm")
    model = timm.create_model("csatv2", pretrained=False, num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(UnsupportedModelError, match=r"at 'stages\.0\.0\.attn\.attn' changes the batch dimension"):
        chexplain.explain(model, x, method="lrp-epsilon", target=torch.tensor([0, 1]))
