"""Strict CSV reading shared by the data sets: every problem is a one-line DataError naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from ..errors import DataError


def read_csv_strict(path: Path) -> pd.DataFrame:
    """All columns as str, blanks as "" (no NaN guessing); short or long rows are errors."""
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        with warnings.catch_warnings():  # a row longer than the header warns, then drops data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                             index_col=False)
        return df
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: malformed CSV: a row has more fields than the header") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty CSV file") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {str(exc).strip().splitlines()[-1]}") from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable text CSV ({type(exc).__name__})") from None
