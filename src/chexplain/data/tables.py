"""Strict CSV reading shared by the data sets: every problem is a one-line DataError naming the file."""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from pathlib import Path

import pandas as pd

from ..errors import DataError


def read_csv_strict(path: Path, full_rows: bool = False) -> pd.DataFrame:
    """All columns as str, blanks as "" (no NaN guessing); long rows are errors, and with
    ``full_rows`` short ones too (NIH's own CSVs have header cells with commas, so their rows
    are shorter than their headers by design)."""
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        with warnings.catch_warnings():  # a row longer than the header warns, then drops data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                             index_col=False)
        _check_delimiter(path, list(df.columns))
        short = _short_row(path, len(df.columns)) if full_rows else None
        if short is not None:
            line, fields = short
            raise DataError(f"{path}: line {line}: {fields} field(s), the header has "
                            f"{len(df.columns)} (a short row, or the file is cut off)")
        return df
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: malformed CSV: a row has more fields than the header") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty CSV file") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {str(exc).strip().splitlines()[-1]}") from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable text CSV ({type(exc).__name__})") from None


_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _check_delimiter(path: Path, header: list[str]) -> None:
    """A header read as one column that holds another delimiter: the file is not
    comma-separated (spreadsheets of some locales save ';')."""
    if len(header) != 1:
        return
    found = [(header[0].count(d), d) for d in _DELIMITERS if d in header[0]]
    if found:
        d = max(found)[1]
        raise DataError(f"{path}: {_DELIMITERS[d]}-separated ({d!r}), not comma-separated: "
                        "save it as a comma-separated CSV")


def _short_row(path: Path, columns: int) -> tuple[int, int] | None:
    """(line number, fields) of the first non-blank row with fewer fields than the header
    (pandas would read the missing fields as blanks, i.e. negative labels)."""
    if path.suffix.lower() in (".bz2", ".zip", ".xz", ".zst", ".tar"):
        return None  # pandas decompressed it; these are not checked row by row
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text)
        next(reader, None)
        for row in reader:
            if row and len(row) < columns:
                return reader.line_num, len(row)
    return None
