"""The API reference, generated at build time: one page per module of ``src/chexplain``.

An MkDocs hook (``hooks:`` in ``mkdocs.yml``), so ``mkdocs build`` and ``mkdocs serve`` run it
themselves: it walks the package, adds one generated page ``reference/<module path>.md`` per
module holding ``::: <dotted name>`` (rendered by mkdocstrings) and appends their navigation,
packages as sections, to the hand-written one. A module added, moved or removed needs no edit.
Nothing is written into ``docs/``.

``python docs/gen_ref.py`` prints the pages it would generate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "chexplain"
TITLE = "API reference"


@dataclass(frozen=True)
class ModulePage:
    """One module's reference page."""

    name: str  # dotted module name, e.g. chexplain.lrp.engine
    uri: str  # page path under the docs, e.g. reference/chexplain/lrp/engine.md
    is_package: bool

    @property
    def content(self) -> str:
        return f"# `{self.name}`\n\n::: {self.name}\n"


def module_pages(src: Path = SRC, package: str = PACKAGE) -> list[ModulePage]:
    """Every module of ``package`` under ``src``, packages before their modules."""
    pages = []
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        uri = "/".join(("reference", *parts, "index.md" if is_package else "")).rstrip("/")
        pages.append(ModulePage(".".join(parts), uri if is_package else uri + ".md", is_package))
    return sorted(pages, key=lambda p: (p.name.split("."), not p.is_package))


def reference_nav(pages: list[ModulePage]) -> list[Any]:
    """MkDocs nav entries: a package is a section whose first page is the package's own."""
    by_name = {p.name: p for p in pages}

    def children(package: str) -> list[Any]:
        entries: list[Any] = [{package: by_name[package].uri}]
        depth = package.count(".") + 1
        for p in pages:
            if p.name.count(".") != depth or not p.name.startswith(package + "."):
                continue
            short = p.name.rpartition(".")[2]
            entries.append({short: children(p.name)} if p.is_package else {short: p.uri})
        return entries

    return children(PACKAGE)


def on_config(config: Any) -> Any:
    """Append the reference's navigation to the hand-written one."""
    nav = list(config["nav"] or [])
    nav.append({TITLE: reference_nav(module_pages())})
    config["nav"] = nav
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the site's files."""
    from mkdocs.structure.files import File

    for page in module_pages():
        files.append(File.generated(config, page.uri, content=page.content))
    return files


if __name__ == "__main__":
    for p in module_pages():
        print(p.uri, "->", p.name)
