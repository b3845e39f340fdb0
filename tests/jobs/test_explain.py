"""`chexplain explain`: outputs per image, method and class; figures; labels; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from chexplain.cli import main
from chexplain.jobs.explain import find_images, select_classes

NAMES = ["A", "B", "C", "D"]


def test_select_classes():
    p = np.array([0.1, 0.9, 0.5, 0.7])
    assert select_classes("top3", p, NAMES) == [1, 3, 2]
    assert select_classes("all", p, NAMES) == [0, 1, 2, 3]
    assert select_classes("c, a", p, NAMES) == [2, 0]
    with pytest.raises(Exception, match="unknown class 'E'"):
        select_classes("E", p, NAMES)


def test_explain_cli_writes_maps_figures_and_predictions(tmp_path, phantom_csv, tiny_checkpoint, capsys,
                                                         figure_audit):
    folder = phantom_csv.parent / "train"
    images = find_images([folder])
    assert len(images) == 12 and all(p.suffix == ".jpg" for p in images)  # masks skipped
    out = tmp_path / "out"
    rc = main(["explain", "--checkpoint", str(tiny_checkpoint), str(images[0]), str(images[1]),
               "--methods", "lrp-epsilon,dtd,gradcam", "--classes", "Pleural Effusion,Cardiomegaly",
               "--labels", str(phantom_csv), "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads((out / "explain.json").read_text())
    assert len(res["images"]) == 2
    first = res["images"][0]
    folder0 = out / "patient00001_study1"  # the image's identity, not "view1_frontal"
    assert first["identity"] == "patient00001/study1"
    for m in ("lrp_epsilon", "dtd", "gradcam"):
        png = folder0 / m / "pleural_effusion.png"
        assert png.is_file() and Image.open(png).size == (256, 256)  # display size
        assert np.load(png.with_suffix(".npy")).shape == (64, 64)
    for fig in ("fig4_lrp_rules.png", "fig6_top3.png", "fig7_gradcam_classes.png", "lrp_vs_gradcam.png"):
        assert (folder0 / fig).is_file(), fig
    # the study's Fig. 4: LRP-z, LRP-epsilon, LRP-alpha-beta and Deep Taylor, whatever --methods
    assert np.load(folder0 / "fig4_lrp_rules.npy").shape == (4, 64, 64)
    assert np.load(folder0 / "lrp_vs_gradcam.npy").shape == (2, 3, 64, 64)  # classes x methods
    assert (out / "fig5_correct_incorrect.png").is_file()
    checked = figure_audit.assert_clean(out)  # sizes, no overlapping or clipped text
    assert {"fig4_lrp_rules.png", "fig5_correct_incorrect.png", "fig6_top3.png",
            "fig7_gradcam_classes.png"} <= set(checked)
    assert len(figure_audit) >= 9  # 4 figures per image + Fig. 5, each checked as written
    assert first["labels"]["Pleural Effusion"] in (0, 1) and first["labels"]["Edema"] is None
    probs = (out / "predictions.csv").read_text().splitlines()
    assert len(probs) == 3 and probs[0].startswith("Path,No Finding")
    assert "explained 2 image(s)" in capsys.readouterr().out


def test_explain_reads_png_and_dicom(tmp_path, tiny_checkpoint):
    pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    Image.fromarray((np.random.default_rng(0).random((80, 70)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "b.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 64, 64, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    ds.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 4096).tobytes()
    ds.save_as(tmp_path / "b.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    assert main(["explain", "--checkpoint", str(tiny_checkpoint), str(tmp_path / "a.png"),
                 str(tmp_path / "b.dcm"), "--methods", "gradcam", "--classes", "top2",
                 "--out", str(out), "--quiet"]) == 0
    assert (out / "b" / "gradcam").is_dir() and (out / "a" / "fig6_top3.png").is_file()
    assert (out / "a" / "fig7_gradcam_classes.png").is_file()


def test_explain_errors_are_one_line(tmp_path, tiny_checkpoint, capsys):
    assert main(["explain", "--checkpoint", str(tiny_checkpoint), str(tmp_path / "none.png"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such image" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"")
    assert main(["explain", "--checkpoint", str(tiny_checkpoint), str(tmp_path),
                 "--methods", "lrp-bogus", "--out", str(tmp_path / "o")]) == 2
    assert "unknown method 'lrp-bogus'" in capsys.readouterr().err


def test_explain_warns_when_a_phantom_model_meets_real_radiographs(tmp_path, phantom_csv,
                                                                   tiny_checkpoint, capsys):
    import json
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    ckpt = shutil.copy(tiny_checkpoint, run / "best.pt")
    (run / "config.json").write_text(json.dumps({"csv": str(phantom_csv)}))
    real = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(1).random((70, 70)) * 255).astype(np.uint8)).save(real)
    phantom_image = find_images([phantom_csv.parent / "train"])[0]
    args = ["explain", "--checkpoint", str(ckpt), "--methods", "gradcam", "--quiet"]
    assert main(args + [str(phantom_image), "--out", str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err  # phantom model on phantom images: fine
    assert main(args + [str(real), "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "trained on phantom radiographs" in err and "meaningless" in err and "scan.png" in err
