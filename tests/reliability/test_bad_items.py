"""Hostile inputs that once gave wrong results or crashes ("BAD" cases): each now gets a
one-line error or the right result."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from chexplain import explain
from chexplain.cli import main
from chexplain.errors import ChexplainError, DataError, OutputError
from chexplain.lrp.engine import LRP

from .conftest import write_dicom


# 1 ---------------------------------------------------------------- resume with other data

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished one-epoch tiny run on 24 phantom images at 32 px, and its data."""
    from chexplain.data.phantom import write_phantom
    from chexplain.studies.chexpert.train import ChexpertTrainConfig, train_chexpert

    root = tmp_path_factory.mktemp("resume")
    csv = write_phantom(root / "phantom", 16, 32, seed=5, progress=False)
    valid = write_phantom(root / "valid" / "phantom", 6, 32, seed=6, progress=False)

    def config(**over):
        opts = dict(csv=str(csv), valid=str(valid), out=str(root / "run"), arch="tiny",
                    image_size=32, epochs=1, batch_size=8, workers=0, device="cpu", weights=None)
        return ChexpertTrainConfig(**(opts | over))

    train_chexpert(config(), progress=False)
    return root, csv, valid, config


def _edited_copy(csv: Path, dest: Path) -> Path:
    """The same CSV with one label flipped (same paths and row count, other contents)."""
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "0.0" if cells[-1] == "1.0" else "1.0"
    lines[1] = ",".join(cells)
    dest.write_text("\n".join(lines) + "\n")
    return dest


def test_resume_with_the_same_data_continues(trained_run):
    from chexplain.studies.chexpert.train import train_chexpert

    _, _, _, config = trained_run
    assert train_chexpert(config(), resume=True, progress=False)["epochs_run"] == 1


@pytest.mark.parametrize("option", ["--csv", "--valid"])
def test_resume_with_a_different_csv_is_refused(trained_run, option):
    from chexplain.studies.chexpert.train import train_chexpert

    root, csv, valid, config = trained_run
    key = option.removeprefix("--")
    source = csv if key == "csv" else valid
    other = _edited_copy(source, source.with_name("edited.csv"))
    before = (root / "run" / "config.json").read_text()
    with pytest.raises(ChexplainError, match=f"resume refused.*{option}"):
        train_chexpert(config(**{key: str(other)}), resume=True, progress=False)
    assert (root / "run" / "config.json").read_text() == before  # nothing rewritten


def test_resume_with_another_data_folder_is_refused(trained_run, tmp_path):
    from chexplain.studies.chexpert.train import train_chexpert

    root, csv, valid, config = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(csv.parent, copy / "phantom")
    with pytest.raises(ChexplainError, match=r"resume refused.*--data: its image folder changed"):
        train_chexpert(config(data=str(copy)), resume=True, progress=False)


# 2 ---------------------------------------------------------------- short CSV rows

