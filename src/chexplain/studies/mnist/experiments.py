"""The set-ups of Bach et al. 2015 (PLoS ONE 10(7): e0130140), MNIST experiments I and II.

* Experiment I: 784-400-400-400-10, tanh; zero-mean inputs, Gaussian noise added to every batch;
  batch 25, 50,000 iterations; 98.25% test accuracy in the study.
* Experiment II: 784-1296-1296-1296-10, tanh or ReLU; inputs in [-1, 1], random shifts of up
  to +-4 px and 10% salt-and-pepper noise; batch 25, 1,000,000 iterations (99.1% ReLU, 99.01%
  tanh) or 10,000 iterations for the short ReLU* net (96.03%).

The networks themselves are in :mod:`.model`; this module needs no PyTorch (the command line
reads it to list the experiments).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...errors import ChexplainError


@dataclass(frozen=True)
class Experiment:
    """One of the study's MNIST set-ups: architecture, input coding, augmentation, budget."""

    name: str
    label: str  # the study's name for the net (tanh, ReLU, ReLU*)
    hidden: tuple[int, ...]
    activation: str
    iterations: int
    inputs: str  # "zero-mean": x/255 minus the training mean; "pm1": x/127.5 - 1
    augment: str  # "gaussian": additive noise; "shift-saltpepper": shifts and salt-and-pepper
    paper_accuracy: float  # test accuracy reported by Bach et al. 2015
    toolbox_accuracy: float | None = None  # the LRP Toolbox's pretrained nets, where published

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


EXPERIMENTS: dict[str, Experiment] = {
    "1": Experiment("1", "tanh", (400, 400, 400), "tanh", 50_000, "zero-mean", "gaussian", 0.9825),
    "2-tanh": Experiment("2-tanh", "tanh", (1296,) * 3, "tanh", 1_000_000, "pm1", "shift-saltpepper", 0.9901, 0.9916),
    "2-relu": Experiment("2-relu", "ReLU", (1296,) * 3, "relu", 1_000_000, "pm1", "shift-saltpepper", 0.991, 0.9917),
    "2-relu-short": Experiment("2-relu-short", "ReLU*", (1296,) * 3, "relu", 10_000, "pm1", "shift-saltpepper", 0.9603),
}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name`` (one of :data:`EXPERIMENTS`); one-line error otherwise."""
    try:
        return EXPERIMENTS[str(name)]
    except KeyError:
        raise ChexplainError(f"unknown MNIST experiment {name!r}; choose from {', '.join(EXPERIMENTS)}") from None
