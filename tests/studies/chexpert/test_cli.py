"""`chexplain chexpert train|evaluate|stats` end to end on phantom data."""

from __future__ import annotations

import json

from chexplain.cli import main


def test_train_then_evaluate(phantom, tmp_path, capsys):
    out, ev = tmp_path / "run", tmp_path / "eval"
    args = ["chexpert", "train", "--data", str(phantom.parent), "--csv", "train.csv",
            "--arch", "tiny", "--weights", "none", "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--workers", "0", "--device", "cpu", "--policy", "ignore",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "best validation mean AUROC" in capsys.readouterr().out
    assert main(args) == 2  # the folder holds a run: refused without --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # a finished run: nothing left to do
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    assert main(["chexpert", "evaluate", "--checkpoint", str(out / "best.pt"), "--data",
                 str(phantom.parent.parent), "--csv", str(phantom), "--out", str(ev),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| Fracture | 0.00 (artefact: undefined AUROC printed as 0.00) |" in printed
    assert "n/a (no positives)" in printed
    report = json.loads((ev / "auroc.json").read_text())
    assert report["images"] == 48 and report["policy"] == "ignore"
    assert report["auroc"]["Fracture"] is None and report["undefined"]["Fracture"] == "no positives"
    assert 0.0 <= report["auroc"]["Pleural Effusion"] <= 1.0
    assert report["mean_auroc"] is not None and report["defined"] == 6
    assert (ev / "roc_curves.png").stat().st_size > 10_000
    assert (ev / "table2.md").read_text().startswith("# AUROC on train.csv (48 images")
    rows = (ev / "predictions.csv").read_text().splitlines()
    assert len(rows) == 49 and rows[0].startswith("Path,No Finding,")


def test_user_mistakes_are_one_line(phantom, tmp_path, capsys):
    base = ["chexpert", "train", "--arch", "tiny", "--out", str(tmp_path / "r"), "--device", "cpu"]
    assert main(base + ["--csv", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chexplain: error:") and "missing.csv" in err and "\n" not in err
    assert main(base + ["--csv", str(phantom), "--policy", "maybe"]) == 2
    assert "U-Ignore" in capsys.readouterr().err
    assert main(base + ["--csv", str(phantom), "--weights", str(tmp_path / "none.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["chexpert", "evaluate", "--checkpoint", str(phantom), "--csv", str(phantom),
                 "--out", str(tmp_path / "e")]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert main(["chexpert", "stats", str(phantom)]) == 0
    assert "48 rows" in capsys.readouterr().out
