"""User-facing errors: each carries a one-line message naming what is wrong.

The CLI prints ``chexplain: error: <message>`` for these and exits with status 2; every other
exception is a bug in chexplain and keeps its traceback.
"""

from __future__ import annotations


class ChexplainError(ValueError):
    """A problem with the caller's input (file, model, layer, column, class ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class UnsupportedModelError(ChexplainError):
    """The model holds an operation that has no relevance rule, or cannot be traced."""


class TargetError(ChexplainError):
    """The requested target classes do not fit the model's outputs."""


class InputError(ChexplainError):
    """The input tensor has the wrong shape, dtype or device for the model."""


class DataError(ChexplainError):
    """A data file (image, CSV, IDX, DICOM) is missing, corrupt or malformed."""
