"""Ground truth in the viewer: NIH ChestX-ray14's radiologist boxes beside an explained image
are outlined where the box lies (its NIH label mapped to the model's finding), the phantom's
masks as they are stored; an image without either has none."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
from PIL import Image

from chexplain.data.nih_tables import NIH_TO_CHEXPERT
from chexplain.view.truth import finding_mask

from .conftest import running
from .test_server import get, get_json


def _nih_folder(root, name="00000001_000.png", label="Effusion", box=(256, 128, 512, 256), side=512):
    """A ChestX-ray14 layout: images/NAME (side × side px) and one box in the 1024 frame."""
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((side, side), 90, np.uint8)).save(root / "images" / name)
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n" + f"{name},{label},{','.join(map(str, box))}\n")
    return root / "images" / name


def test_an_nih_box_is_drawn_at_the_displayed_size_under_the_mapped_finding(tmp_path):
    image = _nih_folder(tmp_path / "nih")
    mask = finding_mask(image, "Pleural Effusion", (256, 256))  # Effusion → Pleural Effusion
    rows, cols = np.nonzero(mask)
    assert mask.shape == (256, 256)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (32, 95, 64, 191)  # 1024 → 256: a quarter
    assert finding_mask(image, "Cardiomegaly", (256, 256)) is None
    assert finding_mask(tmp_path / "elsewhere.png", "Pleural Effusion", (256, 256)) is None


def test_an_explained_nih_image_shows_its_box_outlined(demo_run, tmp_path):
    folder = tmp_path / "explain"
    shutil.copytree(demo_run / "explain", folder)
    summary = json.loads((folder / "explain.json").read_text())
    rec = summary["images"][0]
    cls = next(c for c in rec["explained"] if c in NIH_TO_CHEXPERT.values())
    label = next(k for k, v in NIH_TO_CHEXPERT.items() if v == cls)
    rec["path"] = str(_nih_folder(tmp_path / "nih", label=label, side=1024))
    (folder / "explain.json").write_text(json.dumps(summary))
    with running(folder) as url:
        item = get_json(url + "api/explain/item?s=0&i=0")
        assert {m["class"]: m["mask"] for m in item["maps"]}[cls] is True
        status, kind, body = get(url + f"img/explain/mask?s=0&i=0&c={cls.replace(' ', '%20')}")
    assert status == 200 and kind == "image/png"
    alpha = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))[..., 3] > 0
    rows, cols = np.nonzero(alpha)
    assert alpha.shape == (512, 512)  # the radiograph's displayed size
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (64, 191, 128, 383)
    assert not alpha[100, 200]  # an outline, not a filled box
