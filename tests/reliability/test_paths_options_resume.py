"""Non-regular checkpoints, output paths checked before work,
option types at the API boundary, explain's incremental predictions and resume, audit inputs
(its own output inside --images, a class without a CSV column)."""

from __future__ import annotations

import json
import shutil
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from chexplain.cli import main
from chexplain.errors import ChexplainError, DataError, OutputError
from chexplain.validate import prepare_out


def test_a_device_as_checkpoint_is_named_not_missing():
    from chexplain.train.checkpoint import load_checkpoint

    with pytest.raises(DataError, match="/dev/null: not a regular file"):
        load_checkpoint("/dev/null")


def test_a_device_as_model_is_named_on_the_command_line(tmp_path, capsys):
    from chexplain.cli import main

    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["explain", "--checkpoint", "/dev/null", str(image), "--out", str(tmp_path / "o")]) == 2
    assert "/dev/null: not a regular file" in capsys.readouterr().err


# ------------------------------------------------------------------------------ outputs

def test_an_empty_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="--out is empty"):
        prepare_out("")
    rc = main(["phantom", "generate", "--n", "1", "--size", "32", "--out", "", "--quiet"])
    assert rc == 2 and "--out is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_dangling_and_looping_links_are_named(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OutputError, match="dangling is a symbolic link to .*nowhere, which does not exist"):
        prepare_out(tmp_path / "dangling")
    with pytest.raises(OutputError, match="loop is a symbolic link loop"):
        prepare_out(tmp_path / "loop" / "sub")


def test_a_working_link_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert prepare_out(tmp_path / "link").is_dir()


def test_check_layout_names_what_is_in_the_way(tmp_path):
    from chexplain.validate import check_layout

    (tmp_path / "figures").write_text("x")
    with pytest.raises(OutputError, match="figures is in the way of the output folder figures/"):
        check_layout(tmp_path, folders=("figures",))
    (tmp_path / "audit.json").mkdir()
    with pytest.raises(OutputError, match="audit.json is a folder in the way"):
        check_layout(tmp_path, files=("audit.json",))


