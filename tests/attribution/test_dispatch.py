import pytest
import torch

import chexplain
from chexplain.errors import ChexplainError
from chexplain.evaluate.baselines import Attributor, all_methods
from chexplain.jobs.explain import parse_methods

NEW = ("integrated-gradients", "smoothgrad", "occlusion", "layercam", "scorecam")


def test_the_new_names_reach_every_entry_point():
    for name in NEW:
        assert name in chexplain.methods()
        assert name in all_methods()
    assert parse_methods("gradcam, smoothgrad,occlusion") == ["gradcam", "smoothgrad", "occlusion"]


@pytest.mark.parametrize("method, params", [
    ("integrated-gradients", {"steps": 8}), ("smoothgrad", {"n": 3}),
    ("occlusion", {"window": 4, "stride": 4}), ("layercam", {}), ("scorecam", {}),
])
def test_attributor_gives_2d_maps_equal_to_explain(cnn, images, method, params):
    att = Attributor(cnn, method, **params)
    maps = att(images, torch.tensor([0, 1, 2]))
    several = att(images, classes=[3, 1])
    direct = chexplain.explain(cnn, images, method=method, target=[0, 1, 2], **params)
    if direct.ndim == images.ndim:  # input-space maps are summed over the colour channels
        direct = direct.sum(1)
    assert maps.shape == (3, 12, 12) and several.shape == (3, 2, 12, 12)
    assert torch.allclose(maps, direct, rtol=1e-5, atol=1e-7)
    assert torch.allclose(several[:, 1], att(images, 1), rtol=1e-5, atol=1e-7)


def test_attributor_refuses_bad_parameters_when_made(cnn):
    with pytest.raises(ChexplainError, match="steps"):
        Attributor(cnn, "integrated-gradients", steps=0)
    with pytest.raises(ChexplainError, match="variant"):
        Attributor(cnn, "smoothgrad", variant="median")
    with pytest.raises(ChexplainError, match="weights"):
        Attributor(cnn, "scorecam", weights="x")


def test_the_callers_model_is_left_as_it_was(cnn, images):
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), *cnn)  # in training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = {"smoothgrad": {"n": 2}, "occlusion": {"window": 4, "stride": 2}}
    for method in ("integrated-gradients", "smoothgrad", "occlusion", "scorecam"):
        with pytest.warns(UserWarning, match="training mode"):
            chexplain.explain(model, images, method=method, **small.get(method, {}))
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_compare_runs_the_new_methods(tmp_path):
    from chexplain.evaluate.compare import CompareConfig, compare
    from chexplain.models.densenet import chexpert_densenet

    class Two(torch.utils.data.Dataset):
        """2 images with one masked finding each."""

        def __len__(self):
            return 2

        def __getitem__(self, i):
            x = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i))
            masks = torch.zeros(3, 32, 32, dtype=torch.bool)
            masks[1 + i, 8:20, 8:20] = True
            target = torch.tensor([0.0, 1.0 - i, float(i)])
            return {"image": x, "target": target, "finding_masks": masks, "path": f"img{i}.png"}

    names = ["No Finding", "Cardiomegaly", "Pleural Effusion"]
    torch.manual_seed(0)
    model, _ = chexpert_densenet("tiny", 3, None)
    cfg = CompareConfig(methods=NEW, classes=["Cardiomegaly", "Pleural Effusion"], patch=8, steps=4,
                        randomisation_items=1, randomisation_steps=1, bootstrap=20,
                        method_params={"integrated-gradients": {"steps": 4}, "smoothgrad": {"n": 2},
                                       "occlusion": {"window": 8, "stride": 8},
                                       "scorecam": {"batch_size": 64}})
    res = compare(model.eval(), Two(), tmp_path, names, "imagenet", cfg, progress=False)
    for m in NEW:
        assert res["summary"][m]["aopc_morf"]["n"] == 2
        assert len(res["randomisation"][m]["ssim"]) == 1
