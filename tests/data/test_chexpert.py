"""CheXpert CSV: real-data statistics, uncertainty policies, filters, split, Dataset, CLI."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
from PIL import Image

from chexplain.cli import main
from chexplain.data.chexpert import (OBSERVATIONS, CheXpertDataset, filter_views, label_arrays,
                                     label_stats, patient_split, read_chexpert_csv)
from chexplain.data.images import XRV
from chexplain.errors import DataError

from .conftest import CHEXPERT_CSV, need

TABLE1 = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
          "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
          "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")


def test_observation_order_matches_table1_and_real_csv():
    assert OBSERVATIONS == TABLE1
    with gzip.open(need(CHEXPERT_CSV), "rt", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header[5:]) == OBSERVATIONS
    assert header[:5] == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"]


def _raw_counts(frontal: bool) -> dict:
    """Independent count straight from the CSV text (no pandas)."""
    counts = {o: {"positive": 0, "uncertain": 0, "negative": 0} for o in OBSERVATIONS}
    rows = 0
    with gzip.open(CHEXPERT_CSV, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if frontal and row["Frontal/Lateral"] != "Frontal":
                continue
            rows += 1
            for o in OBSERVATIONS:
                key = {"1.0": "positive", "-1.0": "uncertain"}.get(row[o], "negative")
                counts[o][key] += 1
    return {"rows": rows, "observations": counts}


def test_real_stats_all_rows(chexpert_frame):
    stats = label_stats(chexpert_frame)
    assert stats["rows"] == 223_414
    obs = stats["observations"]
    assert list(obs) == list(OBSERVATIONS)
    assert obs["No Finding"] == {"positive": 22_381, "uncertain": 0, "negative": 201_033}
    assert obs["Pleural Effusion"] == {"positive": 86_187, "uncertain": 11_628, "negative": 125_599}
    assert obs["Atelectasis"]["uncertain"] == 33_739
    assert stats == _raw_counts(frontal=False)


def test_real_stats_frontal(chexpert_frame):
    frontal = filter_views(chexpert_frame, "Frontal")
    stats = label_stats(frontal)
    assert stats["rows"] == 191_027
    assert stats["observations"]["No Finding"]["positive"] == 16_974
    assert stats["observations"]["Support Devices"] == {"positive": 107_170, "uncertain": 915,
                                                        "negative": 82_942}
    assert stats == _raw_counts(frontal=True)
    assert len(filter_views(chexpert_frame, "lateral")) == 32_387
    assert len(filter_views(chexpert_frame, ap_pa="PA")) == 29_420
    assert len(filter_views(chexpert_frame, "Frontal", ["AP", "PA"])) == 161_590 + 29_420


# row 1 (patient00002/study2): ,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,
ROW1_POS = {"Lung Opacity", "Fracture"}
ROW1_UNC = {"Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion"}


@pytest.mark.parametrize("policy", ["U-Zeros", "U-Ones", "U-Ignore"])
def test_policies_on_chosen_rows(chexpert_frame, policy):
    rows = chexpert_frame.iloc[[0, 1]]
    assert rows["Path"].iloc[1].endswith("patient00002/study2/view1_frontal.jpg")
    targets, mask = label_arrays(rows, policy)
    assert targets.dtype == mask.dtype == np.float32 and targets.shape == (2, 14)
    # row 0: No Finding 1.0, Pneumothorax 0.0, Support Devices 1.0, others blank
    assert targets[0].tolist() == [float(o in ("No Finding", "Support Devices")) for o in OBSERVATIONS]
    assert mask[0].tolist() == [1.0] * 14
    unc_value = {"U-Zeros": 0.0, "U-Ones": 1.0, "U-Ignore": 0.0}[policy]
    expected = [1.0 if o in ROW1_POS else unc_value if o in ROW1_UNC else 0.0 for o in OBSERVATIONS]
    assert targets[1].tolist() == expected
    expected_mask = [0.0 if (policy == "U-Ignore" and o in ROW1_UNC) else 1.0 for o in OBSERVATIONS]
    assert mask[1].tolist() == expected_mask


def test_policy_totals_on_real_csv(chexpert_frame):
    zeros, _ = label_arrays(chexpert_frame, "zeros")
    ones, _ = label_arrays(chexpert_frame, "ones")
    _, ignore_mask = label_arrays(chexpert_frame, "ignore")
    k = OBSERVATIONS.index("Consolidation")
    assert zeros[:, k].sum() == 14_783 and ones[:, k].sum() == 14_783 + 27_742
    assert (ignore_mask[:, k] == 0).sum() == 27_742


def test_patient_split_real(chexpert_frame):
    train, val = patient_split(chexpert_frame, 0.1, seed=7)
    assert len(train) + len(val) == 223_414 and len(np.intersect1d(train, val)) == 0
    pid = chexpert_frame["Path"].str.extract(r"(patient\d+)", expand=False).to_numpy()
    assert not set(pid[train]) & set(pid[val])
    assert abs(len(set(pid[val])) - 0.1 * len(set(pid))) <= 1
    again, _ = patient_split(chexpert_frame, 0.1, seed=7)
    other, _ = patient_split(chexpert_frame, 0.1, seed=8)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_cli_stats_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "t1.json"
    assert main(["chexpert", "stats", str(need(CHEXPERT_CSV)), "--frontal", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "16,974" in printed and "191,027 rows" in printed and "(  8.9%)" in printed
    data = json.loads(out.read_text())
    assert data["rows"] == 191_027
    assert data["observations"]["No Finding"] == {"positive": 16_974, "uncertain": 0,
                                                  "negative": 174_053}
    assert list(data["observations"]) == list(OBSERVATIONS)


# ------------------------------------------------------------------ Dataset on files

HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)


def _small_set(tmp_path, n_patients=6):
    root = tmp_path / "data"
    folder = root / "CheXpert-v1.0-small"
    lines = [HEADER]
    for p in range(1, n_patients + 1):
        for view, fl in (("view1_frontal", "Frontal,AP"), ("view2_lateral", "Lateral,")):
            rel = f"CheXpert-v1.0-small/train/patient{p:05d}/study1/{view}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((40, 30), 10 * p, np.uint8)).save(root / rel)
            labels = ["" for _ in OBSERVATIONS]
            labels[2] = ["0.0", "1.0", "-1.0"][p % 3]
            lines.append(f"{rel},Female,50,{fl}," + ",".join(labels))
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return folder / "train.csv", root


def test_dataset_items_and_default_root(tmp_path):
    csv_path, root = _small_set(tmp_path)
    ds = CheXpertDataset(csv_path, policy="ones", frontal_lateral="Frontal", size=16)
    assert ds.root == root.resolve() and len(ds) == 6
    item = ds[1]
    assert item["image"].shape == (3, 16, 16) and item["target"].shape == (14,)
    assert item["target"][2] == 1.0  # patient 2: uncertain → 1 under U-Ones
    np.testing.assert_allclose(ds.normalization.invert(item["image"]).numpy(), 20 / 255, atol=1e-6)
    xrv = CheXpertDataset(csv_path, normalization=XRV, size=8, policy="ignore")
    assert xrv[0]["image"].shape == (1, 8, 8) and len(xrv) == 12
    assert xrv[2]["mask"][2] == 0 and xrv[0]["mask"][2] == 1 and xrv.normalization is XRV


def test_missing_files_reported_together(tmp_path):
    csv_path, root = _small_set(tmp_path)
    for p in (2, 5):
        (root / f"CheXpert-v1.0-small/train/patient{p:05d}/study1/view1_frontal.jpg").unlink()
    with pytest.raises(DataError) as err:
        CheXpertDataset(csv_path)
    msg = str(err.value)
    assert "2 of 12 image files missing" in msg and "\n" not in msg
    assert "patient00002" in msg and "patient00005" in msg
    assert len(CheXpertDataset(csv_path, frontal_lateral="Lateral")) == 6


def test_split_indices_feed_dataset(tmp_path):
    csv_path, _ = _small_set(tmp_path)
    frame = read_chexpert_csv(csv_path)
    train, val = patient_split(frame, 0.34, seed=0)
    assert len(val) == 4 and len(train) == 8
    ds = CheXpertDataset(csv_path, indices=val, size=8)
    assert set(ds.frame["Path"]) == set(frame["Path"].iloc[val])
