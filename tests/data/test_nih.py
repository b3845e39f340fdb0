"""NIH ChestX-ray14: labels, boxes rescaled to the image and to the model input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chexplain.data.images import Preprocess, read_image
from chexplain.data.nih import NIHDataset
from chexplain.data.nih_tables import NIH_LABELS, box_masks, nih_targets, read_nih_boxes, read_nih_entries
from chexplain.errors import DataError


@pytest.fixture(scope="module")
def nih(nih_dir):
    return {"dir": nih_dir, "entries": read_nih_entries(nih_dir / "Data_Entry_2017_v2020.csv.gz"),
            "boxes": read_nih_boxes(nih_dir / "BBox_List_2017.csv.gz")}


def test_entries_and_targets(nih):
    entries = nih["entries"]
    assert len(entries) == 112_120
    t = nih_targets(entries)
    assert t.shape == (112_120, 14) and t.dtype == np.float32
    i = int(np.flatnonzero(entries["Image Index"] == "00000001_001.png")[0])  # Cardiomegaly|Emphysema
    assert np.flatnonzero(t[i]).tolist() == [NIH_LABELS.index("Cardiomegaly"),
                                             NIH_LABELS.index("Emphysema")]
    no_finding = entries["Finding Labels"] == "No Finding"
    assert no_finding.sum() == 60_361 and t[no_finding.to_numpy()].sum() == 0
    assert t[:, NIH_LABELS.index("Hernia")].sum() == 227


def test_boxes(nih):
    boxes = nih["boxes"]
    assert len(boxes) == 984 and list(boxes.columns) == ["image", "label", "x", "y", "w", "h"]
    assert boxes["label"].value_counts()["Infiltration"] == 123  # spelt "Infiltrate" in the file
    row = boxes[boxes["image"] == "00009745_000.png"].iloc[0]
    assert row["label"] == "Cardiomegaly"
    assert (row["x"], row["y"]) == pytest.approx((329.413756613757, 399.847619047619))


def _extent(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], rows[-1], cols[0], cols[-1]


def test_box_lands_on_right_pixels_after_resize(nih):
    boxes = nih["boxes"][nih["boxes"]["image"] == "00009745_000.png"]
    x, y, w, h = boxes.iloc[0][["x", "y", "w", "h"]]
    native = box_masks(boxes, 1024, 1024)[NIH_LABELS.index("Cardiomegaly")]
    assert _extent(native) == (int(np.ceil(y - 0.5)), int(np.floor(y + h - 0.5)),
                               int(np.ceil(x - 0.5)), int(np.floor(x + w - 0.5)))
    # the same box painted into the image and resized with it lands where the mask says
    pre = Preprocess(224)
    resized = box_masks(boxes, 1024, 1024, pre)[NIH_LABELS.index("Cardiomegaly")]
    painted = pre.image(native.astype(np.float32)) > 0.5
    assert resized.shape == (224, 224) and resized.sum() > 0.9 * 456 * 382 * (224 / 1024) ** 2
    assert np.abs(np.array(_extent(resized)) - np.array(_extent(painted))).max() <= 1
    assert (resized != painted).mean() < 0.01
    # by hand: scale 224/1024; rows 399.85*s=87.47 .. 782.36*s=171.14; cols 72.06 .. 171.85
    assert _extent(resized) == (87, 170, 72, 171)


def test_box_rescaled_to_a_512_image(nih):
    img = read_image(nih["dir"] / "images" / "00000001_000.png")
    assert img.shape == (512, 512)
    box = pd.DataFrame({"label": ["Nodule"], "x": [100.0], "y": [200.0], "w": [40.0], "h": [20.0]})
    m = box_masks(box, *img.shape)[NIH_LABELS.index("Nodule")]
    assert _extent(m) == (100, 109, 50, 69) and m.sum() == 10 * 20
    # a 512-high, 1024-wide image: the 1024 frame scales by (1, 0.5); Preprocess(256, 128)
    # halves it to 256x512 and crops rows 64..191, cols 192..319
    box = pd.DataFrame({"label": ["Mass"], "x": [400.0], "y": [600.0], "w": [40.0], "h": [20.0]})
    crop = box_masks(box, 512, 1024, Preprocess(256, 128))[NIH_LABELS.index("Mass")]
    assert crop.shape == (128, 128)
    assert _extent(crop) == (86, 90, 8, 27) and crop.sum() == 5 * 20


def test_dataset_on_real_images(nih):
    d = nih["dir"]
    with pytest.raises(DataError, match="image files missing"):
        NIHDataset(d / "images", d / "Data_Entry_2017_v2020.csv.gz")
    ds = NIHDataset(d / "images", d / "Data_Entry_2017_v2020.csv.gz", d / "BBox_List_2017.csv.gz",
                    missing="skip", size=64)
    assert len(ds) == 12
    by_name = {ds.entries["Image Index"].iloc[i]: i for i in range(len(ds))}
    item = ds[by_name["00001369_000.png"]]
    k = NIH_LABELS.index("Cardiomegaly")
    assert item["image"].shape == (3, 64, 64) and item["target"][k] == 1
    assert item["has_box"].tolist() == [i == k for i in range(14)]
    assert item["box_mask"].shape == (14, 64, 64) and item["box_mask"][k].sum() > 200
    plain = ds[by_name["00000129_000.png"]]
    assert plain["target"].sum() == 0 and not plain["box_mask"].any()


def test_as_observations_merges_mapped_labels(tmp_path):
    """Mass and Nodule both become Lung Lesion (targets and boxes united); Emphysema has no
    CheXpert counterpart; an entry without findings is No Finding."""
    from PIL import Image

    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.data.nih import NIHAsObservations
    from chexplain.data.nih_tables import nih_folder

    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((64, 64), 128, np.uint8)).save(tmp_path / "images" / name)
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels\na.png,Mass|Nodule|Emphysema\nb.png,No Finding\n")
    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "a.png,Mass,0,0,256,256\na.png,Nodule,768,768,256,256\n")
    ds = NIHAsObservations(NIHDataset(*nih_folder(tmp_path), size=64), OBSERVATIONS)
    lesion, none = OBSERVATIONS.index("Lung Lesion"), OBSERVATIONS.index("No Finding")
    assert ds.default_classes == ["Lung Lesion"]
    a, b = ds[0], ds[1]
    assert a["target"].nonzero().flatten().tolist() == [lesion]
    assert b["target"].nonzero().flatten().tolist() == [none]
    assert a["box_mask"].shape == (14, 64, 64) and a["has_box"].nonzero().flatten().tolist() == [lesion]
    m = a["box_mask"][lesion]
    assert m[:16, :16].all() and m[48:, 48:].all() and m.sum() == 2 * 16 * 16
    assert not b["box_mask"].any()


def test_nih_folder_errors(tmp_path):
    from chexplain.data.nih_tables import nih_folder

    with pytest.raises(DataError, match="NIH folder not found"):
        nih_folder(tmp_path / "absent")
    with pytest.raises(DataError, match="no Data_Entry_2017"):
        nih_folder(tmp_path)


def test_as_observations_on_real_images(nih):
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.data.nih import NIHAsObservations
    from chexplain.data.nih_tables import nih_folder

    ds = NIHAsObservations(NIHDataset(*nih_folder(nih["dir"]), size=64, missing="skip"), OBSERVATIONS)
    names = list(ds.base.entries["Image Index"])
    t = {n: {OBSERVATIONS[k] for k in np.flatnonzero(ds.targets[i])} for i, n in enumerate(names)}
    assert t["00004387_000.png"] == {"Pleural Effusion"} and t["00002927_000.png"] == {"Lung Lesion"}
    assert t["00000284_000.png"] == set()  # Hernia: no CheXpert counterpart
    assert t["00000129_000.png"] == {"No Finding"}
    assert ds.default_classes == ["Cardiomegaly"]  # the only boxes among the 12 samples
    item = ds[names.index("00001369_000.png")]
    assert item["has_box"].nonzero().flatten().tolist() == [OBSERVATIONS.index("Cardiomegaly")]
