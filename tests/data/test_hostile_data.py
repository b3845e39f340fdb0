"""Inputs of the second reliability audit: animated and rotated images, compressed DICOM,
CSVs in another dialect, with repeated rows or Paths leaving the data folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from chexplain.data.chexpert import read_chexpert_csv
from chexplain.data.images import read_image
from chexplain.errors import DataError


def test_an_animated_png_is_refused_naming_its_frames(tmp_path):
    frames = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (0, 100, 200)]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=r"a\.png: animated image \(3 frames\)"):
        read_image(tmp_path / "a.png")


@pytest.mark.parametrize("orientation,where", [(1, (0, 0)), (3, (19, 29)), (6, (0, 19)), (8, (29, 0))])
def test_exif_orientation_is_applied_with_a_warning(tmp_path, orientation, where):
    """A bright pixel stored top-left lands where a viewer shows it (EXIF 274: 3 = rotate
    180°, 6 = rotate 90° clockwise, 8 = 90° anticlockwise)."""
    a = np.zeros((20, 30), np.uint8)
    a[0, 0] = 255
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[274] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    if orientation == 1:
        r = read_image(tmp_path / "o.png")
    else:
        with pytest.warns(UserWarning, match=f"EXIF orientation {orientation}"):
            r = read_image(tmp_path / "o.png")
    assert np.unravel_index(int(r.argmax()), r.shape) == where and r.max() == 1.0


def test_a_jpeg_compressed_dicom_names_syntax_and_decoder(tmp_path):
    from pydicom.data import get_testdata_file

    src = get_testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG Extended: Pillow cannot decode it
    shutil.copy(src, tmp_path / "j.dcm")
    with pytest.raises(DataError) as e:
        read_image(tmp_path / "j.dcm")
    msg = str(e.value)
    assert "j.dcm" in msg and "JPEG Extended" in msg and "1.2.840.10008.1.2.4.51" in msg
    assert "pip install pylibjpeg pylibjpeg-libjpeg" in msg


@pytest.fixture(scope="module")
def phantom_csv(tmp_path_factory):
    from chexplain.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("hostile") / "phantom", 6, size=32, seed=1,
                         progress=False)


def _lines(phantom_csv):
    return phantom_csv.read_text().splitlines()


@pytest.mark.parametrize("sep,word", [(";", "semicolon"), ("\t", "tab")])
def test_a_csv_with_another_delimiter_is_named(phantom_csv, tmp_path, sep, word):
    path = tmp_path / "s.csv"
    path.write_text("\n".join(ln.replace(",", sep) for ln in _lines(phantom_csv)) + "\n")
    with pytest.raises(DataError, match=f"s.csv: {word}-separated"):
        read_chexpert_csv(path)


def test_duplicate_rows_are_dropped_with_a_warning(phantom_csv, tmp_path):
    lines = _lines(phantom_csv)
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines + [lines[3], lines[1]]) + "\n")
    with pytest.warns(UserWarning, match=r"2 duplicate row\(s\) dropped"):
        frame = read_chexpert_csv(path)
    assert len(frame) == len(lines) - 1 and frame["Path"].is_unique


def test_the_same_path_with_other_labels_is_an_error(phantom_csv, tmp_path):
    lines = _lines(phantom_csv)
    other = lines[1][:-3] + ("0.0" if not lines[1].endswith("0.0") else "1.0")
    path = tmp_path / "c.csv"
    path.write_text("\n".join(lines + [other]) + "\n")
    with pytest.raises(DataError, match=f"line {len(lines) + 1}: Path .* repeats line 2 with other values"):
        read_chexpert_csv(path)


@pytest.mark.parametrize("bad", ["../../etc/passwd.jpg", "/etc/x.jpg", "a/../../b.jpg"])
def test_paths_leaving_the_data_folder_are_warned(phantom_csv, tmp_path, bad):
    lines = _lines(phantom_csv)
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines[:1] + [bad + "," + lines[1].split(",", 1)[1]] + lines[2:]) + "\n")
    with pytest.warns(UserWarning, match="lead outside the data folder"):
        read_chexpert_csv(path)


def test_paths_inside_the_data_folder_do_not_warn(phantom_csv, recwarn):
    read_chexpert_csv(phantom_csv)
    assert not [w for w in recwarn if "outside" in str(w.message)]
