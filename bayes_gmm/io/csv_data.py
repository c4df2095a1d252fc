"""Reading a CSV of numbers: the data files of the command line.

:func:`read_data` reads a CSV with or without a header row, picks columns by name or
position, detects the delimiter (one of ``, ; TAB |``) unless it is given, and reports a bad
file with a :class:`DataFileError` whose message is one line naming the file, line and
column at fault.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "read_data"]

#: Cells read as missing values (compared case-insensitively, after stripping blanks).
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: Delimiters detected when none is given, in csv.Sniffer's order of preference.
_DELIMITERS = (",", "\t", ";", "|")
_SNIFF_LINES = 50


class DataFileError(ValueError):
    """A bad data file, reported on one line."""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _line_numbers(path: Path, delimiter: str) -> list[int]:
    """File line of every non-blank CSV record (only computed to word an error)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        lines = []
        start = 1
        for record in reader:
            if len(record) > 1 or (record and record[0].strip()):
                lines.append(start)
            start = reader.line_num + 1
    return lines


def short_list(items, limit: int = 10) -> str:
    """``items`` joined by commas, the first ``limit`` of them and how many more."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _shown(delimiter: str) -> str:
    """A delimiter as it is typed after ``--delimiter``."""
    return "'\\t'" if delimiter == "\t" else repr(delimiter)


def check_delimiter(delimiter: str) -> str:
    """``delimiter`` if it can separate columns of numbers, else ValueError saying why."""
    if delimiter == "":
        raise ValueError("the delimiter is empty; give one character, e.g. --delimiter ';' (or '\\t' for tabs)")
    if len(delimiter) != 1:
        raise ValueError(f"{delimiter!r} is not one character; give one, e.g. --delimiter ';' (or '\\t' for tabs)")
    if delimiter in "0123456789.+-\"\r\n":
        raise ValueError(f"{delimiter!r} cannot separate columns of numbers; give one character such as ',' or ';'")
    return delimiter


def _sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file, guessed from its first lines among , TAB ; and |.

    The one that splits every sampled line into the same number (> 1) of fields wins. When
    none does (a ragged line, which the parser then reports), csv.Sniffer's tolerant guess is
    used, or the only candidate that occurs at all; a file where none occurs has one column
    (csv.Sniffer fails on those). Several equally good candidates raise DataFileError asking for
    ``--delimiter``.
    """
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        lines = []
        for line in fh:
            if line.strip():
                lines.append(line)
                if len(lines) == _SNIFF_LINES:
                    break
    sample = "".join(lines)
    present = [d for d in _DELIMITERS if d in sample]
    if not present:
        return ","  # one column (or an empty file, which the parser reports)

    def splits_evenly(delimiter: str) -> bool:
        try:
            widths = {len(record) for record in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:  # e.g. a field over csv's size limit: leave it to the parser
            return False
        return len(widths) == 1 and widths.pop() > 1

    even = [d for d in present if splits_evenly(d)]
    if len(even) == 1:
        return even[0]
    if not even:
        try:
            return csv.Sniffer().sniff(sample, delimiters="".join(present)).delimiter
        except csv.Error:
            if len(present) == 1:
                return present[0]
        even = present
    even.sort(key=lambda d: d == ",")  # suggest the unusual one first
    options = " or ".join(f"--delimiter {_shown(d)}" for d in even)
    raise DataFileError(
        f"{path}: cannot tell which of {', '.join(_shown(d) for d in even)} separates the columns; pass {options}."
    )


def _select_columns(names: list[str], spec: str | None, has_header: bool, path: Path) -> list[int]:
    n = len(names)
    if spec is None:
        return list(range(n))
    chosen: list[int] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            raise DataFileError(f"--columns {spec!r} has an empty entry.")
        if has_header and token in names:
            if names.count(token) > 1:
                raise DataFileError(f"{path}: the header has several columns named {token!r}; choose them by position.")
            idx = [names.index(token)]
        elif re.fullmatch(r"\d+(-\d+)?", token):
            lo, _, hi = token.partition("-")
            lo, hi = int(lo), int(hi or lo)
            if lo < 1 or hi > n or lo > hi:
                raise DataFileError(
                    f"--columns: position {token} is outside 1-{n} ({path} has {n} columns; "
                    "positions count from 1)."
                )
            idx = list(range(lo - 1, hi))
        else:
            where = f"columns: {short_list(names)}" if has_header else "it has no header row, so give positions from 1"
            raise DataFileError(f"--columns: no column {token!r} in {path} ({where}).")
        for i in idx:
            if i in chosen:
                raise DataFileError(f"--columns names column {names[i]!r} twice.")
            chosen.append(i)
    return chosen


def read_data(
    path: str | Path,
    columns: str | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
) -> tuple[np.ndarray, list[str], bool]:
    """Read a CSV of numbers (the command line's data files).

    Parameters
    ----------
    path : str or Path
    columns : str, optional
        Comma-separated column names (with a header) or 1-based positions and ranges
        (``"1,3-5"``); default: every column.
    header : bool or None
        Whether the first row is a header; None guesses: it is one when any of its cells is
        neither a number nor a missing-value marker.
    delimiter : str or None
        One character; None detects it among ``,``, tab, ``;`` and ``|`` from the first lines
        (a file where none occurs has one column).

    Returns
    -------
    X : ndarray of shape (n_rows, n_columns)
    names : list of str
        The chosen columns' names (``x1, x2, ...`` by position without a header).
    has_header : bool

    Raises
    ------
    DataFileError
        For a missing or empty file, a bad or undetectable delimiter, a malformed CSV, a
        non-numeric cell, a missing value (naming its lines and columns) or an infinite value.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"no such file: {path}")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder, not a CSV file.")
    if delimiter is None:
        delimiter = _sniff_delimiter(path)
    else:
        try:
            check_delimiter(delimiter)
        except ValueError as exc:
            raise DataFileError(f"--delimiter: {exc}") from None
    try:
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            sep=delimiter,
            skipinitialspace=True,
            skip_blank_lines=True,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path} is empty: it has no rows to read.") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        detail = re.sub(r"^Error tokenizing data\. C error: ", "", detail)
        raise DataFileError(f"{path} is not a well-formed CSV: {detail}") from None
    except UnicodeDecodeError:
        raise DataFileError(f"{path} is not UTF-8 text; is it a CSV file?") from None
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise DataFileError(f"{path} is empty: it has no rows to read.")

    first = [("" if isinstance(c, float) else str(c)).strip() for c in raw.iloc[0]]
    if header is None:
        header = any(c.lower() not in MISSING_MARKERS and not _is_number(c) for c in first)
    if header:
        names = [c if c else f"x{i + 1}" for i, c in enumerate(first)]
        body = raw.iloc[1:]
    else:
        names = [f"x{i + 1}" for i in range(raw.shape[1])]
        body = raw
    chosen = _select_columns(names, columns, header, path)
    if body.shape[0] == 0:
        raise DataFileError(f"{path} has a header row but no data rows.")
    body = body.iloc[:, chosen]
    names = [names[i] for i in chosen]

    cells = body.apply(lambda s: s.str.strip()).fillna("")
    missing = cells.apply(lambda s: s.str.lower().isin(MISSING_MARKERS)).to_numpy()
    values = cells.apply(lambda s: pd.to_numeric(s, errors="coerce")).to_numpy(dtype=float)
    offset = 1 if header else 0

    def lines_of(rows: np.ndarray) -> list[int]:
        line_of = _line_numbers(path, delimiter)
        return [line_of[r + offset] if r + offset < len(line_of) else r + offset + 1 for r in rows]

    non_numeric = np.isnan(values) & ~missing
    if non_numeric.any():
        rows, cols = np.nonzero(non_numeric)
        line = lines_of(rows[:1])[0]
        more = f" ({rows.size} non-numeric cells in all)" if rows.size > 1 else ""
        hint = "" if header or columns else "; if the first row is a header, pass --header"
        raise DataFileError(
            f"{path}: non-numeric value {cells.iat[rows[0], cols[0]]!r} at line {line}, column "
            f"{names[cols[0]]!r}{more}; keep only numeric columns with --columns{hint}."
        )
    if missing.any():
        bad_rows = np.flatnonzero(missing.any(axis=1))
        bad_cols = [names[j] for j in np.flatnonzero(missing.any(axis=0))]
        raise DataFileError(
            f"{path}: {int(missing.sum())} missing value(s) at line(s) {short_list(lines_of(bad_rows))} "
            f"in column(s) {short_list(bad_cols)}; remove or impute those rows first."
        )
    infinite = ~np.isfinite(values)
    if infinite.any():
        rows, cols = np.nonzero(infinite)
        line = lines_of(rows[:1])[0]
        raise DataFileError(
            f"{path}: infinite value at line {line}, column {names[cols[0]]!r}; remove or clip it."
        )
    return values, names, bool(header)
