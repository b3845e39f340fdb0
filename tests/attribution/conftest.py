import pytest
import torch
from torch import nn


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
