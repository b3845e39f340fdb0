"""Phantom radiographs: masks cover each drawing, determinism, CheXpert layout.

The generator's speed is measured by ``benchmarks/phantom_speed.py``."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from chexplain.cli import main
from chexplain.data.chexpert import OBSERVATIONS, CheXpertDataset, read_chexpert_csv
from chexplain.data.phantom import (FINDINGS, MARKER, MASK_NAMES, Confounder, generate_phantom,
                                    mask_file, phantom_sample, read_finding_masks, write_phantom)
from chexplain.errors import DataError

NONE = {f: False for f in FINDINGS}


@pytest.mark.parametrize("finding", FINDINGS)
@pytest.mark.parametrize("seed,size", [(0, 224), (5, (160, 128))])
def test_mask_covers_exactly_what_was_drawn(finding, seed, size):
    for index in range(3):
        base = phantom_sample(size, seed, index, findings=NONE)
        with_f = phantom_sample(size, seed, index, findings={**NONE, finding: True})
        mask = with_f.masks[finding]
        assert list(with_f.masks) == [finding] and not base.masks
        changed = base.image != with_f.image
        assert not (changed & ~mask).any(), "drawing outside the mask"
        assert mask.any() and changed[mask].mean() > 0.5, "mask much larger than the drawing"
        assert with_f.labels[OBSERVATIONS.index(finding)] == 1
        assert base.labels[OBSERVATIONS.index(finding)] == 0


def test_findings_in_anatomical_places():
    h = w = 224
    for i in range(10):
        s = phantom_sample(224, 1, i, findings={f: True for f in FINDINGS})
        m = s.masks
        eff_rows = np.flatnonzero(m["Pleural Effusion"].any(1))
        assert eff_rows.min() > 0.3 * h and eff_rows.max() < 0.9 * h  # a lung base
        cols = np.flatnonzero(m["Pleural Effusion"].any(0))
        assert cols.max() < w / 2 or cols.min() > w / 2  # one side only
        heart_w = np.flatnonzero(m["Cardiomegaly"].any(0))
        assert heart_w.size / w > 0.3  # cardiothoracic ratio well above a normal heart's
        assert m["Lung Lesion"].sum() < 0.01 * h * w
        assert m["Support Devices"].sum() < 0.03 * h * w
        assert m["Pneumothorax"][: h // 4].any()  # reaches the apex
    normal = phantom_sample(224, 1, 0, findings={**NONE, "Cardiomegaly": True})
    assert s.labels[OBSERVATIONS.index("No Finding")] == 0
    clean = phantom_sample(224, 1, 0, findings={**NONE, "Support Devices": True})
    assert clean.labels[OBSERVATIONS.index("No Finding")] == 1  # devices are not pathology
    assert normal.image.dtype == np.float32 and 0 <= normal.image.min() and normal.image.max() <= 1


def test_generate_api_and_confounder():
    ph = generate_phantom(40, 64, seed=3, confounder=Confounder("Pneumothorax", 1.0, 0.0, "R"))
    assert ph.images.shape == (40, 64, 64) and ph.labels.shape == (40, 14)
    assert ph.masks.shape == (40, len(MASK_NAMES), 64, 64) and ph.mask_names == MASK_NAMES
    k, j = OBSERVATIONS.index("Pneumothorax"), MASK_NAMES.index(MARKER)
    has_marker = ph.masks[:, j].any(axis=(1, 2))
    assert np.array_equal(has_marker, ph.labels[:, k] == 1) and 5 < has_marker.sum() < 35
    for f in FINDINGS:
        assert np.array_equal(ph.masks[:, MASK_NAMES.index(f)].any(axis=(1, 2)),
                              ph.labels[:, OBSERVATIONS.index(f)] == 1)
    again = generate_phantom(40, 64, seed=3, confounder=Confounder("Pneumothorax", 1.0, 0.0, "R"))
    assert np.array_equal(ph.images, again.images) and np.array_equal(ph.masks, again.masks)
    assert not np.array_equal(ph.images, generate_phantom(40, 64, seed=4).images)
    with pytest.raises(DataError, match="not one of the phantom's findings"):
        Confounder("Edema")


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_write_same_seed_same_bytes_and_chexpert_loader(tmp_path):
    a = write_phantom(tmp_path / "a" / "phantom", 12, 96, seed=11, progress=False)
    b = write_phantom(tmp_path / "b" / "phantom", 12, 96, seed=11, progress=False)
    c = write_phantom(tmp_path / "c" / "phantom", 12, 96, seed=12, progress=False)
    assert _digest(a.parent) == _digest(b.parent) != _digest(c.parent)
    frame = read_chexpert_csv(a)
    assert len(frame) == 12 and frame["Path"].iloc[0] == \
        "phantom/train/patient00001/study1/view1_frontal.jpg"
    ds = CheXpertDataset(a, size=96, masks=True)  # root found from the layout, as for CheXpert
    ph = generate_phantom(12, 96, seed=11)
    for i in range(12):
        item = ds[i]
        assert item["target"].numpy().tolist() == ph.labels[i].tolist()
        assert item["finding_masks"].shape == (14, 96, 96)
        for f in FINDINGS:
            assert np.array_equal(item["finding_masks"][OBSERVATIONS.index(f)].numpy(),
                                  ph.masks[i, MASK_NAMES.index(f)])
        img = ds.normalization.invert(item["image"]).numpy()
        assert np.abs(img - ph.images[i]).mean() < 0.02  # JPEG at quality 95
    first = ds.image_path(0)
    assert set(read_finding_masks(first)) == {f for f in FINDINGS if ph.labels[0][OBSERVATIONS.index(f)]}
    assert mask_file(first, "Lung Lesion").name == "lung_lesion.png"


def test_cli_writes_every_image_and_row(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "generate", "--n", "120", "--size", "224", "--out", str(out),
                 "--seed", "1", "--quiet"]) == 0
    assert len(list(out.rglob("*.jpg"))) == 120
    assert len(read_chexpert_csv(out / "train.csv")) == 120
    assert "wrote 120 images" in capsys.readouterr().out


def test_test_split_is_not_named_train_csv_and_phantom_training_is_detected(tmp_path):
    import json

    from chexplain.data.phantom import phantom_folder, trained_on_phantom

    csv = write_phantom(tmp_path / "held_out", 2, size=32, seed=1, progress=False, split="test")
    assert csv.name == "test.csv" and not (tmp_path / "held_out" / "train.csv").exists()
    first = read_chexpert_csv(csv)["Path"].iloc[0]
    assert first == "held_out/test/patient00001/study1/view1_frontal.jpg"
    assert phantom_folder(tmp_path / first) == tmp_path / "held_out"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"csv": str(csv)}))
    assert trained_on_phantom(run / "best.pt") == tmp_path / "held_out"
    (run / "config.json").write_text(json.dumps({"csv": str(tmp_path / "real" / "train.csv")}))
    assert trained_on_phantom(run / "best.pt") is None
    with pytest.raises(DataError, match="split"):
        write_phantom(tmp_path / "x", 1, size=32, split="val")


def test_trained_on_phantom_reads_a_real_training_config(tmp_path, monkeypatch):
    """A run trained with a relative --csv (the demo's case): its config.json holds the data
    fingerprint beside the options, and the phantom is still found (it was a TypeError)."""
    import json

    from chexplain.data.phantom import trained_on_phantom

    csv = write_phantom(tmp_path / "ph", 2, size=32, seed=1, progress=False)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(tmp_path / "run")
    config = {"csv": "ph/train.csv", "data": None,
              "data_fingerprint": {"--csv": {"path": str(csv.resolve()), "rows": 2, "sha256": "x"}}}
    (run / "config.json").write_text(json.dumps(config))
    assert trained_on_phantom(run / "best.pt") == (tmp_path / "ph").resolve()
    # a config of the intermediate layout (fingerprint under "data") is read without a crash
    (run / "config.json").write_text(json.dumps({"csv": "ph/train.csv", "data": {"--csv": {}}}))
    assert trained_on_phantom(run / "best.pt") is None
