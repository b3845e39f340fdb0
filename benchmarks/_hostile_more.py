"""More cases of :mod:`hostile_inputs`: animated and rotated images, compressed DICOM, CSVs in
another dialect, repeated rows, paths leaving the data folder, checkpoints without a gradient
or a CSV column."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hostile_inputs import Case, _w


def more_inputs(d: Path, p: dict[str, Path], lines: list[str]) -> None:
    """More inputs: animated and rotated images, compressed DICOM, CSVs in
    another dialect, with repeated rows or paths leaving the data folder, and checkpoints
    whose class has no gradient or no CSV column."""
    from pydicom.data import get_testdata_file

    frames = [Image.fromarray(np.full((64, 64), v, np.uint8)) for v in (40, 120, 200)]
    frames[0].save(d / "animated.png", save_all=True, append_images=frames[1:])
    im = Image.open(p["img"])
    exif = im.getexif()
    exif[274] = 6
    im.save(d / "rotated.jpg", exif=exif.tobytes(), quality=95)
    shutil.copy(get_testdata_file("JPEG-lossy.dcm"), d / "jpeg12.dcm")
    _w(d / "semicolon.csv", "\n".join(ln.replace(",", ";") for ln in lines) + "\n")
    _w(d / "dupes.csv", "\n".join(lines + lines[1:3]) + "\n")
    _w(d / "escape.csv", "\n".join(lines[:1] + ["../../etc/" + lines[1].split("/", 1)[1]] + lines[2:]) + "\n")
    ck = torch.load(p["ckpt"], weights_only=True)
    names = list(ck["meta"]["observations"])
    state = dict(ck["model"])
    key = next(k for k in state if k.endswith("classifier.weight"))
    weight = state[key].clone()
    weight[names.index("Pleural Effusion")] = 0.0  # no gradient: Grad-CAM maps all zero
    torch.save({**ck, "model": {**state, key: weight}}, d / "nograd.pt")
    renamed = [("Mass" if n == "Lung Lesion" else n) for n in names]
    torch.save({**ck, "meta": {**ck["meta"], "observations": renamed}}, d / "mass.pt")
    flat = p["work"] / "flat"
    flat.mkdir()
    for i, src in enumerate(sorted((p["csv"].parent / "train").rglob("view1_frontal.jpg"))[:3]):
        shutil.copy(src, flat / f"img{i}.jpg")
    p["flat"] = flat
    p["flat2"] = p["work"] / "flat2"  # the audit writes into this one
    shutil.copytree(flat, p["flat2"])


def more_cases(p: dict[str, Path]) -> list[Case]:
    """The cases on the inputs of :func:`more_inputs`."""
    import json

    w, b, ck, csv, img = p["work"], p["bad"], str(p["ckpt"]), str(p["csv"]), str(p["img"])
    o = lambda name: w / "out" / name  # noqa: E731
    audit = lambda out, *a, c=ck: ["audit", "--checkpoint", c, "--csv", csv, "--classes",  # noqa: E731
                                   "Pleural Effusion", "--population", "all", "--shard-size", "4",
                                   "--batch-size", "4", "--out", str(o(out)), *a]
    exp = lambda *a, out="x": ["explain", *map(str, a), "--checkpoint", ck, "--out", str(o(out)),  # noqa: E731
                               "--methods", "gradcam"]
    C = Case

    def note(out: str) -> str:
        return json.loads((o(out) / "audit.json").read_text())["classes"]["Pleural Effusion"]["note"]

    def unlink(path: Path):
        return lambda s: path.unlink()

    def cut(path: Path):
        return lambda s: path.write_bytes(path.read_bytes()[:200])

    def blocker(path: Path):
        return lambda s: (path.parent.mkdir(parents=True, exist_ok=True), path.write_text("in the way"))

    def links(s):
        o("dangling").parent.mkdir(parents=True, exist_ok=True)
        for name, target in (("dangling", w / "nowhere"), ("loop", o("loop"))):
            if not o(name).is_symlink():
                o(name).symlink_to(target)

    def stop_second_image(stack: contextlib.ExitStack) -> None:
        from unittest import mock

        import chexplain.jobs.explain as ei

        real, calls = ei.lrp_rules_figure, []

        def figure(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*a, **k)

        stack.enter_context(mock.patch.object(ei, "lrp_rules_figure", figure))

    rows = lambda out: len((o(out) / "predictions.csv").read_text().splitlines())  # noqa: E731
    flat, flat2 = p["flat"], p["flat2"]
    return [
        C("audit gradcam, good", audit("ag", "--method", "gradcam"), "ok"),
        C("audit after store.json was deleted, other method", audit("ag"), words=("no store.json",),
          patch=unlink(o("ag") / "store" / "store.json")),
        C("audit a class without gradient (Grad-CAM maps all zero)",
          audit("ng", "--method", "gradcam", c=str(b / "nograd.pt")), "ok",
          check=lambda: "one cluster" in note("ng")),
        C("audit --resume after the class's maps were all zero",
          audit("ng", "--method", "gradcam", "--resume", c=str(b / "nograd.pt")), "ok"),
        C("audit, good", audit("au"), "ok"),
        C("audit --resume, a shard cut off", audit("au", "--resume"), "ok", words=("not a complete shard",),
          patch=cut(o("au") / "store" / "shard-00001.npz"),
          check=lambda: np.load(o("au") / "store" / "shard-00001.npz")["maps32"].shape[0] == 4),
        C("audit --resume, store.json corrupt", audit("au", "--resume"), words=("store.json", "not a readable"),
          patch=lambda s: (o("au") / "store" / "store.json").write_text('{"version": 2, "fin')),
        C("audit, a file in the way of figures/", audit("fw"), words=("figures",),
          patch=blocker(o("fw") / "figures"), check=lambda: not (o("fw") / "audit.json").exists()),
        C("audit --out inside --images", ["audit", "--checkpoint", ck, "--images", str(flat2), "--out",
                                          str(flat2 / "out"), "--shard-size", "4"], "ok",
          patch=lambda s: (flat2 / "out" / "figures").mkdir(parents=True, exist_ok=True) or
          shutil.copy(flat2 / "img0.jpg", flat2 / "out" / "figures" / "earlier.jpg"),
          check=lambda: len((flat2 / "out" / "store" / "index.csv").read_text().splitlines()) == 1 + 3 * 14),
        C("audit, a class the CSV has no column for", audit("ms", c=str(b / "mass.pt"))[:6] +
          ["Mass"] + audit("ms")[7:], "ok", words=("no label column", "Mass")),
        C("explain --out a dangling symlink", exp(img)[:-3] + [str(o("dangling")), "--methods", "gradcam"],
          words=("does not exist",), patch=links),
        C("explain --out a looping symlink", exp(img)[:-3] + [str(o("loop")), "--methods", "gradcam"],
          words=("loop",), patch=links),
        C('explain --out ""', exp(img)[:-3] + ["", "--methods", "gradcam"], words=("--out is empty",)),
        C("explain a folder, interrupted at image 2", exp(flat, out="ir"), words=("interrupted",),
          patch=stop_second_image, check=lambda: rows("ir") == 2),
        C("explain --resume after the interruption", exp(flat, "--resume", out="ir"), "ok",
          check=lambda: rows("ir") == 4),
        C("explain --resume with other --methods", exp(flat, "--resume", out="ir")[:-1] + ["lrp-epsilon"],
          words=("--resume", "methods")),
        C("explain an animated PNG", exp(b / "animated.png"), words=("animated",)),
        C("explain a JPEG with EXIF orientation 6", exp(b / "rotated.jpg", out="rot"), "ok",
          words=("EXIF orientation 6",)),
        C("explain a JPEG-compressed 12-bit DICOM", exp(b / "jpeg12.dcm"),
          words=("jpeg12.dcm", "transfer syntax", "pip install")),
        C("stats: semicolon-separated CSV", ["chexpert", "stats", str(b / "semicolon.csv")], words=("semicolon",)),
        C("stats: duplicated rows", ["chexpert", "stats", str(b / "dupes.csv")], "ok", words=("duplicate row",)),
        C("stats: a Path with ../", ["chexpert", "stats", str(b / "escape.csv")], "ok",
          words=("outside the data folder",)),
        C("checkpoint: /dev/null", exp(img)[:3] + ["/dev/null"] + exp(img)[4:], words=("not a regular file",)),
    ]
