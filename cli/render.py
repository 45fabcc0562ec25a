"""Output: rich tables (aligned for East Asian widths), JSON arrays and guarded CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from decimal import Decimal
from typing import Any, Iterable, Sequence

# CSV cells starting with these are formulas to a spreadsheet: neutralised with a quote.
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def to_json(rows: Any) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=2)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = ";".join(str(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA_LEAD):
        return "'" + text
    return text


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    cols = list(columns or (rows[0].keys() if rows else []))
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([csv_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # Off a terminal (a pipe, a file, a test) there is no width to fit: never wrap a table.
    return Console(file=stream, width=None if tty else 250, highlight=False, soft_wrap=not tty)


def number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,}"
    if isinstance(value, str):
        try:
            d = Decimal(value)
        except Exception:
            return value
        return f"{d:,}" if "/" not in value else value
    return str(value)


def safe_text(value: Any) -> str:
    """Text for a terminal: control characters shown as escapes, markup never interpreted."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def table(
    title: str | None,
    columns: Sequence[tuple[str, str, bool]],
    rows: Iterable[dict[str, Any]],
    footer: Iterable[dict[str, Any]] = (),
    caption: str | None = None,
) -> None:
    """Print a rich table; columns are (key, header, numeric)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, caption=caption, show_lines=False, title_justify="left", caption_justify="left")
    for _key, header, numeric in columns:
        t.add_column(header, justify="right" if numeric else "left", no_wrap=numeric)
    for r in rows:
        t.add_row(*(Text(number(r.get(k)) if num else safe_text(r.get(k))) for k, _h, num in columns))
    footer = list(footer)
    if footer:
        t.add_section()
        for r in footer:
            t.add_row(*(Text(number(r.get(k)) if num else safe_text(r.get(k)), style="bold") for k, _h, num in columns))
    _console().print(t)


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    """One line on stderr (a message never spans lines: newlines in user text are escaped)."""
    sys.stderr.write(text.replace("\r", "\\r").replace("\n", "\\n") + "\n")
