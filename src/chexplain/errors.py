"""User-facing errors: each carries a one-line message naming what is wrong.

The CLI prints ``chexplain: error: <message>`` for these and exits with status 2; every other
exception is a bug in chexplain and keeps its traceback.
"""

from __future__ import annotations

import re

#: How torch's DataLoader re-raises an error of a worker process: the worker's traceback is
#: flattened into the message; the original one-line message is its last line.
_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.")


def _one_line(message: str) -> str:
    text = str(message)
    if _WORKER.match(text) and "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]*(?:Error|Exception): ", "", last.strip(), count=1)
    return " ".join(text.split())


class ChexplainError(ValueError):
    """A problem with the caller's input (file, model, layer, column, class ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class UnsupportedModelError(ChexplainError):
    """The model holds an operation that has no relevance rule, or cannot be traced."""


class TargetError(ChexplainError):
    """The requested target classes do not fit the model's outputs."""


class InputError(ChexplainError):
    """The input tensor has the wrong shape, dtype or device for the model."""


class DataError(ChexplainError):
    """A data file (image, CSV, IDX, DICOM) is missing, corrupt or malformed."""


class OutputError(ChexplainError):
    """An output folder or file cannot be created or written (a file in the way, no
    permission, no space left on the device)."""