def test_audit_refuses_a_blocked_figures_folder_before_any_work(tiny_checkpoint, phantom_csv,
                                                               tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").write_text("in the way")
    rc = main(["audit", "--checkpoint", str(tiny_checkpoint), "--csv", str(phantom_csv),
               "--out", str(out), "--quiet"])
    assert rc == 2 and "figures" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["figures"]  # no store, no audit.json


@pytest.mark.parametrize("option", ["--min-effect-sd", "--matched-effect-sd"])
def test_audit_refuses_a_negative_floor_before_any_work(tiny_checkpoint, phantom_csv, tmp_path,
                                                        capsys, option):
    out = tmp_path / "out"
    rc = main(["audit", "--checkpoint", str(tiny_checkpoint), "--csv", str(phantom_csv),
               option, "-1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"{option} -1.0 must be >= 0" in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_audit_does_not_read_its_own_output_inside_images(tiny_checkpoint, phantom_csv, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, src in enumerate(sorted(phantom_csv.parent.rglob("view1_frontal.jpg"))[:3]):
        shutil.copy(src, images / f"img{i}.jpg")
    out = images / "out"
    (out / "figures").mkdir(parents=True)
    shutil.copy(images / "img0.jpg", out / "figures" / "earlier.jpg")  # a figure of an earlier run
    assert main(["audit", "--checkpoint", str(tiny_checkpoint), "--images", str(images),
                 "--classes", "Pleural Effusion", "--out", str(out), "--quiet"]) == 0
    index = pd.read_csv(out / "store" / "index.csv")
    assert sorted(index["image"]) == [str(images / f"img{i}.jpg") for i in range(3)]


def test_audit_of_a_class_the_csv_lacks_warns_and_runs(tiny_checkpoint, phantom_csv, tmp_path):
    ck = torch.load(tiny_checkpoint, weights_only=True)
    names = [("Mass" if n == "Lung Lesion" else n) for n in ck["meta"]["observations"]]
    path = tmp_path / "mass.pt"
    torch.save({**ck, "meta": {**ck["meta"], "observations": names}}, path)
    with pytest.warns(UserWarning, match="no label column for the model's class.*'Mass'"):
        rc = main(["audit", "--checkpoint", str(path), "--csv", str(phantom_csv), "--classes",
                   "Mass", "--population", "all", "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    index = pd.read_csv(tmp_path / "out" / "store" / "index.csv")
    assert index["label"].isna().all() and len(index) == 12


# ------------------------------------------------------------------------------ API types

@pytest.mark.parametrize("method,params,word", [
    ("epsilon-plus-flat", {"epsilon": "0.1"}, "epsilon='0.1' (str) must be a finite number"),
    ("lrp-epsilon", {"epsilon": None}, "epsilon=None"),
    ("lrp-alphabeta", {"alpha": True}, "alpha=True (bool)"),
    ("lrp-epsilon", {"maxpool": 1}, "maxpool=1 (int) must be a string"),
    ("gradcam", {"relu": "no"}, "relu='no' (str) must be True or False"),
    ("gradcam++", {"upsample": 1}, "upsample=1 (int) must be True or False"),
])
def test_every_option_is_type_checked_at_the_api(tiny_model, method, params, word):
    from chexplain import explain

    x = torch.rand(1, 3, 32, 32)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with pytest.raises(ChexplainError, match=word.replace("(", r"\(").replace(")", r"\)")):
        explain(tiny_model, x, method, **params)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_the_reusable_lrp_object_checks_its_options_too(tiny_model):
    from chexplain import LRP

    with pytest.raises(ChexplainError, match=r"epsilon='0\.1' \(str\) must be a finite number"):
        LRP(tiny_model, "lrp-epsilon", epsilon="0.1")


def test_numbers_of_other_kinds_are_accepted(tiny_model):
    from chexplain import explain

    x = torch.rand(1, 3, 32, 32)
    a = explain(tiny_model, x, "lrp-epsilon", epsilon=0.25)
    b = explain(tiny_model, x, "lrp-epsilon", epsilon=np.float32(0.25))
    c = explain(tiny_model, x, "lrp-epsilon", epsilon=torch.tensor(0.25))
    assert torch.allclose(a, b) and torch.allclose(a, c)


# ------------------------------------------------------------------------------ explain resume

def _explain(ckpt, images, out, *extra):
    return main(["explain", str(images), "--checkpoint", str(ckpt), "--out", str(out),
                 "--methods", "gradcam", "--quiet", *extra])


@pytest.fixture
def three_images(phantom_csv, tmp_path):
    folder = tmp_path / "three"
    folder.mkdir()
    for i, src in enumerate(sorted(phantom_csv.parent.rglob("view1_frontal.jpg"))[:3]):
        shutil.copy(src, folder / f"img{i}.jpg")
    return folder


def test_an_interrupted_explain_keeps_its_finished_images_and_resumes(tiny_checkpoint, three_images,
                                                                      tmp_path, capsys):
    import chexplain.jobs.explain as ei

    out = tmp_path / "out"
    real, calls = ei.lrp_rules_figure, []

    def figure(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    with mock.patch.object(ei, "lrp_rules_figure", figure):
        assert _explain(tiny_checkpoint, three_images, out) == 130
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith(str(three_images / "img0.jpg"))
    explained = []
    real_attr = ei.Attributor.__call__

    def counting(self, x, classes=None):
        explained.append(1)
        return real_attr(self, x, classes=classes)

    with mock.patch.object(ei.Attributor, "__call__", counting):
        assert _explain(tiny_checkpoint, three_images, out, "--resume") == 0
    frame = pd.read_csv(out / "predictions.csv")
    assert frame["Path"].tolist() == [str(three_images / f"img{i}.jpg") for i in range(3)]
    summary = json.loads((out / "explain.json").read_text())
    assert len(summary["images"]) == 3
    fresh = tmp_path / "fresh"
    assert _explain(tiny_checkpoint, three_images, fresh) == 0
    assert (fresh / "predictions.csv").read_text() == (out / "predictions.csv").read_text()
    one = len(explained)  # only the third image was explained (Fig. 4 and Grad-CAM calls)
    explained.clear()
    with mock.patch.object(ei.Attributor, "__call__", counting):
        assert _explain(tiny_checkpoint, three_images, tmp_path / "again") == 0
    assert 3 * one == len(explained)


def test_explain_resume_refuses_other_options_or_model(tiny_checkpoint, three_images, tmp_path, capsys):
    out = tmp_path / "out"
    assert _explain(tiny_checkpoint, three_images, out) == 0
    capsys.readouterr()
    assert _explain(tiny_checkpoint, three_images, out, "--resume", "--display-size", "128") == 2
    assert "--resume: display_size differs" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    ck = torch.load(tiny_checkpoint, weights_only=True)
    torch.save({**ck, "epoch": 2}, other)
    assert _explain(other, three_images, out, "--resume") == 2
    assert "--resume: model differs" in capsys.readouterr().err


def test_a_line_cut_off_by_a_kill_is_explained_again(tiny_checkpoint, three_images, tmp_path):
    out = tmp_path / "out"
    assert _explain(tiny_checkpoint, three_images, out) == 0
    progress = out / "progress.jsonl"
    lines = progress.read_text().splitlines()
    progress.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    assert _explain(tiny_checkpoint, three_images, out, "--resume") == 0
    assert len(pd.read_csv(out / "predictions.csv")) == 3
    assert len(progress.read_text().splitlines()) == 4
