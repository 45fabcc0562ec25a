"""Output: rich tables (aligned for East Asian widths), JSON arrays, guarded CSV, messages.

Text from the store (names, titles, issuers, ids, reasons, actors) is data, never instructions
to the terminal: every path here shows control characters as visible escapes (``\\x1b``,
``\\u202e``) and never lets rich interpret markup (``[bold]``, ``[link=...]``) in it.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import unicodedata
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

# CSV cells starting with these are formulas to a spreadsheet: neutralised with a quote.
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")

# Characters that reorder or hide what follows them on a terminal: the bidi embeddings,
# overrides and isolates, and the implicit marks.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Categories of characters never written as such: C0/DEL/C1 controls, lone surrogates (they
# cannot even be encoded), line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(c: str) -> bool:
    if " " <= c <= "~":
        return False
    return c in _BIDI or unicodedata.category(c) in _UNSAFE_CATEGORIES


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any, newlines: bool = False) -> str:
    """Text fit for a terminal: control, bidi and separator characters shown as escapes.

    With ``newlines`` a line feed is kept (multi-line messages of our own); everything else
    that could move the cursor, change colours, open a hyperlink or reorder the line is
    written as visible text such as ``\\x1b`` or ``\\u202e``.
    """
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        _escape(c) if _unsafe(c) and not (newlines and c == "\n") else c for c in text
    )


# ------------------------------------------------------------------------------------- JSON
def to_json(rows: Any) -> str:
    """A JSON document with the same values, safe to print.

    json.dumps escapes only C0 controls; DEL, C1 controls, bidi characters, separators and
    lone surrogates are escaped here as ``\\uXXXX`` (each can only occur inside a JSON string,
    so the document stays valid and decodes to the same values).
    """
    text = json.dumps(rows, ensure_ascii=False, indent=2)
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(f"\\u{ord(c):04x}" if _unsafe(c) and c != "\n" else c for c in text)


# -------------------------------------------------------------------------------------- CSV
def csv_cell(value: Any) -> str:
    """One CSV cell: control characters escaped, a leading formula character neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = ";".join(str(v) for v in value)
    text = safe_text(value)
    if text.startswith(_FORMULA_LEAD):
        return "'" + text
    return text


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV with a header line: the given columns, else the first row's keys."""
    buf = io.StringIO()
    cols = list(columns or (rows[0].keys() if rows else []))
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(c) for c in cols])
    for r in rows:
        w.writerow([csv_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as CSV on stdout."""
    sys.stdout.write(to_csv(rows, columns))


def write_file(path: str, text: str, bom: bool = False) -> None:
    """Write `text` to the file `path` as UTF-8 (with a byte-order mark when `bom`: Excel on
    Japanese Windows reads a CSV without one as Shift_JIS and garbles the names)."""
    from ..ledger.errors import LedgerError

    try:
        with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise LedgerError(f"cannot write {safe_text(path)}: {e.strerror}") from None


def write_json(rows: Any) -> None:
    """Print a value as a JSON document on stdout."""
    sys.stdout.write(to_json(rows) + "\n")


# ----------------------------------------------------------------------------------- tables
def console(stderr: bool = False) -> Any:
    """A rich console that never interprets markup, emoji codes or highlighting in strings."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # Off a terminal (a pipe, a file, a test) there is no width to fit: never wrap a table.
    return Console(
        file=stream, width=None if tty else 250, soft_wrap=not tty,
        markup=False, emoji=False, highlight=False,
    )


def number(value: Any) -> str:
    """A figure for a table: thousands separators; fractions such as "200/3" as they are."""
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
            return safe_text(value)
        return f"{d:,}" if "/" not in value else safe_text(value)
    return safe_text(value)


def plain(value: Any, style: str = "") -> Any:
    """A rich Text of data: escaped, and never parsed as markup."""
    from rich.text import Text

    return Text(safe_text(value), style=style)


# Text columns are folded to fit, never below this many cells (or their own width).
TEXT_MIN_WIDTH = 10


def fit_width(stream: Any = None) -> int | None:
    """The width tables must fit: the terminal's, or $COLUMNS when set; None off a terminal
    without $COLUMNS (a pipe or a file gets the whole table, however wide)."""
    import os
    import shutil

    stream = stream or sys.stdout
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if stream.isatty():
        return shutil.get_terminal_size().columns
    return None


def _header_words(header: str) -> int:
    return max((cell_width(w) for w in header.split()), default=0)


def cell_width(text: str) -> int:
    """Terminal cells of a string: East Asian wide characters count 2."""
    from rich.cells import cell_len

    return cell_len(text)


def table(
    title: str | None,
    columns: Sequence[tuple[str, str, bool]],
    rows: Iterable[dict[str, Any]],
    footer: Iterable[dict[str, Any]] = (),
    caption: str | None = None,
    *,
    wide: bool = False,
    keep: Iterable[str] = (),
    drop_order: Sequence[str] = (),
    min_widths: dict[str, int] | None = None,
    width: int | None = None,
) -> None:
    """Print a rich table; columns are (key, header, numeric). Every string is plain text.

    The table fits `width` (default :func:`fit_width`: the terminal, or $COLUMNS): numbers are
    never cut (their columns keep the width of their longest figure, headers go on two lines),
    text columns fold; when even that does not fit, columns are left out, those of
    `drop_order` first (then, right to left, any column not named in `keep`), and a caption
    names them (`min_widths` gives a text column more room than the default before that
    happens). `wide` shows every column (wider than the terminal if it must be). Off a
    terminal without $COLUMNS the whole table is printed at its natural width. Only when the
    kept columns cannot fit at all do figures fold onto a second line (every digit shown).
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows, footer = list(rows), list(footer)
    cols = list(columns)
    texts = [[number(r.get(k)) if num else safe_text(r.get(k)) for k, _h, num in cols] for r in rows + footer]
    natural, minimum = [], []
    for i, (_k, header, num) in enumerate(cols):
        cells = max((cell_width(line) for t in texts for line in t[i].split("\n")), default=0)
        natural.append(max(cells, cell_width(safe_text(header))))
        words = _header_words(safe_text(header))
        floor = (min_widths or {}).get(cols[i][0], TEXT_MIN_WIDTH)
        minimum.append(max(cells, words) if num else min(natural[-1], max(words, floor)))

    def total(widths: list[int], shown: list[int]) -> int:
        return sum(widths[i] for i in shown) + 3 * len(shown) + 1

    shown = list(range(len(cols)))
    target = fit_width() if width is None else width
    hidden: list[str] = []
    if target is not None and total(natural, shown) > target and not wide:
        keys = [k for k, _h, _n in cols]
        kept = set(keep)
        order = [keys.index(k) for k in drop_order if k in keys and k not in kept]
        order += [i for i in reversed(shown) if keys[i] not in kept and i not in order]
        for i in order:
            if total(minimum, shown) <= target:
                break
            shown.remove(i)
            hidden.append(safe_text(cols[i][1]))
    fold_numbers = False
    if target is None:
        target = total(natural, shown)
    elif not wide and total(minimum, shown) > target:
        # Even the columns kept do not fit (huge figures on a narrow terminal): figures fold
        # onto two lines, every digit shown, rather than the table running off the screen.
        fold_numbers = True
    else:
        target = max(target, total(minimum, shown))  # --wide: every column, wider if it must
    squeeze = total(natural, shown) > target
    if hidden:
        note = f"not shown: {', '.join(hidden)} (--wide shows every column)"
        caption = f"{caption}\n{note}" if caption else note

    t = Table(
        title=plain(title) if title is not None else None,
        caption=plain(caption) if caption is not None else None,
        show_lines=False, title_justify="left", caption_justify="left",
    )
    for i in shown:
        _key, header, numeric = cols[i]
        head = safe_text(header)
        if numeric and squeeze and cell_width(head) > minimum[i]:
            head = head.replace(" ", "\n")  # a long header on two lines, not a wider column
        if numeric and fold_numbers:
            t.add_column(Text(head), justify="right", overflow="fold")
        elif numeric:
            t.add_column(Text(head), justify="right", no_wrap=True, min_width=minimum[i])
        else:
            t.add_column(Text(head), justify="left", overflow="fold")

    for n, row in enumerate(texts):
        style = "bold" if n >= len(rows) else ""
        if n == len(rows) and footer:
            t.add_section()
        t.add_row(*(Text(row[i], style=style) for i in shown))
    stream = sys.stdout
    Console(
        file=stream, width=target, soft_wrap=False, markup=False, emoji=False, highlight=False,
    ).print(t)


def progress(label: str, total: int | None, work: Callable[[Callable[[int], None]], Any],
             show: bool | None = None, bytes_: bool = False) -> Any:
    """Run ``work(advance)`` with a progress bar on stderr (by default when it is a terminal)."""
    if not (sys.stderr.isatty() if show is None else show):
        return work(lambda n: None)
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    count = DownloadColumn() if bytes_ else MofNCompleteColumn()
    with Progress(TextColumn(safe_text(label), markup=False), BarColumn(), count, TimeRemainingColumn(),
                  console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(safe_text(label), total=total)
        return work(lambda n: bar.advance(task, n))


# --------------------------------------------------------------------------------- messages
def out(text: str) -> None:
    """A message on stdout; lines of our own are kept, any other control is escaped."""
    text = safe_text(text, newlines=True)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    """One line on stderr: a message never spans lines, every control character is escaped."""
    sys.stderr.write(safe_text(text) + "\n")