@pytest.mark.parametrize("cut", ["short", "truncated"])
def test_short_csv_rows_are_refused_with_the_line(tmp_path, phantom_csv, cut):
    from chexplain.data.chexpert import read_chexpert_csv

    lines = phantom_csv.read_text().splitlines()
    if cut == "short":
        lines[3] = ",".join(lines[3].split(",")[:-4])
        text, line = "\n".join(lines) + "\n", 4
    else:
        text, line = "\n".join(lines[:6]) + "\n" + lines[6][: len(lines[6]) // 2], 7
    bad = tmp_path / "train.csv"
    bad.write_text(text)
    with pytest.raises(DataError, match=rf"train.csv: line {line}: \d+ field\(s\), the header has 19"):
        read_chexpert_csv(bad)


# 3 ---------------------------------------------------------------- half precision

def _rounded(model: nn.Module, x: torch.Tensor, dtype: torch.dtype):
    """float32 copies of the model and input rounded to ``dtype``: the float32 reference."""
    import copy

    ref = copy.deepcopy(model).to(dtype).float().eval()
    return ref, x.to(dtype).float()


@pytest.mark.parametrize("method,dtype", [("epsilon-plus-flat", torch.float16), ("lrp-epsilon", torch.bfloat16),
                                          ("gradcam", torch.float16), ("gradcam", torch.bfloat16)])
def test_half_precision_matches_float32(tiny_model, dtype, method):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref_model, ref_x = _rounded(tiny_model, x, dtype)
    want = explain(ref_model, ref_x, method, target=2)
    import copy

    half = copy.deepcopy(tiny_model).to(dtype)
    got = explain(half, x.to(dtype), method, target=2)
    assert got.dtype == dtype and got.shape == want.shape
    assert bool(torch.isfinite(got).all())
    scale = want.abs().max()
    assert float((got.float() - want).abs().max()) <= 0.01 * float(scale)
    if method != "gradcam":
        return
    # a float32 model explained at a half-precision input (refused before): in float32 too
    got32 = explain(tiny_model, x.to(dtype), method, target=2)
    want32 = explain(tiny_model, ref_x, method, target=2)
    assert got32.dtype == dtype
    assert float((got32.float() - want32).abs().max()) <= 0.01 * float(want32.abs().max())


# 4 ---------------------------------------------------------------- bad --out before work

@pytest.fixture
def a_file(tmp_path) -> Path:
    f = tmp_path / "taken"
    f.write_text("not a folder")
    return f


def _commands(phantom_csv, ckpt, out):
    img = next((phantom_csv.parent / "train").rglob("view1_frontal.jpg"))
    return {
        "mnist train": ["mnist", "train", "--experiment", "1", "--iterations", "1", "--out", out],
        "chexpert train": ["chexpert", "train", "--csv", str(phantom_csv), "--arch", "tiny",
                           "--image-size", "32", "--out", out],
        "chexpert evaluate": ["chexpert", "evaluate", "--checkpoint", str(ckpt), "--csv",
                              str(phantom_csv), "--out", out],
        "explain": ["explain", str(img), "--checkpoint", str(ckpt), "--out", out],
        "compare": ["compare", "--checkpoint", str(ckpt), "--csv", str(phantom_csv), "--out", out],
        "phantom generate": ["phantom", "generate", "--n", "2", "--size", "64", "--out", out],
        "demo": ["demo", "--quick", "--out", out],
    }


@pytest.mark.parametrize("command", ["mnist train", "chexpert train", "chexpert evaluate",
                                     "explain", "compare", "phantom generate", "demo"])
@pytest.mark.parametrize("where", ["file", "under a file"])
def test_every_command_refuses_a_bad_out_before_any_work(command, where, a_file, phantom_csv,
                                                         tiny_checkpoint, capsys, monkeypatch):
    import chexplain.cli as cli

    out = str(a_file if where == "file" else a_file / "sub")
    argv = _commands(phantom_csv, tiny_checkpoint, out)[command]
    parser = cli.build_parser()
    args = parser.parse_args(argv)
    called = []
    monkeypatch.setattr(cli, "build_parser", lambda only=None: _Stub(parser, args, called))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("is a file" in err or "under the file" in err), err
    assert not called  # the command's handler never ran


class _Stub:
    """A parser whose handler records a call instead of working."""

    def __init__(self, parser, args, called):
        self.args, self.called = args, called
        args.func = lambda a: called.append(1) or 0

    def parse_args(self, argv):
        return self.args


def test_an_unwritable_out_is_found_before_the_work(tmp_path, monkeypatch):
    import chexplain.validate as validate

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(validate.tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match="--out: cannot write .*permission denied"):
        validate.prepare_out(tmp_path / "out")


def test_api_functions_check_out_first(a_file, tiny_model, phantom_csv):
    from chexplain.studies.mnist.data import load_mnist
    from chexplain.jobs.explain import explain_images
    from chexplain.studies.mnist.train import TrainConfig, train_mnist

    img = next((phantom_csv.parent / "train").rglob("view1_frontal.jpg"))
    with pytest.raises(OutputError, match="is a file"):
        explain_images(tiny_model, [img], a_file, "imagenet", 64, progress=False)
    with pytest.raises(OutputError, match="is a file"):
        train_mnist(TrainConfig(experiment="1", iterations=1), load_mnist(None), a_file, progress=False)


# 5 ---------------------------------------------------------------- DICOM NaN / inf tags

@pytest.mark.parametrize("tag,value", [("RescaleSlope", "NaN"), ("RescaleIntercept", "inf"),
                                       ("WindowCenter", "nan"), ("WindowWidth", "NaN")])
def test_dicom_nan_tags_are_refused_naming_file_and_tag(tmp_path, tag, value):
    from chexplain.data.images import read_image

    window = {"WindowCenter": "100", "WindowWidth": "200"} if tag.startswith("Window") else {}
    path = write_dicom(tmp_path / "bad.dcm", **(window | {tag: value}))
    with pytest.raises(DataError, match=rf"bad.dcm: DICOM tag {tag} is (nan|inf)"):
        read_image(path)


# 6 ---------------------------------------------------------------- Grad-CAM of a probability

class _Squashed(nn.Module):
    def __init__(self, model: nn.Module, final: str) -> None:
        super().__init__()
        self.model, self.final = model, final

    def forward(self, x):
        z = self.model(x)
        if self.final == "none":
            return z
        return torch.sigmoid(z) if self.final == "sigmoid" else z.softmax(dim=1)


@pytest.mark.parametrize("method,final", [("gradcam", "sigmoid"), ("gradcam++", "softmax"),
                                          ("hirescam", "sigmoid")])
def test_gradcam_explains_the_logit_before_a_final_squash(tiny_model, final, method):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    want = explain(tiny_model, x, method, target=3)
    with pytest.warns(UserWarning, match="Grad-CAM explains the logits before it"):
        got = explain(_Squashed(tiny_model, final).eval(), x, method, target=3)
    torch.testing.assert_close(got, want)


# 7 ---------------------------------------------------------------- the caller's hooks

def test_lrp_warns_about_forward_hooks_naming_the_module(tiny_model):
    handle = tiny_model.classifier.register_forward_hook(lambda m, i, o: o * 2)
    try:
        with pytest.warns(UserWarning, match=r"forward hooks on classifier are not part"):
            LRP(tiny_model)
    finally:
        handle.remove()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LRP(tiny_model)  # no hooks: no warning


def test_gradcam_warns_about_hooks_it_does_not_apply(tiny_model):
    x = torch.randn(1, 3, 32, 32)
    outer = _Squashed(tiny_model, "none").eval()
    handle = outer.register_forward_hook(lambda m, i, o: o * 2)
    try:
        with pytest.warns(UserWarning, match=r"forward hooks on \(the model itself\) are not applied"):
            explain(outer, x, "gradcam")
    finally:
        handle.remove()
