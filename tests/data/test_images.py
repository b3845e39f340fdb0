"""read_image on PNG/JPEG/DICOM, geometry, and the normalisation record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chexplain.data.images import (IMAGENET, XRV, Normalization, Preprocess, box_mask, geometry,
                                   get_normalization, read_image, resize_and_crop)
from chexplain.errors import DataError

from .conftest import need, NIH

RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (7, 5), dtype=np.uint8)


def _save(tmp_path, arr, name, mode=None, **kw):
    path = tmp_path / name
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


def test_png_8bit_exact(tmp_path):
    out = read_image(_save(tmp_path, GREY8, "a.png"))
    assert out.dtype == np.float32 and out.shape == (7, 5)
    np.testing.assert_array_equal(out, GREY8.astype(np.float32) / 255)


def test_png_16bit_exact(tmp_path):
    arr = np.array([[0, 1, 4095], [32768, 65534, 65535]], dtype=np.uint16)
    out = read_image(_save(tmp_path, arr, "a.png"))
    np.testing.assert_array_equal(out, arr.astype(np.float32) / 65535)


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA"])
def test_grey_in_colour_containers_equals_grey(tmp_path, mode):
    channels = [GREY8] * (3 if mode.startswith("RGB") else 1)
    if mode.endswith("A"):
        channels.append(np.full_like(GREY8, 255))
    path = tmp_path / "a.png"
    Image.merge(mode, [Image.fromarray(c) for c in channels]).save(path)
    np.testing.assert_array_equal(read_image(path), GREY8 / np.float32(255))


def test_palette_grey_png(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(GREY8).convert("P").save(path)
    np.testing.assert_array_equal(read_image(path), GREY8 / np.float32(255))


def test_jpeg_grey_and_rgb(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    grey = read_image(_save(tmp_path, smooth, "g.jpg", quality=100))
    rgb = read_image(_save(tmp_path, np.stack([smooth] * 3, -1), "c.jpg", quality=100))
    assert grey.shape == rgb.shape == (48, 64)
    assert np.abs(grey - smooth / 255).max() < 3 / 255
    assert np.abs(rgb - smooth / 255).max() < 3 / 255


def test_real_nih_images_all_load_and_rgba_equals_channel0(nih_dir):
    paths = sorted((nih_dir / "images").glob("*.png"))
    assert len(paths) == 12
    sizes = {}
    for p in paths:
        img = read_image(p)
        assert img.dtype == np.float32 and img.ndim == 2
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05
        sizes[p.name] = img.shape
    assert sorted(sizes.values()).count((1024, 1024)) == 10
    assert sizes["00000001_000.png"] == (512, 512)
    rgba = need(NIH / "images" / "00001369_000.png")
    with Image.open(rgba) as im:
        assert im.mode == "RGBA"
        raw = np.asarray(im)
    np.testing.assert_array_equal(read_image(rgba), raw[..., 0] / np.float32(255))


# ----------------------------------------------------------------------------- DICOM

def _dicom(tmp_path, pixels, name="x.dcm", photometric="MONOCHROME2", bits_stored=None,
           signed=False, **attrs):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / name), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = "DX", photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


PIX12 = np.array([[0, 1, 2047], [2048, 4000, 4095]], dtype=np.uint16)


def test_dicom_monochrome2_12bit_full_range(tmp_path):
    out = read_image(_dicom(tmp_path, PIX12, bits_stored=12))
    np.testing.assert_allclose(out, PIX12 / 4095.0, rtol=0, atol=1e-7)


def test_dicom_monochrome1_inverted(tmp_path):
    out = read_image(_dicom(tmp_path, PIX12, photometric="MONOCHROME1", bits_stored=12))
    np.testing.assert_allclose(out, 1.0 - PIX12 / 4095.0, rtol=0, atol=1e-7)


def test_dicom_16bit_and_8bit(tmp_path):
    pix16 = np.array([[0, 300], [65000, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(read_image(_dicom(tmp_path, pix16, "a.dcm")), pix16 / 65535.0,
                               atol=1e-7)
    pix8 = np.array([[0, 17], [128, 255]], dtype=np.uint8)
    np.testing.assert_allclose(read_image(_dicom(tmp_path, pix8, "b.dcm")), pix8 / 255.0, atol=1e-7)


def test_dicom_rescale_then_linear_window(tmp_path):
    # HU = 2 * stored - 1024; window centre 40, width 401 (PS3.3 C.11.2.1.2.1)
    pix = np.array([[0, 400, 500], [532, 600, 4095]], dtype=np.uint16)
    path = _dicom(tmp_path, pix, bits_stored=12, RescaleSlope="2", RescaleIntercept="-1024",
                  WindowCenter="40", WindowWidth="401")
    hu = 2.0 * pix - 1024
    expected = np.clip((hu - 39.5) / 400 + 0.5, 0, 1)
    expected[hu <= 39.5 - 200] = 0
    expected[hu > 39.5 + 200] = 1
    np.testing.assert_allclose(read_image(path), expected, atol=1e-7)
    assert read_image(path)[0, 0] == 0 and read_image(path)[1, 2] == 1


def test_dicom_signed_rescale_no_window_and_linear_exact(tmp_path):
    pix = np.array([[-2048, -1], [0, 2047]], dtype=np.int16)
    path = _dicom(tmp_path, pix, "s.dcm", bits_stored=12, signed=True, RescaleSlope="0.5",
                  RescaleIntercept="10")
    np.testing.assert_allclose(read_image(path), (pix + 2048) / 4095.0, atol=1e-7)
    path = _dicom(tmp_path, pix, "e.dcm", bits_stored=12, signed=True, WindowCenter="0",
                  WindowWidth="1000", VOILUTFunction="LINEAR_EXACT")
    np.testing.assert_allclose(read_image(path), np.clip(pix / 1000.0 + 0.5, 0, 1), atol=1e-7)


def test_dicom_voi_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]  # 4 entries, first mapped value 10, 8-bit output
    item.add_new(0x00283006, "US", [0, 50, 200, 255])  # LUTData
    pix = np.array([[0, 10, 11], [12, 13, 100]], dtype=np.uint16)
    path = _dicom(tmp_path, pix, bits_stored=12, VOILUTSequence=Sequence([item]))
    expected = np.array([[0, 0, 50], [200, 255, 255]]) / 255.0
    np.testing.assert_allclose(read_image(path), expected, atol=1e-7)


# -------------------------------------------------------------------------- geometry

def test_geometry_shorter_side_and_centre_crop():
    g = geometry(390, 320, 256, 224)  # CheXpert-small portrait
    assert g.scale_x == 256 / 320 and g.scale_y == 312 / 390
    assert (g.top, g.left, g.out_height, g.out_width) == (44, 16, 224, 224)
    img = np.arange(390 * 320, dtype=np.float32).reshape(390, 320) / (390 * 320)
    assert resize_and_crop(img, 256, 224).shape == (224, 224)
    assert resize_and_crop(img, 200).shape == (200, 200)
    with pytest.raises(DataError):
        geometry(10, 10, 100, 120)


def test_box_mask_pixel_centres():
    m = box_mask([(1.0, 2.0, 3.0, 2.0)], 6, 6)  # covers centres x 1.5..3.5, y 2.5..3.5
    assert np.argwhere(m).tolist() == [[2, 1], [2, 2], [2, 3], [3, 1], [3, 2], [3, 3]]
    assert box_mask([(2.2, 2.2, 0.1, 0.1)], 5, 5).sum() == 1  # tiny box: its centre pixel
    assert not box_mask([(10, 10, 5, 5)], 5, 5).any()


def test_mask_geometry_matches_image_geometry():
    img = np.zeros((100, 200), np.float32)
    img[40:60, 90:110] = 1.0
    pre = Preprocess(50)
    small = pre.image(img)
    mask = pre.mask(img > 0)
    assert small.shape == mask.shape == (50, 50)
    assert np.array_equal(mask, small > 0.5)


# ---------------------------------------------------------------------- normalisation

def test_imagenet_and_xrv_bounds():
    low, high = IMAGENET.bounds()
    np.testing.assert_allclose(low, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    np.testing.assert_allclose(high, [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225])
    assert XRV.bounds() == ((-1024.0,), (1024.0,))
    assert IMAGENET.channels == 3 and XRV.channels == 1
    assert get_normalization("xrv") is XRV
    with pytest.raises(DataError, match="unknown normalisation"):
        get_normalization("zscore")


def test_apply_invert_and_bound_tensors():
    img = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    x = IMAGENET.apply(img)
    assert x.shape == (3, 2, 2)
    assert torch.allclose(x[1, 0, 1], torch.tensor((0.5 - 0.456) / 0.224))
    torch.testing.assert_close(IMAGENET.invert(x), torch.from_numpy(img))
    xrv = XRV.apply(img)
    assert xrv.shape == (1, 2, 2) and xrv.flatten().tolist() == [-1024, 0, 1024, -512]
    batch = IMAGENET.apply(torch.rand(4, 1, 8, 8))
    low, high = IMAGENET.bound_tensors(batch)
    assert low.shape == high.shape == batch.shape
    assert (batch >= low - 1e-6).all() and (batch <= high + 1e-6).all()
    assert torch.allclose(IMAGENET.apply(torch.zeros(1, 1, 8, 8)), low)
    with pytest.raises(ValueError):
        Normalization((0.5,), (0.0,))


def test_preprocess_from_file(tmp_path):
    arr = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))  # 32×64
    x = Preprocess(16, normalization=XRV)(_save(tmp_path, arr, "a.png"))
    assert x.shape == (1, 16, 16) and x.min() >= -1024 and x.max() <= 1024
