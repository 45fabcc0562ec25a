"""The `equity-ledger` command line: registers every command module on the app and runs it.

Each verb that changes the ledger builds a command object exactly like a line of a command file
and hands it to the one application service; queries read the projection tables only. This is
the only module that imports the command modules; none of them imports it.
"""

from __future__ import annotations

import io
import os
import sys

import typer

try:  # typer below 0.29 vendors click (the pin in pyproject.toml); later ones use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click import ClickException

from . import apply, audit, demo, projections, queries, verbs  # noqa: F401  (register their commands)
from . import interchange  # noqa: F401  (export ocf, import ocf)
from . import report  # noqa: F401  (report movements)
from . import render
from .app import add_db_option, app


# Set to show the traceback of an internal error (a bug) instead of its one line.
DEBUG_ENV = "EQUITY_LEDGER_DEBUG"


def run() -> None:
    """Console-script entry point: the app, with usage errors printed as safe text (exit 2)."""
    command = typer.main.get_command(app)
    for sub in getattr(command, "commands", {}).values():
        add_db_option(sub)  # `--db` after the verb too
    try:
        code = command(standalone_mode=False, prog_name="equity-ledger")
    except ClickException as e:
        buf = io.StringIO()
        e.show(file=buf)
        sys.stderr.write(render.safe_text(buf.getvalue(), newlines=True))
        code = e.exit_code
    except typer.Abort:
        render.err("Aborted!")
        code = 1
    except Exception as e:  # noqa: BLE001  a bug of ours: one line, not a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        render.err(f"error: internal error ({type(e).__name__}: {first}); this is a bug in "
                   f"equity-ledger, please report it ({DEBUG_ENV}=1 shows where it happened)")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
