"""Lists of images: a text file with one path or URI per line, or a CSV with a path column; both may mix the two."""

from __future__ import annotations

import csv
import io
import posixpath
from pathlib import Path

from annotator.errors import SourceError
from annotator.images.sources import is_uri, normalised, read_bytes

LOCATION_COLUMNS = ("path", "uri", "url", "location", "image", "file", "filename")
"""Header names (any case) of the column that holds the locations in a CSV list; otherwise its first column."""


def _base(list_location: str) -> str:
    """Where the relative entries of a list start: the list's own folder (or prefix)."""
    if is_uri(list_location):
        return list_location.rsplit("/", 1)[0]
    return str(Path(list_location).parent)


def _csv_locations(text: str, where: str) -> list[str]:
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in LOCATION_COLUMNS if name in header), None)
    if column is None:
        return [row[0].strip() for row in rows]  # no header: the first column holds the locations
    short = [number for number, row in enumerate(rows[1:], start=2) if len(row) <= column]
    if short:
        raise SourceError(f"{where} line {short[0]} has no {header[column]!r} cell.")
    return [row[column].strip() for row in rows[1:]]


def _text_locations(text: str) -> list[str]:
    # A whole line is one location: paths may hold commas. Blank lines and # comments are left out.
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_list(list_location: str | Path) -> list[str]:
    """The locations a list names, each once, in order: URIs as written, paths absolute (relative to the list)."""
    where = str(list_location)
    try:
        raw = read_bytes(where if is_uri(where) else normalised(where))
    except FileNotFoundError:
        raise SourceError(f"List not found: {where}.") from None
    except Exception as error:
        if not isinstance(error, OSError) and not is_uri(where):
            raise
        raise SourceError(f"Cannot read the list {where}: {error}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{where} is not a text or CSV list (it is not UTF-8 text).") from None
    is_csv = where.lower().endswith(".csv")
    entries = _csv_locations(text, where) if is_csv else _text_locations(text)
    base = _base(where if is_uri(where) else normalised(where))
    return list(dict.fromkeys(_located(entry, base) for entry in entries if entry))


def _located(entry: str, base: str) -> str:
    """An entry as recorded: a URI as written, a path made absolute against the list's folder (or prefix)."""
    if is_uri(entry):
        return normalised(entry)
    path = Path(entry).expanduser()
    if path.is_absolute():
        return normalised(path)
    if is_uri(base):  # relative to a list in a store: the same prefix, with ".." applied
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, entry))}"
    return normalised(Path(base) / path)
