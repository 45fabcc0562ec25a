"""Excel workbooks (`--format xlsx --output FILE`): one sheet, a header row, typed cells.

Numbers are numbers, dates are dates, text is text (never a formula, whatever it starts with),
and money stays exact: a decimal amount is written as a number only when Excel's binary number
shows exactly that amount (at most 15 significant digits, and the nearest double prints back
as the same decimal); any other amount is written as text, so that no cell shows a figure that
differs from the ledger's. The `report` command writes its workbooks through :func:`write_xlsx`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Sequence

from ..ledger.errors import LedgerError
from .render import safe_text

# Excel shows at most 15 significant digits of a number.
EXCEL_DIGITS = 15
# A sheet name: at most 31 characters, none of these.
_SHEET_FORBIDDEN = set("[]:*?/\\")


def excel_number(value: Any) -> int | float | None:
    """`value` (an int, a Decimal or a decimal string) as a number Excel shows exactly, or None
    when it has more than 15 significant digits or no exact double of that decimal exists."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**EXCEL_DIGITS else None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    digits = d.normalize().as_tuple().digits
    if len(digits) > EXCEL_DIGITS:
        return None
    if d == d.to_integral_value():
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else None


def _cell_value(value: Any, kind: str) -> tuple[Any, str | None]:
    """(value to write, number format) for one cell of a column of `kind`."""
    if value is None:
        return None, None
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return _cell_value(value[0], kind)
        return safe_text(";".join(str(v) for v in value)), None
    if kind == "number":
        n = excel_number(value)
        if n is not None:
            return n, "#,##0" if isinstance(n, int) else "#,##0.##########"
        return safe_text(value), None  # beyond Excel's exact numbers, or a fraction "200/3"
    if kind == "date":
        try:
            return (value if isinstance(value, date) else date.fromisoformat(str(value))), "yyyy-mm-dd"
        except ValueError:
            return safe_text(value), None
    if kind == "datetime":
        try:
            dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            return safe_text(value), None
        if dt.tzinfo is not None:  # Excel has no time zones: UTC, as the header says
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        return dt, "yyyy-mm-dd hh:mm:ss"
    if isinstance(value, bool):
        return value, None
    return safe_text(value), None


def _sheet_name(title: str) -> str:
    name = "".join("_" if c in _SHEET_FORBIDDEN else c for c in safe_text(title)).strip("'")
    return (name or "Sheet")[:31]


def write_xlsx(path: str | os.PathLike[str], title: str, columns: Sequence[tuple[str, str, Any]],
               rows: Iterable[dict[str, Any]]) -> int:
    """Write one sheet named after `title`: a header row, then one row per item of `rows`.

    `columns` are (key, header, kind), kind one of "number", "date", "datetime", "text" (True
    and False are taken as "number" and "text", as in the table column lists). Rows are
    streamed (write-only workbook). The file is written beside `path` and renamed into place,
    so a failed export never leaves half a workbook. Returns the number of rows written.
    """
    # The file first: a folder that cannot take it is said before any work is done.
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".equity-ledger-", suffix=".xlsx", dir=folder)
    except OSError as e:
        raise LedgerError(f"cannot write {safe_text(target)}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            n = _fill(f, title, columns, rows)
        os.chmod(tmp, 0o666 & ~_umask())  # as any file the user writes, not mkstemp's 0600
        os.replace(tmp, target)
    except OSError as e:
        raise LedgerError(f"cannot write {safe_text(target)}: {e.strerror}") from None
    finally:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return n


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fill(f: Any, title: str, columns: Sequence[tuple[str, str, Any]], rows: Iterable[dict[str, Any]]) -> int:
    """Build the workbook and save it into the open binary file `f`; the number of rows."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    kinds = [("number" if k is True else "text" if k is False else str(k)) for _key, _h, k in columns]
    wb = Workbook(write_only=True)
    wb.properties.title = safe_text(title)
    ws = wb.create_sheet(_sheet_name(title))
    ws.freeze_panes = "A2"
    bold = Font(bold=True)

    def text_cell(value: str, font: Any = None) -> Any:
        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"  # text, never a formula, whatever it starts with
        if font is not None:
            cell.font = font
        return cell

    ws.append([text_cell(safe_text(header), bold) for _key, header, _k in columns])
    n = 0
    for row in rows:
        cells = []
        for (key, _h, _k), kind in zip(columns, kinds):
            value, fmt = _cell_value(row.get(key), kind)
            if isinstance(value, str):
                cells.append(text_cell(value))
                continue
            cell = WriteOnlyCell(ws, value=value)
            if fmt:
                cell.number_format = fmt
            cells.append(cell)
        ws.append(cells)
        n += 1

    wb.save(f)
    return n
