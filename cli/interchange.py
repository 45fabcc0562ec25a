"""`export ocf PATH` and `import ocf PATH`: move a cap table in and out as an OCF 1.2.0 bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import typer

from ..bootstrap import open_books
from ..ledger.errors import BadCommand, LedgerError
from . import render
from .app import app, db_url, handled, parse_date

export_app = typer.Typer(no_args_is_help=True, help="Write the ledger in another format.")
import_app = typer.Typer(no_args_is_help=True, help="Read a cap table written in another format.")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


@export_app.command("ocf")
@handled
def export_ocf(
    path: str = typer.Argument(..., metavar="PATH", help="A folder, or a file ending in .zip."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Only events dated on or before DATE."),
    country: str = typer.Option("JP", "--country", help="The issuer's country of formation (ISO 3166-1 alpha-2)."),
    formation_date: Optional[str] = typer.Option(
        None, "--formation-date", help="The issuer's formation date (default: the first resolution's date)."),
) -> None:
    """Write the ledger as an Open Cap Table Format (OCF 1.2.0) bundle."""
    from ..interchange.bundle import write_bundle
    from ..interchange.export import build_bundle
    from ..interchange.ledger_log import read_facts

    day = parse_date(as_of)
    formed = parse_date(formation_date, "--formation-date")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise typer.BadParameter(f"'{render.safe_text(country)}' is not an ISO 3166-1 alpha-2 code",
                                 param_hint="--country")
    target = Path(path)
    if target.exists() and not target.is_dir() and not path.lower().endswith(".zip"):
        raise typer.BadParameter(f"{render.safe_text(path)}: exists and is not a folder", param_hint="PATH")
    with open_books(db_url()) as books, books.reading() as view:
        facts = read_facts(view.log.iter_events(), day)
    bundle = build_bundle(facts, as_of=day, country=country, formation_date=formed)
    try:
        write_bundle(bundle, target)
    except OSError as e:
        raise LedgerError(f"cannot write {path}: {e.strerror or e}") from None
    f = bundle.files
    render.out(f"wrote {render.safe_text(path)}: OCF 1.2.0 as of {bundle.manifest['as_of']}, "
               f"{len(f['stakeholders'])} stakeholders, {len(f['stock_plans'])} stock plans, "
               f"{len(f['transactions'])} transactions")


@import_app.command("ocf")
@handled
def import_ocf(
    path: str = typer.Argument(..., metavar="PATH", help="A bundle: a folder or a zip holding Manifest.ocf.json."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the commands to FILE (JSON Lines) instead of applying them."),
    strict: bool = typer.Option(False, "--strict", help="Refuse a bundle holding transactions the ledger cannot hold."),
) -> None:
    """Read an OCF bundle: its option grants and what happened to them, as commands."""
    from ..interchange.bundle import BundleError, read_bundle
    from ..interchange.importer import ImportRefused, map_bundle
    from ..ledger.commands import parse_command

    if not Path(path).exists():
        raise typer.BadParameter(f"{render.safe_text(path)}: no such file or folder", param_hint="PATH")
    try:
        imported = map_bundle(read_bundle(path))
    except (BundleError, ImportRefused) as e:
        raise LedgerError(f"{e}") from None
    except (KeyError, TypeError, ValueError) as e:  # a field OCF requires, missing in a foreign file
        raise LedgerError(f"cannot map the bundle: {type(e).__name__}: {e}") from None
    for note in imported.notes:
        render.err(f"note: {note}")
    for kind, count in sorted(imported.skipped.items()):
        render.err(f"{'refused' if strict else 'skipped'}: {count} {kind} (the ledger cannot hold it)")
    if strict and imported.skipped:
        raise LedgerError(f"refused (--strict): {sum(imported.skipped.values())} transactions the "
                          "ledger cannot hold; nothing imported")
    if out is not None:  # for review: `apply` checks every line when the file is applied
        text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in imported.commands)
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise LedgerError(f"cannot write {out}: {e.strerror or e}") from None
        render.out(f"wrote {len(imported.commands)} commands to {render.safe_text(out)}")
        return
    commands = []
    for obj in imported.commands:
        try:
            commands.append(parse_command(obj))
        except BadCommand as e:
            raise LedgerError(f"OCF {imported.sources.get(obj['id'], obj['id'])}: {e}") from None
    with open_books(db_url()) as books:
        try:
            report = books.apply(commands)
        except LedgerError as e:
            done = getattr(e, "report", None)
            at = done.applied + done.skipped if done is not None else None
            source = (imported.sources.get(commands[at].id) if at is not None and at < len(commands) else None)
            if source is None:
                raise
            raise LedgerError(f"OCF {source}: {e} (before it: {done.applied} commands applied, "
                              f"{done.skipped} already applied)") from None
    render.out(f"imported {report.applied} commands ({report.events} events), "
               f"skipped {report.skipped} already applied")

