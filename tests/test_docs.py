"""The README stays a short entry point and every relative link of the documentation resolves.

No documentation tools needed: links are read from the Markdown source, anchors are compared
with the headings' slugs as MkDocs (Python-Markdown's toc) and GitHub write them.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _heading_text(raw: str) -> str:
    """A heading as rendered text: links reduced to their text, code and emphasis marks dropped."""
    raw = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return raw.replace("`", "").replace("*", "")


def _slug_mkdocs(text: str) -> str:
    """Python-Markdown's toc slugify (MkDocs' default anchors)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _slug_github(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a heading of ``path`` gets under either convention."""
    out: set[str] = set()
    seen: dict[str, int] = {}
    for _, raw in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = _heading_text(raw)
        for slug in (_slug_mkdocs(text), _slug_github(text)):
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}_{n}")
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    """The link targets of ``path`` that are neither URLs nor e-mail addresses."""
    targets = LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not SCHEME.match(t) and not t.startswith("//")]


def broken_links(path: Path) -> list[str]:
    """Links of ``path`` to a missing file, or to a missing heading of a Markdown file."""
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = path if not file_part else (path.parent / file_part).resolve()
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with that anchor)")
    return broken


def test_readme_is_short() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; the rest belongs in docs/"


def test_readme_names_the_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


def test_there_are_pages() -> None:
    names = {p.name for p in PAGES}
    assert {"index.md", "lrp-ops.md"} <= names, sorted(names)


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == [], f"{path.relative_to(ROOT)}: broken links"


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    """The checker itself: a missing file and a missing heading are found, good links pass."""
    (tmp_path / "a.md").write_text("# Title\n\n## The `x` program's memory\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#title) [ok](a.md#the-x-programs-memory) [ok](#here) "
        "[web](https://example.org/x.md) `[code](gone.md)`\n\n# Here\n\n"
        "[bad](gone.md) [bad](a.md#nowhere)\n\n```\n[fenced](gone2.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["gone.md (no such file)", "a.md#nowhere (no heading with that anchor)"]
