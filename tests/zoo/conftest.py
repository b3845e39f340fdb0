"""Small random models of every spec form, saved to files (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small CNN whose forward returns (logits, features), as many research models do."""

    def __init__(self, outputs=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, outputs)

    def forward(self, x):
        f = self.features(x)
        return self.fc(torch.flatten(self.pool(f), 1)), f


class DictNet(Net):
    def forward(self, x):
        logits, f = super().forward(x)
        return {"features": f, "logits": logits}


class Out:
    def __init__(self, logits, hidden):
        self.logits, self.hidden = logits, hidden


class ObjectNet(Net):
    def forward(self, x):
        logits, f = super().forward(x)
        return Out(logits, f)


def tuple_model():
    torch.manual_seed(0)
    return {"model": Net(), "names": ["Cardiomegaly", "Edema", "Pleural Effusion"],
            "image_size": 32, "normalization": "0.5/0.25"}


def dict_model():
    torch.manual_seed(0)
    return {"model": DictNet(), "names": ["Cardiomegaly", "Edema", "Pleural Effusion"],
            "image_size": 32, "normalization": "0.5/0.25"}


def object_model():
    torch.manual_seed(0)
    return {"model": ObjectNet(), "names": ["Cardiomegaly", "Edema", "Pleural Effusion"],
            "image_size": 32, "normalization": "0.5/0.25"}


def plain_model():
    torch.manual_seed(0)
    return Net(14)


def duplicate_names():
    return {"model": Net(), "names": ["Edema", "edema", "Mass"]}


def not_a_module():
    return 42
'''


@pytest.fixture(scope="session")
def zoo_phantom(tmp_path_factory) -> Path:
    """12 phantom radiographs at 64 px: ``.../phantom/train.csv``."""
    from chexplain.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("zoo") / "phantom", 12, size=64, seed=3,
                         progress=False)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """State dicts of random models: xrv DenseNet and ResNet, timm, torchvision; a factory file."""
    import timm
    import torchvision
    import torchxrayvision as xrv

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    files = {}
    files["xrv_densenet"] = folder / "xrv_densenet.pt"
    torch.save(xrv.models.DenseNet(weights=None, num_classes=18).state_dict(), files["xrv_densenet"])
    resnet = torchvision.models.resnet50(num_classes=18, weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    files["xrv_resnet"] = folder / "xrv_resnet.pt"
    torch.save(resnet.state_dict(), files["xrv_resnet"])
    files["timm"] = folder / "timm.pt"
    torch.save({"state_dict": timm.create_model("test_convnext", num_classes=14).state_dict(),
                "epoch": 3}, files["timm"])  # timm's training checkpoint layout
    files["torchvision"] = folder / "torchvision.pt"
    torch.save({"model": torchvision.models.resnet18(num_classes=14).state_dict()},
               files["torchvision"])  # torchvision's reference-script layout
    files["factory"] = folder / "factory_models.py"
    files["factory"].write_text(FACTORY)
    return files


@pytest.fixture(scope="session")
def specs(models) -> dict[str, list[str]]:
    """Command-line model options per spec form (small input sizes)."""
    return {
        "xrv-densenet": ["--model", "xrv:densenet121-res224-all", "--weights",
                         str(models["xrv_densenet"]), "--image-size", "64"],
        "xrv-resnet": ["--model", "xrv:resnet50-res512-all", "--weights",
                       str(models["xrv_resnet"]), "--image-size", "64"],
        "timm": ["--model", "timm:test_convnext", "--weights", str(models["timm"]),
                 "--image-size", "64"],
        "torchvision": ["--model", "torchvision:resnet18", "--weights", str(models["torchvision"]),
                        "--image-size", "64"],
        "factory-tuple": ["--model", f"{models['factory']}:tuple_model"],
    }
