"""Write the API reference: one page per module of ``src/chexplain``, and its navigation.

Run by the mkdocs-gen-files plugin at build time (``mkdocs.yml``), so the reference follows the
package as it is: a module added, moved or removed needs no edit here.
"""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "chexplain"


def module_pages() -> list[tuple[tuple[str, ...], Path]]:
    """Every module of the package as (dotted name parts, page path under reference/)."""
    pages = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            page = Path(*parts, "index.md")
        else:
            page = Path(*parts).with_suffix(".md")
        pages.append((parts, page))
    return pages


def main() -> None:
    nav = mkdocs_gen_files.Nav()
    for parts, page in module_pages():
        nav[parts] = page.as_posix()
        with mkdocs_gen_files.open(Path("reference", page), "w") as f:
            f.write(f"# `{'.'.join(parts)}`\n\n::: {'.'.join(parts)}\n")
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as f:
        f.writelines(nav.build_literate_nav())


main()
