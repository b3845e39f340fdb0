"""A store proves which run wrote each shard; cut-off shards and a broken store.json are named;
the analysis streams the store and survives degenerate maps; the last line times each phase."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from chexplain.audit.analysis import AnalysisConfig, audit_class
from chexplain.audit.store import ShardPlan, ShardStore
from chexplain.cli import main

from .conftest import audit_args


def _copy(reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    return out


def test_shards_of_another_method_are_not_reused_when_store_json_is_gone(
        reference_audit, audit_phantom, audit_checkpoint, tmp_path, capsys):
    out = _copy(reference_audit, tmp_path)  # an epsilon-plus-flat store
    (out / "store" / "store.json").unlink()
    rc = main(audit_args(audit_phantom, audit_checkpoint, out, "--method", "gradcam"))
    err = capsys.readouterr().err
    assert rc == 2 and "no store.json" in err and "shard" in err
    assert len(err.strip().splitlines()) == 1
    rc = main(audit_args(audit_phantom, audit_checkpoint, out, "--method", "gradcam", "--resume"))
    err = capsys.readouterr().err
    assert rc == 2 and "shard-00000.npz: written by another run" in err
    assert not (out / "store" / "store.json").exists()


def test_shards_of_this_run_are_kept_when_store_json_is_gone(reference_audit, audit_phantom,
                                                             audit_checkpoint, tmp_path):
    out = _copy(reference_audit, tmp_path)
    (out / "store" / "store.json").unlink()
    shard = (out / "store" / "shard-00003.npz").read_bytes()
    assert main(audit_args(audit_phantom, audit_checkpoint, out, "--resume")) == 0
    assert (out / "store" / "shard-00003.npz").read_bytes() == shard
    assert (out / "store" / "store.json").read_bytes() == \
        (reference_audit / "store" / "store.json").read_bytes()


def test_a_shard_of_another_run_is_refused_on_resume(reference_audit, audit_phantom,
                                                      audit_checkpoint, tmp_path, capsys):
    out = _copy(reference_audit, tmp_path)
    shard = out / "store" / "shard-00002.npz"
    other = ShardStore(tmp_path / "other")
    other.attach({"method": "gradcam"}, ShardPlan(40, 8))
    with np.load(shard) as z:
        other.write_shard(2, {k: z[k] for k in z.files if k != "run"})
    shutil.copy(other.shard_path(2), shard)
    rc = main(audit_args(audit_phantom, audit_checkpoint, out, "--resume"))
    err = capsys.readouterr().err
    assert rc == 2 and "shard-00002.npz: written by another run" in err


def test_a_cut_off_shard_is_explained_again_on_resume(reference_audit, audit_phantom,
                                                      audit_checkpoint, tmp_path, capsys):
    out = _copy(reference_audit, tmp_path)
    shard = out / "store" / "shard-00001.npz"
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) // 2])
    with pytest.warns(UserWarning, match="shard-00001.npz: not a complete shard"):
        rc = main(audit_args(audit_phantom, audit_checkpoint, out, "--resume"))
    assert rc == 0
    assert shard.read_bytes() == raw  # the same bytes as the uninterrupted run's


def test_a_corrupt_store_json_is_named(reference_audit, audit_phantom, audit_checkpoint,
                                       tmp_path, capsys):
    out = _copy(reference_audit, tmp_path)
    (out / "store" / "store.json").write_text('{"version": 2, "fingerp')
    rc = main(audit_args(audit_phantom, audit_checkpoint, out, "--resume"))
    err = capsys.readouterr().err
    assert rc == 2 and "store.json: not a readable store description" in err
    assert "Traceback" not in err


def test_the_last_line_times_each_phase(reference_audit, audit_phantom, audit_checkpoint,
                                         tmp_path, capsys):
    out = _copy(reference_audit, tmp_path)
    for p in out.iterdir():
        if p.name != "store":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    args = [a for a in audit_args(audit_phantom, audit_checkpoint, out, "--resume") if a != "--quiet"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.match(r"audit of 40 image\(s\) in (\d+) s \(explain (\d+) s, analysis (\d+) s, "
                 r"report (\d+) s\)", last)
    assert m, last
    total, *phases = map(int, m.groups())
    assert abs(total - sum(phases)) <= 2  # rounding of each phase


def test_reading_one_class_column_equals_the_whole_store(reference_audit):
    store = ShardStore(reference_audit / "store")
    plan = ShardPlan(40, 8)
    store.run = None
    whole = store.read(plan, ["maps64", "maps32", "image64", "finding64"])
    pos = np.array([0, 3, 9, 17, 30, 39])
    for key in ("maps64", "maps32", "finding64"):
        assert np.array_equal(store.column(plan, key, pos, 1), whole[key][pos, 1])
    assert np.array_equal(store.column(plan, "image64", pos), whole["image64"][pos])


class _Constant(torch.nn.Module):
    """A logit that no pixel moves: every counterfactual test finds no effect."""

    def forward(self, x):
        return torch.zeros(len(x), 1)


def _images(pos):
    return torch.zeros(len(pos), 1, 64, 64)


def _class_data(maps64):
    from chexplain.audit.pooling import sum_pool
    import torch

    n = len(maps64)
    return {"logits": np.zeros((n, 1), np.float32), "maps64": maps64[:, None],
            "maps32": sum_pool(torch.from_numpy(maps64), 32).numpy()[:, None],
            "image64": np.full((n, 64, 64), 0.5, np.float32),
            "finding64": np.zeros((n, 1, 64, 64), bool), "has_finding": np.zeros((n, 1), bool)}


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_class_of_zero_or_constant_maps_gets_a_result_with_a_reason(fill):
    n = 20
    data = _class_data(np.full((n, 64, 64), fill, np.float32))
    a = audit_class("Effusion", 0, data, np.ones((n, 1)), pd.DataFrame(index=range(n)),
                    [f"i{i}" for i in range(n)], AnalysisConfig(population="all"),
                    _images, _Constant(), 0)
    assert a.spray.n_clusters == 1 and len(a.clusters) == 1 and a.clusters[0]["size"] == n
    assert "one cluster" in a.note and not a.strategies
    c = a.clusters[0]
    assert c["verdict"] == "not a suspect" and c["why"] == (
        "most members carry no positive relevance for the class" if fill == 0 else
        "no significant effect of removing its distinctive region (effect 0.00 ≤ floor 0.10, p = 1 ≥ 0.01)")


@pytest.mark.parametrize("n", [3, 4, 12])
def test_spray_of_zero_maps_does_not_crash_the_process(n):
    """t-SNE on identical points divided by zero and crashed the interpreter: run it apart."""
    code = ("import numpy as np; from chexplain.audit.spray import spray; "
            f"r = spray(np.zeros(({n}, 32, 32))); print(r.n_clusters, r.embedding_kind, r.note)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.startswith("1 none") and "without positive relevance" in proc.stdout


def test_spray_with_fewer_maps_than_neighbours_and_few_distinct_maps():
    from chexplain.audit.spray import SprayConfig, spray

    maps = np.zeros((9, 32, 32))
    maps[:, 0, 0] = 1.0
    maps[4:, 31, 31] = 1.0  # two distinct maps, repeated
    r = spray(maps, SprayConfig(neighbours=20))
    assert len(r.labels) == 9 and r.n_clusters >= 1 and np.isfinite(r.embedding).all()


def test_the_analysis_never_reads_the_whole_store(reference_audit, audit_phantom, audit_checkpoint,
                                                 tmp_path, monkeypatch):
    """Only positions and logits are read whole (the index); the maps, images and masks are
    read one class's column and one shard at a time. The outputs equal the reference's."""
    out = _copy(reference_audit, tmp_path)
    for name in ("audit.json", "clusters.csv", "members.csv"):
        (out / name).unlink()
    whole, columns = [], []
    real_read, real_column = ShardStore.read, ShardStore.column

    def read(self, plan, keys):
        whole.append(sorted(keys))
        return real_read(self, plan, keys)

    def column(self, plan, key, positions, t=None):
        a = real_column(self, plan, key, positions, t)
        columns.append((key, len(np.unique(np.asarray(positions) // plan.shard_size)), a.shape))
        return a

    monkeypatch.setattr(ShardStore, "read", read)
    monkeypatch.setattr(ShardStore, "column", column)
    assert main(audit_args(audit_phantom, audit_checkpoint, out, "--resume")) == 0
    assert whole == [["logits", "positions"]]
    big = [(k, s, shape) for k, s, shape in columns if k in ("maps64", "image64", "finding64")]
    assert big and all(s == 1 for _, s, _ in big)  # one shard per read
    assert all(len(shape) == 3 for k, _, shape in columns if k in ("maps32", "maps64", "finding64"))
    for name in ("audit.json", "clusters.csv", "members.csv"):
        assert (out / name).read_bytes() == (reference_audit / name).read_bytes(), name


def test_blockwise_analysis_equals_the_whole_population_at_once():
    from chexplain.audit.arrays import MemoryArrays

    rng = np.random.default_rng(3)
    n = 30
    maps = rng.gamma(1.0, 1.0, (n, 64, 64)).astype(np.float32)
    maps[:10, :8, :8] += 5.0  # a corner group
    data = _class_data(maps)
    data["image64"] = rng.uniform(0.2, 1.0, (n, 64, 64)).astype(np.float32)
    data["finding64"][::3, 0, 20:40, 20:40] = True
    data["has_finding"][::3, 0] = True
    config = AnalysisConfig(population="all")
    keys = [f"i{i}" for i in range(n)]
    runs = [audit_class("E", 0, MemoryArrays(data, block), np.ones((n, 1)), pd.DataFrame(index=range(n)),
                        keys, config, _images, _Constant(), 0) for block in (7, 1000)]
    a, b = runs
    assert a.clusters == b.clusters and a.baseline == b.baseline
    assert all(np.array_equal(a.shares[r], b.shares[r], equal_nan=True) for r in b.shares)
    assert a.strategies == b.strategies and all(c["why"] for c in a.clusters)
    assert {k: v.tolist() for k, v in a.cells.items()} == {k: v.tolist() for k, v in b.cells.items()}
    assert sorted(a.thumbs) == sorted(b.thumbs) and all(
        np.array_equal(a.thumbs[i][1], b.thumbs[i][1]) for i in a.thumbs)
