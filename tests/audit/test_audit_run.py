"""The audit end to end on a tiny model: outputs, resume after kill -9, refusals, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from chexplain.cli import main

from .conftest import CLASSES, audit_args

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_outputs(reference_audit, audit_phantom):
    out = reference_audit
    assert sorted(p.name for p in (out / "store").iterdir()) == \
        ["index.csv"] + [f"shard-{k:05d}.npz" for k in range(5)] + ["store.json"]
    index = pd.read_csv(out / "store" / "index.csv")
    paths = pd.read_csv(audit_phantom)["Path"].tolist()
    assert len(index) == 80 and index["image"].tolist()[::2] == paths
    assert index["class"].tolist()[:2] == CLASSES.split(",")
    assert np.allclose(index["probability"], 1 / (1 + np.exp(-index["logit"])), atol=1e-5)
    frame = pd.read_csv(audit_phantom)  # metadata carried through: Sex, Age and its bin, AP/PA, Site
    assert index["Site"].tolist()[::2] == frame["Site"].tolist() == ["A"] * 20 + ["B"] * 20
    assert index["Sex"].tolist()[::2] == frame["Sex"].tolist()
    assert index["AP/PA"].tolist()[::2] == frame["AP/PA"].tolist()
    bins = pd.cut(frame["Age"], [0, 40, 60, 75, 200], right=False,
                  labels=["<40", "40-59", "60-74", "≥75"]).astype(str)
    assert index["Age bin"].tolist()[::2] == bins.tolist()
    labels = pd.read_csv(audit_phantom)["Pleural Effusion"].to_numpy()
    assert index["label"].to_numpy()[::2].tolist() == labels.astype(int).tolist()
    with np.load(out / "store" / "shard-00001.npz") as z:
        assert z["positions"].tolist() == list(range(8, 16))
        assert z["maps32"].shape == (8, 2, 32, 32) and z["maps64"].shape == (8, 2, 64, 64)
        assert np.allclose(z["maps32"].sum((2, 3)), z["maps64"].sum((2, 3)), rtol=1e-4, atol=1e-5)
        assert z["image64"].shape == (8, 64, 64) and z["finding64"].shape == (8, 2, 64, 64)
        pe = labels[8:16] == 1  # the phantom's effusion masks are known, the marker never read
        assert np.array_equal(z["has_finding"][:, 0], pe) and not z["has_finding"][:, 1].any() or \
            np.array_equal(z["has_finding"][:, 1], z["finding64"][:, 1].any((1, 2)))
    audit = json.loads((out / "audit.json").read_text())
    assert list(audit["classes"]) == CLASSES.split(",")
    assert json.loads((out / "store" / "store.json").read_text())["fingerprint"]["threads"] == \
        torch.get_num_threads()
    for name, rec in audit["classes"].items():
        if rec["n_clusters"] > 1:  # cluster × site: a chi-square test on the 40 images
            site = rec["association"]["Site"]
            assert site["levels"] == ["A", "B"] and sum(map(sum, site["counts"].values())) == 40
        members = [m for c in rec["clusters"] for m in c["members"]]
        assert sorted(members) == sorted(paths)  # population "all": every image once
        assert len(rec["eigenvalues"]) >= rec["n_clusters"] + 1 and rec["eigenvalues"][0] < 1e-6
        for c in rec["clusters"]:
            assert isinstance(c["flagged"], bool) and c["flagged"] <= c["suspect"]
            share = c["regions"]["shortcut area"]
            assert (share is None and c["evidence"] < 1) or 0 <= share <= 1
            assert c["sentence"].startswith(f"cluster {c['id']}") and 0 <= c["evidence"] <= 1
            assert c["verdict"] in ("flagged", "distinct strategy", "not a suspect") and c["why"]
            assert c["suspect"] == (c["verdict"] != "not a suspect") and c["why"] in c["sentence"] \
                or c["strategy"] is not None
            r = c["distinctive_region"]
            assert r is None or (r["words"].endswith(" px at 64 px") and len(r["bbox"]) == 4)
            if c["strategy"] is not None:
                st = rec["strategies"][c["strategy"]]
                assert c["id"] in st["clusters"] and st["flagged"] == c["flagged"]
    html = (out / "audit.html").read_text()
    strategies = sum(len(r["strategies"]) for r in audit["classes"].values())
    assert 4 + strategies <= html.count("data:image/png;base64,") <= 6 + strategies  # an embedding
    assert "<script" not in html  # panel whose colour variable is constant is left out
    clusters = pd.read_csv(out / "clusters.csv")
    assert len(clusters) == sum(len(r["clusters"]) for r in audit["classes"].values())
    assert len(pd.read_csv(out / "members.csv")) == 80


#: the audit program, killed (SIGKILL) right after its second shard is on disk: the same moment
#: in every run, whatever the machine's load
KILLED_AFTER_SHARD_1 = (
    "import functools, os, signal, sys\n"
    "import chexplain.audit as audit\n"
    "from chexplain.cli import main\n"
    "def stop(k):\n"
    "    if k >= 1:\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "audit.run_audit = functools.partial(audit.run_audit, on_shard=stop)\n"
    "sys.exit(main(sys.argv[1:]))\n")


def test_kill_then_resume_is_the_same_run(reference_audit, audit_phantom, audit_checkpoint, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", KILLED_AFTER_SHARD_1, *audit_args(audit_phantom, audit_checkpoint, out)]
    same_threads = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))  # same floats
    proc = subprocess.run(cmd, env=same_threads, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    done = sorted(p.name for p in (out / "store").glob("shard-*.npz"))
    assert 2 <= len(done) < 5 and not (out / "audit.json").exists()
    assert main(audit_args(audit_phantom, audit_checkpoint, out)) == 2  # refused without --resume
    assert main(audit_args(audit_phantom, audit_checkpoint, out, "--resume")) == 0
    ref, got = _files(reference_audit), _files(out)
    got = {k: v for k, v in got.items() if not k.split("/")[-1].startswith(".")}
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert got[name] == ref[name], name


def test_resume_with_other_options_is_refused(reference_audit, audit_phantom, audit_checkpoint, capsys):
    args = audit_args(audit_phantom, audit_checkpoint, reference_audit, "--resume", "--method",
                      "lrp-epsilon")
    assert main(args) == 2
    assert "--resume: method differs" in capsys.readouterr().err
    threads = torch.get_num_threads()
    try:  # another thread count sums the maps in another order: not the same run
        torch.set_num_threads(threads + 1)
        assert main(audit_args(audit_phantom, audit_checkpoint, reference_audit, "--resume")) == 2
        assert f"--resume: threads differs from the stored run ({threads} vs {threads + 1})" in \
            capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    assert main(audit_args(audit_phantom, audit_checkpoint, reference_audit.parent / "x",
                           "--classes", "Edema,Nonsense")) == 2
    assert "unknown class 'Nonsense'" in capsys.readouterr().err


@pytest.mark.skipif(not torch.distributed.is_available() or
                    not torch.distributed.is_gloo_available(), reason="no gloo backend")
def test_torchrun_two_ranks_same_index(reference_audit, audit_phantom, audit_checkpoint, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "chexplain.cli", *audit_args(audit_phantom, audit_checkpoint, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("audit of 40 image(s)") == 1  # rank 0 alone reports
    a = pd.read_csv(reference_audit / "store" / "index.csv").sort_values(["image", "class"])
    b = pd.read_csv(out / "store" / "index.csv").sort_values(["image", "class"])
    assert a.drop(columns="logit").equals(b.drop(columns="logit")) or \
        a.drop(columns=["logit", "probability"]).reset_index(drop=True).equals(
            b.drop(columns=["logit", "probability"]).reset_index(drop=True))
    assert np.allclose(a["logit"], b["logit"], rtol=1e-5, atol=1e-6)
    for k in range(5):  # each rank wrote its shards (0, 2, 4 and 1, 3): the same maps
        with np.load(reference_audit / "store" / f"shard-{k:05d}.npz") as x, \
                np.load(out / "store" / f"shard-{k:05d}.npz") as y:
            assert np.allclose(x["maps32"], y["maps32"], rtol=1e-4, atol=1e-6)
