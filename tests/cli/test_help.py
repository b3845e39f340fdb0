"""The command line's help texts: rendered as printed, every option of compare, evaluate and
demo explained, no stray ``%%``, the defaults they state are the real ones."""

from __future__ import annotations

import argparse

import pytest

from chexplain.cli import build_parser


def _sub(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", [("compare",), ("chexpert", "evaluate"), ("demo",), ("explain",)])
def test_every_option_has_help_and_renders_cleanly(path):
    p = _sub(build_parser(), *path)
    missing = [a.option_strings[0] for a in p._actions
               if a.option_strings and a.help in (None, "") and a.dest != "help"]
    assert missing == [], f"{' '.join(path)}: options without help: {missing}"
    text = p.format_help()
    assert "%%" not in text and "%(" not in text


def test_stated_defaults_are_the_real_ones():
    from chexplain.jobs.demo import DemoConfig

    text = " ".join(_sub(build_parser(), "demo").format_help().split())
    assert f"default {DemoConfig().image_size}" in text and f"default {DemoConfig().epochs}" in text
    assert "95 % interval" in " ".join(_sub(build_parser(), "compare").format_help().split())
    train = " ".join(_sub(build_parser(), "chexpert", "train").format_help().split())
    assert "-m chexplain chexpert train" in train and "chexplain.cli" not in train
