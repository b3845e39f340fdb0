"""The study's accuracy for experiment I on full MNIST (slow: about 2 minutes on one core)."""

from __future__ import annotations

import pytest
import torch

from chexplain.studies.mnist.train import TrainConfig, train_mnist


@pytest.mark.slow
def test_experiment_one_reaches_the_study(full_mnist, tmp_path):
    torch.set_num_threads(1)
    m = train_mnist(TrainConfig(experiment="1"), full_mnist, tmp_path, progress=False)
    assert m["iterations"] == 50_000
    assert m["test_accuracy"] >= 0.9825  # Bach et al. 2015: 98.25%


@pytest.mark.slow
def test_relu_star_reaches_the_study(full_mnist, tmp_path):
    torch.set_num_threads(2)
    m = train_mnist(TrainConfig(experiment="2-relu-short"), full_mnist, tmp_path, progress=False)
    assert m["iterations"] == 10_000
    assert m["test_accuracy"] >= 0.955  # Bach et al. 2015: 96.03%
