"""Hostile inputs about messages ("WEAK" cases): one line naming the problem, or a warning."""

from __future__ import annotations

import io
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from chexplain import explain
from chexplain.errors import ChexplainError, DataError, InputError, TargetError
from chexplain.lrp.engine import LRP

PYDICOM_BAD_VR = "badVR.dcm"


# checkpoints ------------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_malicious_pickle_is_refused_in_words(tmp_path):
    from chexplain.train.checkpoint import load_checkpoint

    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(DataError, match=r"evil.pt: refusing to load: the file holds Python "
                                        r"objects other than tensors \(weights_only\)$"):
        load_checkpoint(path)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "text", "plain pickle"])
def test_an_unreadable_checkpoint_says_so(tmp_path, kind):
    from chexplain.train.checkpoint import load_checkpoint

    path = tmp_path / "bad.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(4096)}, buf)
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "text":
        path.write_text("hello\n" * 20)
    else:
        path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match=r"bad.pt: not a readable PyTorch checkpoint \(truncated\?\)$"):
        load_checkpoint(path)


@pytest.mark.parametrize("change,pattern", [
    ({"image_size": None}, r"'image_size' is missing"),
    ({"observations": ["A"]}, r"'observations' names 1 outputs, num_classes is 14"),
    ({"arch": "resnet"}, r"'arch' is 'resnet'"),
    ({"normalization": "zscore"}, r"'normalization' is 'zscore'"),
    ({"in_channels": 1}, r"'in_channels' is 1 but normalisation 'imagenet' makes 3"),
])
def test_tampered_checkpoint_metadata_is_named(tmp_path, tiny_checkpoint, change, pattern):
    from chexplain.models.densenet import load_trained
    from chexplain.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    meta = dict(ckpt["meta"])
    for key, value in change.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    path = tmp_path / "tampered.pt"
    torch.save({**ckpt, "meta": meta}, path)
    with pytest.raises(DataError, match=r"tampered.pt: tampered or damaged checkpoint metadata: " + pattern):
        load_trained(path)


# data files -------------------------------------------------------------------------------

def test_pydicoms_bad_vr_file_is_one_line(tmp_path):
    from pydicom.data import get_testdata_file

    from chexplain.data.images import read_image

    path = get_testdata_file(PYDICOM_BAD_VR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"badVR.dcm: DICOM tag NumberOfFrames has the malformed value '1A'"):
            read_image(path)


def test_a_worker_process_error_keeps_its_one_line_message(tmp_path):
    from torch.utils.data import DataLoader, Dataset

    from chexplain.data.images import read_image

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)

    class Files(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.from_numpy(read_image(broken))

    with pytest.raises(DataError) as info:
        next(iter(DataLoader(Files(), num_workers=1)))
    msg = str(info.value)
    assert msg.startswith(f"{broken}: ") and "Traceback" not in msg and "\n" not in msg


def test_twelve_bit_data_in_a_16_bit_png_warns(tmp_path):
    from chexplain.data.images import read_image

    path = tmp_path / "twelve.png"
    Image.fromarray(np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)).save(path)
    with pytest.warns(UserWarning, match=r"twelve.png: a 16-bit image whose values all lie below 4096"):
        img = read_image(path)
    assert img.max() == pytest.approx(4095 / 65535)
    full = tmp_path / "full.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)).save(full)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(full)


@pytest.mark.parametrize("content", [None, b"\x00\xff\xfe binary", "just,some\n1,2\n"])
def test_labels_missing_or_not_a_csv(tmp_path, content):
    from chexplain.data.chexpert import OBSERVATIONS
    from chexplain.jobs.explain import read_labels

    path = tmp_path / "labels.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=r"labels.csv: "):
        read_labels(path, list(OBSERVATIONS))


# the API ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["epsilon-plus-flat", "gradcam"])
def test_nan_weights_are_refused(tiny_model, method):
    with torch.no_grad():
        tiny_model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(InputError, match=r"output holds NaN or infinite values"):
        explain(tiny_model, torch.randn(1, 3, 64, 64), method)


def test_nan_input_to_gradcam_is_refused(tiny_model):
    with pytest.raises(InputError, match=r"the input contains NaN"):
        explain(tiny_model, torch.full((1, 3, 64, 64), float("nan")), "gradcam")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e-3])
def test_bad_epsilon_is_refused(tiny_model, value):
    with pytest.raises(ChexplainError, match=r"epsilon=.* must be a finite number >= 0"):
        LRP(tiny_model, "lrp-epsilon", epsilon=value)


def test_empty_classes_and_3d_inputs_get_the_right_message(tiny_model):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(TargetError, match=r"classes= is empty"):
        explain(tiny_model, x, classes=[])
    with pytest.raises(InputError, match=r"shape \(3, 64, 64\) does not fit layer 'features.conv0'.*x\[None\]"):
        explain(tiny_model, x[0])
    with pytest.raises(InputError, match=r"1 channel\(s\) \(shape \(1, 1, 64, 64\)\)"):
        explain(tiny_model, x[:, :1])


def test_gradcam_on_a_wrong_channel_count_prints_no_traceback(tiny_model, capfd):
    with pytest.raises(InputError, match=r"shape \(1, 1, 64, 64\).*3 channels"):
        explain(tiny_model, torch.randn(1, 1, 64, 64), "gradcam")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_says_so(tiny_checkpoint, phantom_csv, tmp_path, capsys):
    from chexplain.cli import main

    img = next((phantom_csv.parent / "train").rglob("view1_frontal.jpg"))
    for argv in (["explain", str(img)], ["compare", "--csv", str(phantom_csv)]):
        assert main(argv + ["--checkpoint", str(tiny_checkpoint), "--device", "cuda",
                            "--out", str(tmp_path / "o")]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
