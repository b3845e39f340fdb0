"""Hostile inputs end to end through the CLI: one line per case, then a count.

    PYTHONPATH=src python benchmarks/hostile_inputs.py [--work DIR] [--only SUBSTRING] [--more]

Builds tiny data (a 64-px phantom set, a tiny DenseNet trained one epoch by
``chexplain chexpert train --arch tiny``) and broken variants of every input, then runs each
case through :func:`chexplain.cli.main` in this process (so that a full disk or a Ctrl-C can
be simulated by patching one write). Each case states what a good outcome is:

* ``error``: exit status 2 and a one-line ``chexplain: error:`` naming the problem (all the
  case's keywords in it). GOOD when so; WEAK when it fails in one line without naming the
  problem; BAD on a traceback, or when it succeeds (a silently wrong result).
* ``ok``: exit status 0 and the case's check of the outputs holds (with ``warn``: the
  warning's keywords in stderr, else WEAK); anything else is BAD.

Prints ``VERDICT rc=N case: first line of the message`` per case and a final
``GOOD g / WEAK w / BAD b of n cases`` line; exits 1 when any case is BAD.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import pickle
import shutil
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str = "error"  # error | ok
    words: tuple[str, ...] = ()  # error: in the message; ok: in stderr (a warning)
    check: Callable[[], bool] | None = None  # ok: the outputs are right
    patch: Callable[[contextlib.ExitStack], None] | None = None  # a simulated fault


@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    crashed: bool = False
    notes: list[str] = field(default_factory=list)


def run(case: Case) -> Outcome:
    from chexplain.cli import main

    out, err = io.StringIO(), io.StringIO()
    crashed = False
    with contextlib.ExitStack() as stack:
        if case.patch:
            case.patch(stack)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("always")
            try:
                rc = main(case.argv + (["--quiet"] if _quiet(case.argv) else []))
            except SystemExit as exc:  # argparse
                rc = int(exc.code or 0)
            except BaseException:  # noqa: BLE001 - a traceback is what we look for
                traceback.print_exc(file=err)
                rc, crashed = 1, True
    return Outcome(rc, out.getvalue(), err.getvalue(), crashed)


def _quiet(argv: list[str]) -> bool:
    return argv[:1] in (["explain"], ["compare"], ["demo"], ["audit"]) or argv[:2] in (
        ["phantom", "generate"], ["mnist", "train"], ["mnist", "reproduce"])


def judge(case: Case, o: Outcome) -> tuple[str, str]:
    lines = [ln for ln in o.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error:" in ln or ln.startswith("chexplain: interrupted")]
    first = errors[-1] if errors else (lines[-1] if lines else (o.out.strip().splitlines() or [""])[-1])
    if o.crashed or "Traceback (most recent call last)" in o.err:
        return "BAD", "traceback: " + (lines[-1] if lines else "")
    if case.expect == "error":
        if o.rc == 0:
            return "BAD", "accepted: " + first
        msg = " ".join(errors)
        if case.check is not None and not case.check():
            return "BAD", "outputs wrong: " + first
        if o.rc in (2, 130) and all(w.lower() in msg.lower() for w in case.words):
            return "GOOD", first
        return "WEAK", first
    if o.rc != 0:
        return "BAD", first
    if case.check is not None and not case.check():
        return "BAD", "outputs wrong: " + first
    if case.words and not all(w.lower() in o.err.lower() for w in case.words):
        return "WEAK", "no warning: " + first
    warned = [ln for ln in lines if "warning" in ln]
    return "GOOD", warned[0] if warned else first


# --------------------------------------------------------------------------- the data

def build(work: Path) -> dict[str, Path]:
    """Tiny data and every broken variant the cases use."""
    from chexplain.cli import main
    from chexplain.data.phantom import write_phantom

    from pydicom.data import get_testdata_file

    torch.set_num_threads(2)
    p: dict[str, Path] = {"work": work}
    p["csv"] = write_phantom(work / "phantom", 16, 64, seed=1, progress=False)
    p["valid"] = write_phantom(work / "val" / "phantom", 8, 64, seed=2, progress=False)
    p["run"] = work / "run"
    rc = main(["chexpert", "train", "--csv", str(p["csv"]), "--arch", "tiny", "--image-size", "64",
               "--epochs", "1", "--batch-size", "8", "--weights", "none", "--workers", "0",
               "--device", "cpu", "--out", str(p["run"]), "--no-progress"])
    assert rc == 0, "the tiny training run failed"
    p["ckpt"] = p["run"] / "best.pt"
    imgs = sorted((p["csv"].parent / "train").rglob("view1_frontal.jpg"))
    p["img"], p["img2"] = imgs[0], imgs[1]
    d = work / "bad"
    d.mkdir()
    lines = p["csv"].read_text().splitlines()
    _w(d / "short.csv", "\n".join(lines[:3] + [",".join(lines[3].split(",")[:-3])] + lines[4:]) + "\n")
    _w(d / "cut.csv", "\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    _w(d / "long.csv", "\n".join(lines[:3] + [lines[3] + ",1.0,1.0"] + lines[4:]) + "\n")
    _w(d / "nocol.csv", "\n".join(",".join(ln.split(",")[:-1]) for ln in lines) + "\n")
    _w(d / "badlabel.csv", "\n".join(lines[:2] + [lines[2].rsplit(",", 1)[0] + ",2.0"] + lines[3:]) + "\n")
    _w(d / "empty.csv", "")
    (d / "binary.csv").write_bytes(bytes(range(256)) * 4)
    edited = lines[:]
    edited[1] = edited[1].rsplit(",", 1)[0] + ("," + ("0.0" if edited[1].endswith("1.0") else "1.0"))
    _w(work / "phantom" / "edited.csv", "\n".join(edited) + "\n")
    p["edited"] = work / "phantom" / "edited.csv"
    shutil.copytree(p["csv"].parent, work / "copy" / "phantom")
    p["copyroot"] = work / "copy"
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    folder = work / "folder"
    folder.mkdir()
    for i, src in enumerate(imgs[:3]):
        shutil.copy(src, folder / f"img{i}.jpg")
    shutil.copy(d / "corrupt.jpg", folder / "img1.jpg")
    p["folder"] = folder
    (work / "emptydir").mkdir()
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(d / "colour.png")
    rgba = np.full((64, 64, 4), 120, np.uint8)
    rgba[..., 3] = 10
    Image.fromarray(rgba).save(d / "transparent.png")
    Image.fromarray(np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)).save(d / "twelve.png")
    Image.fromarray(np.full((1, 1), 100, np.uint8)).save(d / "dot.png")
    Image.fromarray(np.full((2, 4000), 100, np.uint8)).save(d / "strip.png")
    Image.fromarray(np.full((60, 600), 100, np.uint8)).save(d / "strip2.png")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))
    from conftest import write_dicom  # the tests' 4×4 DICOM writer

    write_dicom(d / "slope.dcm", RescaleSlope="NaN")
    write_dicom(d / "icpt.dcm", RescaleIntercept="inf")
    write_dicom(d / "window.dcm", WindowCenter="nan", WindowWidth="100")
    shutil.copy(get_testdata_file("badVR.dcm"), d / "badVR.dcm")
    write_dicom(d / "nopix.dcm", PixelData=b"")
    _checkpoints(d, p["ckpt"])
    from _hostile_more import more_inputs

    more_inputs(d, p, lines)
    p["bad"] = d
    (work / "afile").write_text("a file, not a folder")
    p["afile"] = work / "afile"
    return p


def _w(path: Path, text: str) -> None:
    path.write_text(text)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo PWNED",))


def _checkpoints(d: Path, good: Path) -> None:
    torch.save({"model": _Evil()}, d / "evil.pt")
    raw = good.read_bytes()
    (d / "trunc.pt").write_bytes(raw[: len(raw) // 3])
    (d / "empty.pt").write_bytes(b"")
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "plain.pt").write_bytes(pickle.dumps({"model": {}}))
    ck = torch.load(good, weights_only=True)
    for name, change in (("nosize.pt", {"image_size": None}), ("obs.pt", {"observations": ["A"]})):
        meta = {k: v for k, v in ck["meta"].items() if not (k in change and change[k] is None)}
        meta.update({k: v for k, v in change.items() if v is not None})
        torch.save({**ck, "meta": meta}, d / name)
    (d / "dir.pt").mkdir()


# --------------------------------------------------------------------------- the cases

def cases(p: dict[str, Path]) -> list[Case]:
    w, b, ck, csv, img = p["work"], p["bad"], str(p["ckpt"]), str(p["csv"]), str(p["img"])
    o = lambda name: str(w / "out" / name)  # noqa: E731
    exp = lambda *a, out="x": ["explain", *map(str, a), "--checkpoint", ck, "--out", o(out),  # noqa: E731
                               "--methods", "gradcam"]
    cmpr = lambda *a, out="c": ["compare", "--checkpoint", ck, "--csv", csv, "--methods", "random",  # noqa: E731
                                "--randomisation-items", "0", "--bootstrap", "10", "--out", o(out), *a]
    train = lambda *a, out="t": ["chexpert", "train", "--csv", csv, "--arch", "tiny", "--image-size", "64",  # noqa: E731
                                 "--epochs", "1", "--batch-size", "8", "--weights", "none", "--workers", "0",
                                 "--device", "cpu", "--no-progress", "--out", o(out), *a]
    af = str(p["afile"])
    ev = lambda c, out="e": ["chexpert", "evaluate", "--checkpoint", c, "--csv", csv, "--device", "cpu",  # noqa: E731
                             "--no-progress", "--out", o(out)]
    gen = lambda out, *a: ["phantom", "generate", "--n", "3", "--size", "64", "--out", out, *a]  # noqa: E731
    C = Case
    out_dir = [
        C("explain --out a file", exp(img)[:-3] + [af], words=("is a file",)),
        C("compare --out a file", cmpr()[:-1] + [af], words=("is a file",)),
        C("evaluate --out a file", ev(ck)[:-1] + [af], words=("is a file",)),
        C("chexpert train --out a file", train()[:-1] + [af], words=("is a file",)),
        C("mnist train --out a file", ["mnist", "train", "--experiment", "1", "--out", af], words=("is a file",)),
        C("mnist reproduce --out a file", ["mnist", "reproduce", "--quick", "--out", af], words=("is a file",)),
        C("phantom generate --out a file", gen(af), words=("is a file",)),
        C("demo --out a file", ["demo", "--quick", "--out", af], words=("is a file",)),
        C("explain --out under a file", exp(img)[:-3] + [af + "/sub"], words=("under the file",)),
        C("compare --out under a file", cmpr()[:-1] + [af + "/sub"], words=("under the file",)),
        C("mnist train --out under a file", ["mnist", "train", "--experiment", "1", "--out", af + "/x"],
          words=("under the file",)),
        C("explain --out unwritable (/proc)", exp(img)[:-3] + ["/proc/chexplain-out"], words=("--out",)),
        C("stats --json a folder", ["chexpert", "stats", csv, "--json", str(w)], words=("is a folder",)),
    ]
    run_dir = str(p["run"])
    resume = [
        C("resume, same data", train(out="")[:-1] + [run_dir, "--resume"], "ok"),
        C("resume with another --csv", train()[:3] + [str(p["edited"])] + train()[4:-1] + [run_dir, "--resume"],
          words=("resume refused", "--csv")),
        C("resume adding --valid", train()[:-1] + [run_dir, "--resume", "--valid", str(p["valid"])],
          words=("resume refused", "--valid")),
        C("resume with another --data", ["chexpert", "train", "--csv", csv, "--data",
                                         str(p["copyroot"]), "--arch", "tiny", "--image-size", "64", "--epochs",
                                         "1", "--batch-size", "8", "--weights", "none", "--workers", "0",
                                         "--device", "cpu", "--no-progress", "--out", run_dir, "--resume"],
          words=("resume refused", "--data")),
        C("resume with another --lr", train()[:-1] + [run_dir, "--resume", "--lr", "0.5"], words=("lr",)),
        C("train into a used --out", train()[:-1] + [run_dir], words=("already holds a run",)),
        C("train --image-size 8", train("--image-size", "8"), words=("image-size",)),
        C("train --epochs 0", train("--epochs", "0"), words=("--epochs",)),
    ]
    csvs = [C(f"stats: {n}", ["chexpert", "stats", str(b / f)], words=words) for n, f, words in (
        ("short row", "short.csv", ("line 4", "field")), ("row cut off", "cut.csv", ("line 6", "field")),
        ("long row", "long.csv", ("line 4", "fields")), ("missing column", "nocol.csv", ("missing column",)),
        ("label 2.0", "badlabel.csv", ("line 3", "unknown value")), ("empty file", "empty.csv", ("empty",)),
        ("binary file", "binary.csv", ("binary.csv",)), ("no such file", "nope.csv", ("not found",)))]
    csvs.append(C("train on a short-row CSV", train()[:3] + [str(b / "short.csv")] + train()[4:],
                  words=("line 4",)))
    images = [
        C("explain a corrupt JPEG", exp(b / "corrupt.jpg"), words=("corrupt.jpg",)),
        C("folder with one bad image", exp(p["folder"], out="f1"), words=("img1.jpg", "--skip-bad")),
        C("folder with one bad image --skip-bad", exp(p["folder"], "--skip-bad", out="f2"), "ok",
          check=lambda: len((w / "out" / "f2" / "predictions.csv").read_text().splitlines()) == 3),
        C("explain an empty folder", exp(w / "emptydir"), words=("no PNG",)),
        C("explain a missing file", exp(w / "nope.png"), words=("no such",)),
        C("explain a colour image", exp(b / "colour.png"), words=("colour",)),
        C("explain a transparent PNG", exp(b / "transparent.png"), words=("transparent",)),
        C("explain 12-bit data in 16-bit PNG", exp(b / "twelve.png", out="tw"), "ok", words=("12-bit",)),
        C("explain a 1x1 image", exp(b / "dot.png", out="dot"), "ok", words=("below 32 px",)),
        C("explain a 2x4000 image", exp(b / "strip.png", out="strip"), "ok", words=("aspect 2000.0:1",)),
        C("explain a 60x600 image", exp(b / "strip2.png", out="strip2"), "ok", words=("aspect 10.0:1",)),
        C("DICOM RescaleSlope NaN", exp(b / "slope.dcm"), words=("slope.dcm", "RescaleSlope")),
        C("DICOM RescaleIntercept inf", exp(b / "icpt.dcm"), words=("icpt.dcm", "RescaleIntercept")),
        C("DICOM WindowCenter NaN", exp(b / "window.dcm"), words=("window.dcm", "WindowCenter")),
        C("DICOM bad VR (pydicom badVR.dcm)", exp(b / "badVR.dcm"), words=("badVR.dcm", "malformed")),
        C("DICOM without pixel data", exp(b / "nopix.dcm"), words=("nopix.dcm", "no pixel data")),
    ]
    ckpts = [C(f"checkpoint: {n}", exp(img)[:3] + [str(b / f)] + exp(img)[4:], words=words) for n, f, words in (
        ("malicious pickle", "evil.pt", ("refusing to load", "weights_only")),
        ("truncated", "trunc.pt", ("not a readable PyTorch checkpoint",)),
        ("empty", "empty.pt", ("not a readable PyTorch checkpoint",)),
        ("random bytes", "random.pt", ("not a readable PyTorch checkpoint",)),
        ("plain pickle", "plain.pt", ("not a readable PyTorch checkpoint",)),
        ("no image_size", "nosize.pt", ("image_size",)), ("observations cut", "obs.pt", ("observations",)),
        ("missing", "missing.pt", ("no such checkpoint",)), ("a folder", "dir.pt", ("is a folder",)))]
    ckpts.append(C("evaluate a malicious pickle", ev(str(b / "evil.pt")), words=("refusing to load",)))
    opts = [
        C("--threshold 5", exp(img, "--threshold", "5", "--labels", csv), words=("--threshold",)),
        C("--display-size 0", exp(img, "--display-size", "0"), words=("--display-size",)),
        C("--display-size -1", exp(img, "--display-size", "-1"), words=("--display-size",)),
        C('--classes ","', exp(img, "--classes", ","), words=("--classes",)),
        C("--classes unknown", exp(img, "--classes", "Kidney"), words=("Kidney",)),
        C("--methods unknown", exp(img)[:-1] + ["lrp-nope"], words=("lrp-nope",)),
        C("--figure-method not in --methods", exp(img, "--figure-method", "lrp-epsilon", "--labels", csv),
          words=("--figure-method",)),
        C("--labels missing", exp(img, "--labels", str(w / "nolabels.csv")), words=("nolabels.csv",)),
        C("--labels binary", exp(img, "--labels", str(b / "binary.csv")), words=("binary.csv",)),
        C("compare --patch 100", cmpr("--patch", "100"), words=("--patch",)),
        C("compare --max-items 0", cmpr("--max-items", "0"), words=("--max-items",)),
        C('compare --classes ","', cmpr("--classes", ","), words=("--classes",)),
        C("compare --classes unknown", cmpr("--classes", "Kidney"), words=("Kidney",)),
        C("mnist figures --cmap unknown", ["mnist", "figures", "--checkpoint", ck, "--cmap", "nosuch",
                                           "--out", o("m")], words=("nosuch",)),
        C("mnist reproduce --epsilon nan", ["mnist", "reproduce", "--quick", "--epsilon", "nan",
                                            "--out", o("m2")], words=("--epsilon",)),
        C("phantom --n 0", gen(o("p0"), "--n", "0"), words=("at least 1",)),
    ]
    if not torch.cuda.is_available():
        opts += [C("explain --device cuda (none here)", exp(img, "--device", "cuda"), words=("CUDA is not available",)),
                 C("compare --device cuda (none here)", cmpr("--device", "cuda"), words=("CUDA is not available",))]
    stale = w / "out" / "st" / ".predictions.abcd1234.tmp.csv"
    inside = p["folder"].parent / "inside"
    if not inside.exists():
        shutil.copytree(p["folder"], inside)
        (inside / "img1.jpg").unlink()
    outputs = [
        C("explain, good", exp(img, out="good"), "ok",
          check=lambda: (w / "out" / "good" / "explain.json").is_file()),
        C("explain --out inside the input, run 1", exp(inside)[:-3] + [str(inside / "out"), "--methods", "gradcam"], "ok"),
        C("explain --out inside the input, run 2", exp(inside)[:-3] + [str(inside / "out"), "--methods", "gradcam"], "ok",
          check=lambda: len((inside / "out" / "predictions.csv").read_text().splitlines()) == 3),
        C("stale temporaries of a killed run", exp(img, out="st"), "ok", check=lambda: not stale.exists(),
          patch=lambda s: (stale.parent.mkdir(parents=True, exist_ok=True), stale.write_text("partial"))),
        C("phantom generate, fresh", gen(o("ph")), "ok"),
        C("phantom generate into an old phantom", gen(o("ph"), "--seed", "4"), words=("not empty", "--overwrite")),
        C("phantom generate --overwrite", gen(o("ph"), "--seed", "4", "--overwrite"), "ok",
          check=lambda: len(list((w / "out" / "ph").rglob("*.jpg"))) == 3),
        C("compare, good", cmpr(out="cg"), "ok", check=lambda: (w / "out" / "cg" / "compare.json").is_file()),
        C("evaluate, good", ev(ck, "eg"), "ok", check=lambda: (w / "out" / "eg" / "auroc.json").is_file()),
        C("explain, disk full at explain.json", exp(img, out="full"), words=("no space left", "explain.json"),
          patch=_disk_full("explain.json")),
        C("compare, Ctrl-C while writing", cmpr(out="cg"), words=("interrupted",), patch=_ctrl_c_compare,
          check=lambda: (w / "out" / "cg" / "compare.json").is_file()
          and not list((w / "out" / "cg").glob(".results.*"))),
    ]
    from _hostile_more import more_cases

    return out_dir + resume + csvs + images + ckpts + opts + outputs + more_cases(p)


def _disk_full(name: str):
    def patch(stack: contextlib.ExitStack) -> None:
        import pathlib
        from unittest import mock

        real = pathlib.Path.write_text

        def write_text(self, *a, **k):
            if name.split(".")[0] in self.name:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, *a, **k)

        stack.enter_context(mock.patch.object(pathlib.Path, "write_text", write_text))
    return patch


def _ctrl_c_compare(stack: contextlib.ExitStack) -> None:
    from unittest import mock

    import chexplain.evaluate.compare as cmp

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    stack.enter_context(mock.patch.object(cmp, "_write_csv", interrupted))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--only", help="run the cases whose name holds this")
    ap.add_argument("--more", action="store_true", help="run the cases of _hostile_more only")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="chexplain-hostile-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    p = build(work)
    counts = {"GOOD": 0, "WEAK": 0, "BAD": 0}
    from _hostile_more import more_cases

    pool = more_cases(p) if args.more else cases(p)
    selected = [c for c in pool if not args.only or args.only in c.name]
    for case in selected:
        outcome = run(case)
        verdict, line = judge(case, outcome)
        counts[verdict] += 1
        print(f"{verdict:<4} rc={outcome.rc:<3} {case.name}: {line[:170]}", flush=True)
    print(f"GOOD {counts['GOOD']} / WEAK {counts['WEAK']} / BAD {counts['BAD']} of {len(selected)} cases")
    return 1 if counts["BAD"] else 0


if __name__ == "__main__":
    sys.exit(main())
