"""The multilayer perceptrons of Bach et al. 2015 (PLoS ONE 10(7): e0130140), MNIST experiments I and II.

* Experiment I: 784-400-400-400-10, tanh; zero-mean inputs, Gaussian noise added to every batch;
  batch 25, 50,000 iterations; 98.25% test accuracy in the study.
* Experiment II: 784-1296-1296-1296-10, tanh or ReLU; inputs in [-1, 1], random shifts of up
  to +-4 px and 10% salt-and-pepper noise; batch 25, 1,000,000 iterations (99.1% ReLU, 99.01%
  tanh) or 10,000 iterations for the short ReLU* net (96.03%).

The networks are plain ``nn.Sequential`` stacks (Flatten, Linear, activation, ...) so that the
LRP engine traces them and takes (N, 1, 28, 28) images directly.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ChexplainError
from .experiments import Experiment, get_experiment

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def build_mlp(hidden: tuple[int, ...] | list[int], activation: str = "tanh", in_features: int = 784, classes: int = 10) -> nn.Sequential:
    """``nn.Sequential(Flatten, Linear, act, ..., Linear)``: ``hidden`` layers with ``activation``."""
    if activation not in ACTIVATIONS:
        raise ChexplainError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), ACTIVATIONS[activation]()]
        width = int(h)
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def mnist_mlp(experiment: str | Experiment) -> nn.Sequential:
    """The untrained network of ``experiment`` ("1", "2-tanh", "2-relu" or "2-relu-short")."""
    exp = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    return build_mlp(exp.hidden, exp.activation)


def load_mnist_mlp(path, map_location: str | torch.device = "cpu") -> tuple[nn.Sequential, dict]:
    """Load a trained MNIST MLP written by ``chexplain mnist train`` (``model.pt``).

    Returns the model in eval mode and the checkpoint's metadata (experiment, preprocessing
    constants, metrics). Loads with ``weights_only=True``.
    """
    from ...train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, map_location=map_location)
    if ckpt.get("kind") != "chexplain-mnist-mlp" or "model" not in ckpt:
        raise ChexplainError(f"{path}: not an MNIST model written by `chexplain mnist train`")
    meta = ckpt.get("meta", {})
    model = build_mlp(meta["hidden"], meta["activation"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ChexplainError(f"{path}: the weights do not fit the recorded architecture ({str(exc).splitlines()[0]})") from None
    return model.eval(), meta
