"""The typer app, its global `--db` option, shared option types and the error handling.

Command modules import from here and register themselves on :data:`app`;
:mod:`equity_ledger.cli.main` imports them all and runs the app. Nothing here imports a
command module.
"""

from __future__ import annotations

import functools
from datetime import date
from enum import Enum
from typing import Any, Callable, Optional

import typer

from ..ledger.errors import LedgerError
from . import render

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # -h as --help on every verb (click contexts inherit it)
    context_settings={"help_option_names": ["-h", "--help"]},
    help="An event-sourced ledger of equity awards (stock acquisition rights).",
)


class By(str, Enum):
    person = "person"
    group = "group"
    issuance = "issuance"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class HistoryFormat(str, Enum):
    """Formats of `audit replay` (a table or JSON only)."""

    table = "table"
    json = "json"


OUTPUT_HELP = "Write to this file instead of stdout (required with --format xlsx; CSV gets a UTF-8 BOM)."


def check_output(fmt: str, output: Optional[str]) -> None:
    """`--format xlsx` needs `--output FILE`; a table is for the terminal only."""
    if fmt == "xlsx" and not output:
        raise typer.BadParameter("--format xlsx writes a workbook: give --output FILE", param_hint="--output")
    if fmt == "table" and output:
        raise typer.BadParameter("a table is printed; use --format csv, json or xlsx with --output",
                                 param_hint="--output")


_db: dict[str, Optional[str]] = {"url": None}


DB_HELP = (
    "The store: sqlite:///FILE, a plain file path, or postgresql://user@host/db "
    "(default: $EQUITY_LEDGER_DB or ./equity-ledger.sqlite)."
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("equity-ledger")
        except PackageNotFoundError:  # pragma: no cover  (running from a source tree)
            v = "unknown"
        render.out(f"equity-ledger {v}")
        raise typer.Exit(0)


@app.callback()
def main(
    db: Optional[str] = typer.Option(None, "--db", metavar="URL", help=DB_HELP, show_default=False),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _db["url"] = db


def add_db_option(command: Any) -> None:
    """Give a click command (and every command under it) its own `--db URL`, so that
    `equity-ledger holdings --db URL` works like `equity-ledger --db URL holdings`.

    The option sets the same state as the global one; given after the verb, it wins.
    """
    from typer.core import TyperOption

    def remember(_ctx: Any, _param: Any, value: Optional[str]) -> None:
        if value is not None:
            _db["url"] = value

    if not any("--db" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(TyperOption(
            param_decls=["--db"], metavar="URL", expose_value=False, callback=remember, help=DB_HELP,
        ))
    for sub in getattr(command, "commands", {}).values():
        add_db_option(sub)


def db_url() -> Optional[str]:
    """The `--db` given on the command line, or None (then the environment or the default)."""
    return _db["url"]


def _store_error(e: BaseException) -> bool:
    from ..bootstrap import is_store_error

    return is_store_error(e)


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected errors become one line on stderr and exit 1; usage errors stay exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except LedgerError as e:
            render.err(f"error: {e}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            render.err("interrupted: commands stored so far stay stored")
            raise typer.Exit(130) from None
        except Exception as e:
            if not _store_error(e):
                raise
            from ..ledger.store import store_config

            try:
                where = store_config(db_url()).display
            except LedgerError:
                where = str(db_url())
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            render.err(f"error: cannot use store {where}: {first}")
            raise typer.Exit(1) from None

    return wrapper


def parse_date(value: Optional[str], option: str = "--as-of") -> Optional[date]:
    """A YYYY-MM-DD option value (None stays None); anything else is a usage error."""
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{render.safe_text(value)}' is not a YYYY-MM-DD date",
                                 param_hint=option) from None


def warn_if_lagging(view: Any) -> None:
    """Queries only read: when the projections lag the log, say so and name the cure."""
    st = view.status
    if st.lag:
        render.err(
            f"warning: the projections are {st.lag} events behind the log (position "
            f"{st.position} of {st.head}); run `equity-ledger projections catch-up`"
        )
