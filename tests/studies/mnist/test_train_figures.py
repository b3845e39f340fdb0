"""Short training runs learn; checkpoints resume exactly; the figure grids have the right size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chexplain.errors import ChexplainError, DataError
from chexplain.studies.mnist.experiments import EXPERIMENTS
from chexplain.studies.mnist.model import load_mnist_mlp, mnist_mlp
from chexplain.train.checkpoint import load_checkpoint
from chexplain.studies.mnist.train import TrainConfig, train_mnist


def test_architectures():
    shapes = {n: [tuple(m.weight.shape) for m in mnist_mlp(n) if isinstance(m, torch.nn.Linear)] for n in EXPERIMENTS}
    assert shapes["1"] == [(400, 784), (400, 400), (400, 400), (10, 400)]
    assert shapes["2-relu"] == [(1296, 784), (1296, 1296), (1296, 1296), (10, 1296)]
    assert isinstance(mnist_mlp("1")[2], torch.nn.Tanh) and isinstance(mnist_mlp("2-relu-short")[2], torch.nn.ReLU)
    assert mnist_mlp("1")(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.fixture(scope="module")
def trained(sample_mnist, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("exp1")
    metrics = train_mnist(TrainConfig(experiment="1", iterations=600), sample_mnist, out, progress=False)
    return out, metrics


def test_short_run_learns(trained, sample_mnist):
    out, m = trained
    assert m["test_accuracy"] > 0.8  # chance is 0.1
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "iterations", "train_seconds", "data_source"):
        assert key in saved
    assert saved["iterations"] == 600 and "5,000" in saved["data_source"]
    assert not (out / "checkpoint.pt").exists()
    model, meta = load_mnist_mlp(out / "model.pt")
    assert meta["experiment"] == "1" and abs(meta["mean"]) > 0


def _stop_after_first_checkpoint(cfg, data, out, monkeypatch) -> dict:
    """Run ``cfg`` into ``out`` until its first mid-run checkpoint is written, then stop it
    (as an interruption would); the checkpoint's contents."""
    import chexplain.studies.mnist.train as T

    class Stop(Exception):
        pass

    original = T.save_checkpoint

    def save_then_stop(path, *a, **k):
        original(path, *a, **k)
        if path.name == "checkpoint.pt":
            raise Stop

    with monkeypatch.context() as m:
        m.setattr(T, "save_checkpoint", save_then_stop)
        with pytest.raises(Stop):
            train_mnist(cfg, data, out, progress=False)
    return load_checkpoint(out / "checkpoint.pt")


def test_resume_is_exact(sample_mnist, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg = TrainConfig(experiment="2-relu-short", iterations=40, checkpoint_every=20)
    whole = train_mnist(cfg, sample_mnist, tmp_path / "a", progress=False)
    # the same run interrupted right after its checkpoint at iteration 20, then resumed
    assert _stop_after_first_checkpoint(cfg, sample_mnist, tmp_path / "b", monkeypatch)["step"] == 20
    resumed = train_mnist(cfg, sample_mnist, tmp_path / "b", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "a" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_accuracy"] == whole["test_accuracy"]


def test_bad_inputs_are_one_line(sample_mnist, tmp_path):
    with pytest.raises(ChexplainError, match="unknown MNIST experiment"):
        train_mnist(TrainConfig(experiment="3"), sample_mnist, tmp_path)
    with pytest.raises(ChexplainError, match="CUDA is not available|unknown device"):
        if torch.cuda.is_available():
            raise ChexplainError("unknown device")
        train_mnist(TrainConfig(device="cuda"), sample_mnist, tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        load_mnist_mlp(tmp_path / "model.pt")


def test_figure_grids(trained, sample_mnist, tmp_path, figure_audit):
    pytest.importorskip("chexplain.viz.render")
    from chexplain.studies.mnist.figures import make_figures

    out, _ = trained
    model, meta = load_mnist_mlp(out / "model.pt")
    models = {"tanh": (model, meta), "tanh-again": (model, meta)}
    paths = make_figures(models, sample_mnist, tmp_path, method="lrp-epsilon")
    names = sorted(p.name for p in paths)
    assert names == sorted(["tanh_a_all_classes.png", "tanh_c_random_digits.png", "tanh-again_a_all_classes.png",
                            "tanh-again_c_random_digits.png", "b_3v8_4v9.png"])
    a = np.load(tmp_path / "tanh_a_all_classes.npy")
    b = np.load(tmp_path / "b_3v8_4v9.npy")
    c = np.load(tmp_path / "tanh_c_random_digits.npy")
    assert a.shape == (2, 10, 28, 28) and b.shape == (2, 4, 28, 28) and c.shape == (10, 10, 28, 28)
    assert np.load(tmp_path / "tanh_a_all_classes_inputs.npy").shape == (2, 28, 28)
    # the digits of figure (a) are a 2 and a 7; the explained class's relevance is mostly positive there
    assert np.abs(a).sum() > 0 and a[0, 2].sum() > 0 and a[1, 7].sum() > 0
    from PIL import Image

    w, h = Image.open(tmp_path / "tanh_c_random_digits.png").size
    assert w > 10 * 28 and h > 10 * 28
    assert len(figure_audit.assert_clean(tmp_path)) == 5  # sizes; no overlapping or clipped text


def test_resume_mid_block_is_exact(sample_mnist, tmp_path, monkeypatch):
    """Batches are augmented log_every at a time: a checkpoint inside a block (here at 30 of
    a 20-step block) resumes to the same weights as the uninterrupted run."""
    cfg = TrainConfig(experiment="2-relu-short", iterations=50, checkpoint_every=30, log_every=20)
    full = train_mnist(cfg, sample_mnist, tmp_path / "full", progress=False)
    assert _stop_after_first_checkpoint(cfg, sample_mnist, tmp_path / "cut", monkeypatch)["block_start"] == 20
    cut = train_mnist(cfg, sample_mnist, tmp_path / "cut", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "model.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert cut["test_accuracy"] == full["test_accuracy"]
