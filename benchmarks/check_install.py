"""Does ``pip install -e .`` accept a PyTorch newer than the tested one?

Builds a fresh venv that sees the running interpreter's site-packages as a fallback (a
``.pth`` file: numpy & co. and a recent setuptools are found without a download), installs *fake* ``torch 2.99.0`` and ``torchvision 0.99.0`` wheels (metadata
only) into it, then asks pip's resolver, offline, to install chexplain in editable mode
(``--dry-run``): with an upper bound on torch it fails ("requires torch<=..."), with lower
bounds only it succeeds. pip runs ``--isolated`` with ``PIP_CONFIG_FILE=/dev/null``: a
machine-wide pip configuration (e.g. a constraints file pinning torch) is not the user's and
would decide the answer instead of ``pyproject.toml``. Usage: ``python benchmarks/check_install.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import subprocess
import sysconfig
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid wheel holding only metadata and an empty package."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f'__version__ = "{version}"\n',
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: chexplain-check\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = []
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for arc, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
            z.writestr(arc, data)
        z.writestr(f"{dist}/RECORD", "\n".join(record + [f"{dist}/RECORD,,"]) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR", help="build the venv here and keep it")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="chexplain-install-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_chexplain_fallback.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = work / "wheels"
    wheels.mkdir(exist_ok=True)
    newer = [fake_wheel(wheels, "torch", "2.99.0"), fake_wheel(wheels, "torchvision", "0.99.0")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    pip = [str(py), "-m", "pip", "--isolated"]
    # the venv's bundled setuptools may predate SPDX licence strings: use the fallback's
    subprocess.run(pip + ["uninstall", "--quiet", "-y", "setuptools"], env=env)
    subprocess.run(pip + ["install", "--quiet", "--no-index", "--no-deps", *map(str, newer)],
                   check=True, env=env)
    shown = subprocess.run(pip + ["show", "torch"], capture_output=True, text=True, env=env).stdout
    print("venv torch:", next(line for line in shown.splitlines() if line.startswith("Version")))
    res = subprocess.run(pip + ["install", "--dry-run", "--no-index", "--no-build-isolation",
                                "-e", str(ROOT)], capture_output=True, text=True, env=env)
    print(res.stdout[-1500:], res.stderr[-1500:], sep="\n")
    ok = res.returncode == 0 and "torch" not in res.stdout.split("Would install")[-1]
    print("pip install -e . with torch 2.99.0:", "OK (accepted, torch kept)" if ok else "REFUSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
