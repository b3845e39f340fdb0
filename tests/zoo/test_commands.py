"""Every spec form through ``explain``, ``compare``, ``audit`` and ``chexpert evaluate``: each
result records the model's spec, weights' digest and preprocessing; bad specs exit 2 with one
line; labels are matched to the outputs by name."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from chexplain.cli import main

torch.set_num_threads(1)

FORMS = ["xrv-densenet", "xrv-resnet", "timm", "torchvision", "factory-tuple"]


def error_line(err: str) -> str:
    """The one error line (notes about choices made for the user may precede it)."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("chexplain: note:")]
    assert len(lines) == 1 and lines[0].startswith("chexplain: error: "), err
    return lines[0]


def _check_record(record: dict, argv: list[str], size: int | None = None) -> None:
    spec = argv[argv.index("--model") + 1]
    assert record["spec"] == spec
    if "--weights" in argv:
        path = argv[argv.index("--weights") + 1]
        with open(path, "rb") as fh:
            assert record["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    if size is None:
        size = int(argv[argv.index("--image-size") + 1]) if "--image-size" in argv else 32
    assert record["image_size"] == size and record["channels"] in (1, 3)
    assert len(record["mean"]) == record["channels"] == len(record["std"])


@pytest.mark.parametrize("form", FORMS)
def test_every_command_takes_the_spec(form, specs, zoo_phantom, tmp_path, capsys):
    every_command(specs[form], zoo_phantom, tmp_path)
    capsys.readouterr()


def every_command(argv: list[str], zoo_phantom, tmp_path, size: int | None = None) -> None:
    """explain, compare, audit and evaluate with the model options ``argv``; each result
    records the model."""
    csv = str(zoo_phantom)
    image = str(zoo_phantom.parent / "train" / "patient00001")
    out = tmp_path / "explain"
    assert main(["explain", *argv, image, "--methods", "lrp-epsilon,gradcam", "--classes",
                 "pleural effusion,CARDIOMEGALY", "--labels", csv, "--out", str(out), "--quiet"]) == 0
    res = json.loads((out / "explain.json").read_text())
    _check_record(res["model"], argv, size)
    rec = res["images"][0]
    assert {"Pleural Effusion", "Cardiomegaly"} <= set(rec["explained"])
    assert rec["labels"]["Pleural Effusion"] in (0, 1)  # matched to the CSV column by name
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header == ["Path", *res["model"]["outputs"]]

    out = tmp_path / "compare"
    assert main(["compare", *argv, "--csv", csv, "--methods", "lrp-epsilon,gradcam",
                 "--classes", "pleural effusion", "--max-items", "2", "--randomisation-items", "0",
                 "--bootstrap", "10", "--steps", "4", "--out", str(out), "--quiet"]) == 0
    res = json.loads((out / "compare.json").read_text())
    _check_record(res["model"], argv, size)
    assert res["classes"] == ["Pleural Effusion"] and res["n_items"] == 2

    out = tmp_path / "audit"
    assert main(["audit", *argv, "--csv", csv, "--max-images", "4", "--classes", "cardiomegaly",
                 "--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    store = json.loads((out / "store" / "store.json").read_text())
    assert store["fingerprint"]["model"]["spec"] == argv[argv.index("--model") + 1]
    assert store["fingerprint"]["checkpoint"] == res["model"]["sha256"]

    out = tmp_path / "evaluate"
    assert main(["chexpert", "evaluate", *argv, "--csv", csv, "--device", "cpu", "--out",
                 str(out), "--no-progress"]) == 0
    res = json.loads((out / "auroc.json").read_text())
    _check_record(res["model"], argv, size)
    assert res["auroc"].keys() <= set(res["model"]["outputs"]) and "Pleural Effusion" in res["auroc"]


def test_audit_resume_refuses_another_model(specs, zoo_phantom, tmp_path, capsys):
    out = tmp_path / "audit"
    base = ["audit", "--csv", str(zoo_phantom), "--max-images", "3", "--classes", "Cardiomegaly",
            "--out", str(out), "--quiet"]
    assert main([*base, *specs["factory-tuple"]]) == 0
    capsys.readouterr()
    assert main([*base, *specs["torchvision"], "--resume"]) == 2
    assert "checkpoint" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv, message", [
    (["--model", "timm:no_such_net", "--weights", "x.pt"], "unknown timm model"),
    (["--model", "xrv:nonsense"], "unknown TorchXRayVision weights"),
    (["--model", "nowhere.pt"], "no such checkpoint file"),
])
def test_bad_spec_exits_2_with_one_line(argv, message, zoo_phantom, tmp_path, capsys):
    for command in (["explain", str(zoo_phantom.parent / "train")], ["compare", "--csv",
                    str(zoo_phantom)], ["audit", "--csv", str(zoo_phantom)],
                    ["chexpert", "evaluate", "--csv", str(zoo_phantom)]):
        assert main([*command, *argv, "--out", str(tmp_path / "o")]) == 2
        assert message in error_line(capsys.readouterr().err), command


def test_requested_class_without_labels_is_one_line(specs, models, zoo_phantom, tmp_path, capsys):
    argv = ["--model", f"{models['factory']}:tuple_model", "--class-names", "Cardiomegaly,Edema,Emphysema"]
    assert main(["compare", *argv, "--csv", str(zoo_phantom), "--classes", "emphysema",
                 "--out", str(tmp_path / "c")]) == 2
    err = error_line(capsys.readouterr().err)
    assert "'Emphysema'" in err and "no labels" in err
    # an audit of it runs with unknown labels and a warning (tests/reliability)
    assert main(["explain", *argv, str(zoo_phantom.parent / "train"), "--classes", "Mass",
                 "--out", str(tmp_path / "e")]) == 2
    assert "unknown class 'Mass'" in error_line(capsys.readouterr().err)
