"""Cascading randomisation: rank correlation, SSIM and the sanity check itself."""

import numpy as np
import pytest
import torch

from chexplain.evaluate.baselines import Attributor, TraceCache, gradient_x_input
from chexplain.evaluate.randomisation import (cascading_randomisation, layer_groups, ranks,
                                              spearman, ssim)
from chexplain.models.densenet import chexpert_densenet


def test_ranks_average_ties_and_spearman_against_scipy():
    from scipy.stats import rankdata, spearmanr

    a = torch.tensor([[3.0, 1.0, 1.0, 2.0, 3.0, 0.0]])
    assert ranks(a)[0].tolist() == (rankdata(a[0].numpy()) - 1).tolist()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (3, 50), generator=g).float()
    y = x + torch.randint(0, 3, (3, 50), generator=g).float()
    ours = spearman(x, y).numpy()
    ref = [spearmanr(x[i], y[i]).statistic for i in range(3)]
    assert np.allclose(ours, ref)
    assert spearman(x, x).numpy() == pytest.approx(1.0)
    assert spearman(x, -x).numpy() == pytest.approx(-1.0)


def test_ssim_identity_and_noise():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 32, 32, generator=g)
    assert ssim(a, a).numpy() == pytest.approx(1.0)
    assert ssim(a, 3 * a + 1).numpy() == pytest.approx(1.0)  # min-max scaled first
    assert (ssim(a, torch.rand(2, 32, 32, generator=g)) < 0.2).all()


def test_cascading_randomisation_changes_gradient_maps():
    torch.manual_seed(0)
    model, _ = chexpert_densenet("tiny", 3, None)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = layer_groups(model)
    assert groups[0][0] == "classifier" and groups[-1][0] == "features.conv0"
    res = cascading_randomisation(model, x, [0, 1], lambda m: Attributor(m, "gradient-x-input"))
    assert res["spearman"].shape == (2, len(groups))
    assert res["spearman"][:, -1].mean() < 0.5  # the fully random model explains differently
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_input_only_map_passes_as_unchanged():
    model, _ = chexpert_densenet("tiny", 3, None)
    model.eval()
    x = torch.randn(2, 3, 32, 32)

    def edge(m):  # ignores the model: a sanity check must flag it (similarity stays 1)
        return lambda x, t: x.abs().sum(1)

    res = cascading_randomisation(model, x, [0, 1], edge, max_steps=3)
    assert np.allclose(res["spearman"], 1.0) and np.allclose(res["ssim"], 1.0)
    assert len(res["layers"]) == 3


def test_merge_groups_keeps_order_and_ends_fully_random():
    from chexplain.evaluate.randomisation import merge_groups

    model, _ = chexpert_densenet("tiny", 3, None)
    groups = layer_groups(model)
    merged = merge_groups(groups, 3)
    assert len(merged) == 3
    assert [p for _, ps in merged for p in ps] == [p for _, ps in groups for p in ps]
    assert merged[0][0].startswith("classifier") and merged[-1][0].endswith("features.conv0")


def test_attributor_classes_match_per_class_calls():
    torch.manual_seed(0)
    model, _ = chexpert_densenet("tiny", 4, None)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    for method in ("lrp-epsilon", "epsilon-gamma-box", "gradcam", "gradient-x-input"):
        att = Attributor(model, method, "imagenet")
        both = att(x, classes=[1, 3])
        assert both.shape == (2, 2, 32, 32)
        one = att(x, torch.tensor([3, 3]))
        assert torch.allclose(both[:, 1], one, atol=1e-5, rtol=1e-4), method
    g = gradient_x_input(model, x, torch.tensor([1, 1]))
    assert torch.allclose(Attributor(model, "gradient-x-input")(x, 1), g)


def test_one_cascade_for_many_methods_equals_one_cascade_each():
    from chexplain.evaluate.randomisation import cascading_randomisation_many

    torch.manual_seed(1)
    model, _ = chexpert_densenet("tiny", 3, None)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    makers = {m: (lambda net, m=m: Attributor(net, m)) for m in ("gradient-x-input", "lrp-epsilon", "gradcam")}
    built = {"lrp-epsilon": Attributor(model, "lrp-epsilon")}
    many = cascading_randomisation_many(model, x, [0, 2], makers, n_groups=3, seed=4, originals=built)
    for m, make in makers.items():
        one = cascading_randomisation(model, x, [0, 2], make, n_groups=3, seed=4)
        assert many[m]["layers"] == one["layers"]
        for k in ("spearman", "spearman_abs", "ssim"):
            assert np.allclose(many[m][k], one[k], atol=1e-6, equal_nan=True), (m, k)


def test_shared_traces_give_each_method_its_own_maps_and_follow_in_place_changes():
    """LRP methods sharing ``traces`` trace the model once (siblings of one LRP) and give the
    maps of their own explainers; after an in-place change of the weights the next method
    traces the changed model anew instead of reusing the stale trace."""
    from chexplain.evaluate.randomisation import _reinit

    torch.manual_seed(2)
    model, _ = chexpert_densenet("tiny", 3, None)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    methods = ("lrp-epsilon", "epsilon-plus-flat", "epsilon-gamma-box", "gradcam")
    traces = TraceCache()
    shared = {m: Attributor(model, m, "imagenet", traces=traces) for m in methods}
    maps = {m: a(x, 1) for m, a in shared.items()}
    lrps = [shared[m]._lrp for m in methods[:3]]
    assert all(lrp.graph is lrps[0].graph for lrp in lrps)  # one trace
    for m in methods:
        torch.testing.assert_close(maps[m], Attributor(model, m, "imagenet")(x, 1), rtol=0, atol=0)
    layer = next(mod for mod in model.modules() if isinstance(mod, torch.nn.Conv2d))
    _reinit(layer, torch.Generator().manual_seed(0))
    after = Attributor(model, "epsilon-plus-flat", "imagenet", traces=traces)
    got = after(x, 1)
    assert after._lrp.graph is not lrps[0].graph
    torch.testing.assert_close(got, Attributor(model, "epsilon-plus-flat", "imagenet")(x, 1), rtol=0, atol=0)
    assert not torch.equal(got, maps["epsilon-plus-flat"])
