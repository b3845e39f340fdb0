"""Operations that mix the samples of a batch are refused, never explained silently."""

import pytest
import torch
import torch.nn as nn

import chexplain
from chexplain.errors import InputError, UnsupportedModelError


class _Flip(nn.Module):
    def __init__(self, dims) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.dims = dims

    def forward(self, x):
        return self.fc(x.flip(*self.dims))


class _Rows(nn.Module):
    """Reshapes (N, 6) into (2N, 3): twice as many logit rows as samples."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x.reshape(-1, 3))


@pytest.mark.parametrize("dims", [(0,), ((0, 1),)])
def test_flip_over_the_batch_is_refused(dims):
    with pytest.raises(UnsupportedModelError, match="flips the batch dimension"):
        chexplain.LRP(_Flip(dims), composite="lrp-epsilon")(torch.randn(2, 6), target=0)


def test_flip_over_features_is_explained():
    model = _Flip((1,)).double()
    x = torch.randn(2, 6, dtype=torch.float64)
    R = chexplain.LRP(model, composite="lrp-epsilon", epsilon=1e-12)(x, target=1)
    assert torch.allclose(R.sum(1) + model.fc.bias[1].detach(), model(x)[:, 1].detach(), atol=1e-9)


@pytest.mark.parametrize("n", [1, 2])
def test_logit_rows_must_match_the_batch(n):
    with pytest.raises(InputError, match=r"for \d input\(s\); LRP explains logits"):
        chexplain.LRP(_Rows(), composite="lrp-epsilon")(torch.randn(n, 6), target=0)


def test_the_input_rule_reaches_the_first_conv_behind_a_batchnorm():
    """input → BatchNorm → conv: the BatchNorm is merged into the conv, which must keep the
    composite's input-layer rule (it went to the removed BatchNorm node before)."""
    from chexplain.lrp.rules import Flat

    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2)).eval()
    lrp = chexplain.LRP(model, composite="epsilon-plus-flat")
    x = torch.randn(2, 3, 8, 8)
    graph = lrp.canonized(x)
    first = graph.by_name[lrp._first]
    assert type(first.op).__name__ == "ConvOp"
    assert isinstance(lrp._rule_for(first), Flat)
    assert torch.isfinite(lrp(x, target=0)).all()
