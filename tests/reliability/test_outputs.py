"""Hostile inputs about outputs and options ("WEAK" cases): checked before work, written whole."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexplain.cli import main
from chexplain.errors import ChexplainError, DataError, OutputError


def _images(phantom_csv: Path, n: int = 2) -> list[Path]:
    return sorted((phantom_csv.parent / "train").rglob("view1_frontal.jpg"))[:n]


def _explain(model, inputs, out, **kw):
    from chexplain.jobs.explain import explain_images

    opts = dict(methods="gradcam", classes="top3", progress=False) | kw
    return explain_images(model, inputs, out, "imagenet", 64, **opts)


# options checked before the first image ------------------------------------------------

@pytest.mark.parametrize("kw,pattern", [
    ({"threshold": 5.0}, r"--threshold 5.0 must be a probability"),
    ({"display_size": 0}, r"--display-size 0 must be at least"),
    ({"display_size": -3}, r"--display-size -3 must be at least"),
    ({"classes": ","}, r"--classes ',' names no class"),
    ({"classes": "Pleural Effusion,Kidney"}, r"unknown class 'Kidney'"),
    ({"figure_method": "lrp-epsilon"}, r"--figure-method 'lrp-epsilon' is not among --methods"),
])
def test_explain_options_fail_before_any_image(tiny_model, phantom_csv, tmp_path, monkeypatch, kw, pattern):
    import chexplain.data.images as images

    monkeypatch.setattr(images, "read_image", lambda *a, **k: pytest.fail("an image was read"))
    with pytest.raises(ChexplainError, match=pattern):
        _explain(tiny_model, _images(phantom_csv), tmp_path / "out", **kw)


def test_mnist_figure_options_fail_before_the_data(tmp_path, capsys, monkeypatch):
    import chexplain.studies.mnist.data as mnist

    monkeypatch.setattr(mnist, "load_mnist", lambda *a, **k: pytest.fail("data were loaded"))
    for extra, words in ((["--cmap", "nosuchmap"], "unknown colour map 'nosuchmap'"),
                         (["--method", "lrp-nope"], "unknown --method 'lrp-nope'"),
                         (["--epsilon", "nan"], "--epsilon=nan must be a finite number")):
        argv = ["mnist", "reproduce", "--quick", "--out", str(tmp_path / "r")] + extra
        assert main(argv) == 2
        assert words in capsys.readouterr().err


@pytest.mark.parametrize("kw,pattern", [
    ({"patch": 100}, r"--patch 100 is larger than the 64-pixel model input"),
    ({"max_items": 0}, r"--max-items 0 must be at least 1"),
    ({"steps": 0}, r"--steps 0 must be at least 1"),
    ({"iou_threshold": 2.0}, r"--iou-threshold 2.0 must be in"),
])
def test_compare_options_fail_before_work(tiny_model, phantom_csv, tmp_path, kw, pattern):
    from chexplain.data.chexpert import OBSERVATIONS, CheXpertDataset
    from chexplain.evaluate.compare import CompareConfig, compare

    ds = CheXpertDataset(phantom_csv, masks=True, size=64, normalization="imagenet")
    cfg = CompareConfig(methods=("random",), **kw)
    with pytest.raises(ChexplainError, match=pattern):
        compare(tiny_model, ds, tmp_path / "out", OBSERVATIONS, "imagenet", cfg, progress=False)
    assert not (tmp_path / "out").exists()


def test_tiny_or_elongated_images_warn(tiny_model, tmp_path):
    for name, shape in (("dot.png", (1, 1)), ("strip.png", (8, 400))):
        Image.fromarray(np.full(shape, 128, np.uint8)).save(tmp_path / name)
    with pytest.warns(UserWarning) as got:
        _explain(tiny_model, [tmp_path / "dot.png", tmp_path / "strip.png"], tmp_path / "out")
    text = " ".join(str(w.message) for w in got)
    assert "1x1 pixels is below 32 px" in text and "400x8 pixels is below 32 px" in text
    assert "aspect 50.0:1" in text


# inputs: bad files and the output folder ------------------------------------------------

def test_one_bad_image_is_named_or_skipped(tiny_model, phantom_csv, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "img0.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "img1.jpg").write_bytes(_images(phantom_csv, 1)[0].read_bytes())
    with pytest.raises(DataError, match=r"img0.jpg: .*--skip-bad"):
        _explain(tiny_model, [folder], tmp_path / "a")
    res = _explain(tiny_model, [folder], tmp_path / "b", skip_bad=True)
    assert [Path(r["path"]).name for r in res["images"]] == ["img1.jpg"]
    assert [Path(f["path"]).name for f in res["failed"]] == ["img0.jpg"]
    assert json.loads((tmp_path / "b" / "explain.json").read_text())["failed"][0]["path"].endswith("img0.jpg")
    assert len((tmp_path / "b" / "predictions.csv").read_text().splitlines()) == 2


def test_out_inside_the_input_folder_is_not_read_back(tiny_model, phantom_csv, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "img0.jpg").write_bytes(_images(phantom_csv, 1)[0].read_bytes())
    first = _explain(tiny_model, [folder], folder / "out")
    second = _explain(tiny_model, [folder], folder / "out")  # out/ now holds PNGs
    assert len(first["images"]) == len(second["images"]) == 1


def test_stale_temporaries_of_a_killed_run_are_removed(tiny_model, phantom_csv, tmp_path):
    out = tmp_path / "out"
    stale = [out / ".predictions.abcd1234.tmp.csv", out / "img" / "gradcam" / ".x.k2j4h5g6.tmp.png"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    (out / ".keep.me").write_text("not ours")
    _explain(tiny_model, _images(phantom_csv, 1), out)
    assert not any(p.exists() for p in stale) and (out / ".keep.me").exists()


def test_phantom_generate_refuses_a_non_empty_folder(tmp_path, capsys):
    from chexplain.data.phantom import iter_phantom, mask_file

    out = tmp_path / "ph"
    base = ["phantom", "generate", "--n", "3", "--size", "64", "--out", str(out), "--quiet"]
    assert main(base + ["--seed", "1"]) == 0
    capsys.readouterr()
    assert main(base + ["--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err
    assert main(base + ["--seed", "2", "--overwrite"]) == 0
    want = set()
    for i, sample in enumerate(iter_phantom(3, 64, 2)):
        img = out / "train" / f"patient{i + 1:05d}" / "study1" / "view1_frontal.jpg"
        want |= {mask_file(img, name) for name in sample.masks}
    assert set(out.rglob("*.png")) == want  # exactly the new masks: no stale one left
    capsys.readouterr()
    # a bad option with --overwrite fails before the older phantom is removed
    assert main(base + ["--overwrite", "--confounder", "Kidney"]) == 2
    assert "Kidney" in capsys.readouterr().err and (out / "train.csv").is_file()
    assert set(out.rglob("*.png")) == want


# writing: full disk, Ctrl-C ----------------------------------------------------------------

def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_explaining_is_one_line(tiny_model, phantom_csv, tmp_path, monkeypatch):
    import chexplain.io as cio

    out = tmp_path / "out"
    real = cio.Path.write_text

    def write_text(self, *a, **k):  # the disk fills up when explain.json is written
        if "explain" in self.name:
            _no_space()
        return real(self, *a, **k)

    monkeypatch.setattr(cio.Path, "write_text", write_text)
    with pytest.raises(OutputError, match=r"no space left on device while writing .*explain.json$"):
        _explain(tiny_model, _images(phantom_csv, 1), out)
    assert (out / "predictions.csv").is_file()  # earlier files intact
    assert list(out.rglob("*.png")) and not list(out.rglob("*.tmp*"))


def test_a_full_disk_while_training_is_one_line(phantom_csv, tmp_path, monkeypatch):
    import chexplain.train.checkpoint as ck
    from chexplain.studies.chexpert.train import ChexpertTrainConfig, train_chexpert

    monkeypatch.setattr(ck.torch, "save", _no_space)
    cfg = ChexpertTrainConfig(csv=str(phantom_csv), out=str(tmp_path / "run"), arch="tiny",
                              image_size=32, epochs=1, batch_size=3, workers=0, device="cpu",
                              weights=None, val_fraction=0.25, checkpoint_every=1)
    with pytest.raises(OutputError, match=r"no space left on device while writing .*(best|last).pt$"):
        train_chexpert(cfg, progress=False)
    assert (tmp_path / "run" / "config.json").is_file()
    assert not list((tmp_path / "run").glob(".*tmp*"))


def _compare(model, phantom_csv, out, **kw):
    from chexplain.data.chexpert import OBSERVATIONS, CheXpertDataset
    from chexplain.evaluate.compare import CompareConfig, compare

    ds = CheXpertDataset(phantom_csv, masks=True, size=64, normalization="imagenet")
    cfg = CompareConfig(methods=("random",), bootstrap=10, max_items=3, **kw)
    return compare(model, ds, out, OBSERVATIONS, "imagenet", cfg, progress=False)


def test_compare_replaces_its_result_set_as_a_whole(tiny_model, phantom_csv, tmp_path, monkeypatch):
    import chexplain.evaluate.compare as cmp

    out = tmp_path / "out"
    _compare(tiny_model, phantom_csv, out, randomisation_items=2, randomisation_steps=2, steps=4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "randomisation.png" in before

    def interrupted(path, rows):  # Ctrl-C half-way through writing the new set
        if path.name == "summary.csv":
            raise KeyboardInterrupt
        return real(path, rows)

    real = cmp._write_csv
    monkeypatch.setattr(cmp, "_write_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _compare(tiny_model, phantom_csv, out, randomisation_items=0, steps=8)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, untouched
    monkeypatch.setattr(cmp, "_write_csv", real)
    _compare(tiny_model, phantom_csv, out, randomisation_items=0, steps=8)
    names = {p.name for p in out.iterdir()}
    assert "randomisation.png" not in names and "compare.json" in names  # no mix of runs
    assert json.loads((out / "compare.json").read_text())["config"]["steps"] == 8


def test_ctrl_c_in_the_cli_is_not_swallowed(tiny_checkpoint, phantom_csv, tmp_path, monkeypatch, capsys):
    import chexplain.evaluate.compare as cmp

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmp, "_write_csv", interrupted)
    rc = main(["compare", "--checkpoint", str(tiny_checkpoint), "--csv", str(phantom_csv),
               "--methods", "random", "--randomisation-items", "0", "--bootstrap", "5", "--max-items", "2",
               "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not [p for p in (tmp_path / "o").iterdir()]  # nothing half-written, no staging left
