import pytest
import torch
from torch import nn

import chexplain
from chexplain.errors import ChexplainError


def small_cnn(dtype: torch.dtype = torch.float32) -> nn.Module:
    """A small ReLU CNN whose last conv keeps the input's resolution (layer "3")."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).to(dtype).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return small_cnn()


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 12, 12, generator=g)


class _Boom(nn.Module):
    def forward(self, x):
        raise AssertionError("the model ran")


def assert_refused_before_running(method: str, params: dict, name: str, side: int = 8) -> None:
    """``method`` with ``params`` fails in one line naming ``name``, before the model runs."""
    with pytest.raises(ChexplainError, match=name) as err:
        chexplain.explain(_Boom(), torch.rand(1, 3, side, side), method=method, **params)
    assert "\n" not in str(err.value)
