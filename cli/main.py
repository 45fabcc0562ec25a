"""The `equity-ledger` command line (typer).

Every verb that changes the ledger builds a command object exactly like a line of a command
file and hands it to the one application service (:class:`equity_ledger.ledger.application.Ledger`);
queries read the projection tables only.
"""

from __future__ import annotations

import functools
import sys
from datetime import date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer

from ..ledger.errors import BadCommand, LedgerError, StoreUnavailable
from . import render
from .context import opened

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="An event-sourced ledger of equity awards (stock acquisition rights).",
)
projections_app = typer.Typer(no_args_is_help=True, help="Read models: status, catch-up, rebuild.")
audit_app = typer.Typer(no_args_is_help=True, help="Tamper evidence: verify, digest, replay.")
app.add_typer(projections_app, name="projections")
app.add_typer(audit_app, name="audit")


class By(str, Enum):
    person = "person"
    group = "group"
    issuance = "issuance"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class HistoryFormat(str, Enum):
    table = "table"
    json = "json"


_state: dict[str, Any] = {"db": None}


@app.callback()
def main(
    db: Optional[str] = typer.Option(
        None,
        "--db",
        help="SQLAlchemy URL of the store (default: $EQUITY_LEDGER_DB or sqlite:///equity-ledger.sqlite).",
        show_default=False,
    ),
) -> None:
    _state["db"] = db


def _store_error(e: BaseException) -> bool:
    import sqlite3

    mods = ("eventsourcing", "sqlalchemy", "psycopg", "sqlite3", "psycopg_pool")
    return isinstance(e, (sqlite3.Error, OSError)) or type(e).__module__.split(".")[0] in mods


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
                where = store_config(_state["db"]).display
            except LedgerError:
                where = str(_state["db"])
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            render.err(f"error: cannot use store {where}: {first}")
            raise typer.Exit(1) from None

    return wrapper


def _as_of(value: Optional[str]) -> Optional[date]:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint="--as-of") from None


def _warn_if_lagging(store: Any) -> None:
    st = store.projector.status()
    if st.lag:
        render.err(
            f"warning: the projections are {st.lag} events behind the log (position "
            f"{st.position} of {st.head}); run `equity-ledger projections catch-up`"
        )


# --------------------------------------------------------------------------- store
@app.command()
@handled
def init() -> None:
    """Create an empty store (events, chain, command ids, projections)."""
    with opened(_state["db"]) as store:
        store.projector.status()
        render.out(f"store ready: {store.config.display}")


# --------------------------------------------------------------------------- apply
def _read_commands(source: Any, progress: Any = None) -> Iterator[Any]:
    from ..ledger.commands import parse_line

    for n, raw in enumerate(source, 1):
        if progress is not None:
            progress(len(raw))
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        cmd = parse_line(raw, n)
        if cmd is not None:
            yield cmd


def apply_commands(store: Any, commands: Any) -> Any:
    """Apply parsed commands, then bring the projections up to date (also after a refusal)."""
    refusal: Optional[LedgerError] = None
    report: Any = None
    store.ledger.on_stored = store.projector.fold_stored
    try:
        report = store.ledger.apply(commands)
    except LedgerError as e:
        refusal = e
    if isinstance(refusal, StoreUnavailable):
        raise refusal
    store.projector.catch_up()
    if refusal is not None:
        raise refusal
    return report


def apply_stream(store: Any, source: Any, show_progress: bool, total_bytes: Optional[int]) -> Any:
    """Apply a command file (binary lines), with a progress bar on request."""
    if not show_progress:
        return apply_commands(store, _read_commands(source))
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("applying"), BarColumn(), DownloadColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=render._console(stderr=True), transient=True) as bar:
        task = bar.add_task("apply", total=total_bytes)
        return apply_commands(store, _read_commands(source, lambda n: bar.advance(task, n)))


@app.command()
@handled
def apply(
    file: str = typer.Argument(..., metavar="FILE|-", help="A JSON Lines command file, or - for stdin."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
    ),
) -> None:
    """Apply a command file in order; stops at the first refused command."""
    if file == "-":
        source = sys.stdin.buffer
        total = None
    else:
        path = Path(file)
        if not path.is_file():
            raise typer.BadParameter(f"{file}: no such file", param_hint="FILE")
        source = path.open("rb")
        total = path.stat().st_size
    show = progress if progress is not None else sys.stderr.isatty()
    try:
        with opened(_state["db"]) as store:
            report = apply_stream(store, source, show, total)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    render.out(
        f"applied {report.applied} commands ({report.events} events), "
        f"skipped {report.skipped} already applied"
    )


# --------------------------------------------------------------------------- queries
HOLDING_COLUMNS = [
    ("rights_allotted", "allotted", True),
    ("rights_exercised", "exercised", True),
    ("rights_forfeited", "forfeited", True),
    ("rights_expired", "expired", True),
    ("rights_outstanding", "outstanding", True),
    ("shares_underlying", "shares underlying", True),
    ("shares_delivered", "shares delivered", True),
    ("amount_offset", "amount offset", True),
    ("exercise_price_paid", "exercise price paid", True),
    ("currency", "ccy", False),
]


def holdings_rows(store: Any, by: str, issuance: Optional[str], as_of: Optional[date]) -> list[dict[str, Any]]:
    from ..projections import queries

    with store.projector.reader.connect() as conn:
        return queries.holdings(conn, by, issuance, as_of)


def print_holdings(
    rows: list[dict[str, Any]], by: str, fmt: str, title: Optional[str] = None,
    totals: Optional[list[dict[str, Any]]] = None, caption: Optional[str] = None,
) -> None:
    if fmt == "json":
        render.out(render.to_json(rows))
        return
    if fmt == "csv":
        sys.stdout.write(render.to_csv(rows))
        return
    if by == "person":
        key_cols = [("holder", "holder", False), ("name", "name", False), ("group", "group", False)]
    elif by == "group":
        key_cols = [("group", "group", False), ("holders", "holders", True)]
    else:
        key_cols = [("issuance", "issuance", False), ("holders", "holders", True)]
    render.table(title, key_cols + HOLDING_COLUMNS, rows, totals or [], caption=caption)


def _totals(store: Any, by: str, issuance: Optional[str], as_of: Optional[date]) -> list[dict[str, Any]]:
    rows = holdings_rows(store, "all", issuance, as_of)
    if by != "group":
        for r in rows:
            r["holder"] = r["issuance"] = "all"
    return rows


@app.command()
@handled
def holdings(
    by: By = typer.Option(By.person, "--by", help="One row per person, group or issuance."),
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only this issuance."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Holdings by person, group or issuance, now or as at a date."""
    day = _as_of(as_of)
    with opened(_state["db"]) as store:
        store.require_existing()
        _warn_if_lagging(store)
        rows = holdings_rows(store, by.value, issuance, day)
        totals = _totals(store, by.value, issuance, day) if fmt == Format.table else None
    when = f"as at {day.isoformat()}" if day else "all recorded events"
    scope = f"issuance {issuance}" if issuance else "all issuances"
    print_holdings(rows, by.value, fmt.value, f"Holdings by {by.value}, {scope}, {when}", totals)


REGISTER_COLUMNS = [
    ("holder", "holder", False),
    ("name", "name", False),
    ("group", "group", False),
    ("rights_held", "rights held", True),
    ("rights_allotted", "allotted", True),
    ("shares_per_right", "shares/right", True),
    ("share_class", "class", False),
    ("exercise_price_per_share", "exercise price/share", True),
    ("exercise_from", "exercise from", False),
    ("exercise_to", "exercise to", False),
    ("acquired_on", "acquired on", False),
    ("amount_paid", "amount paid", True),
    ("payment", "payment", False),
    ("currency", "ccy", False),
]


@app.command()
@handled
def register(
    issuance: str = typer.Argument(..., help="The issuance id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """The register of stock acquisition rights of one issuance (Companies Act art. 249)."""
    from ..projections import queries

    day = _as_of(as_of)
    with opened(_state["db"]) as store:
        store.require_existing()
        _warn_if_lagging(store)
        with store.projector.reader.connect() as conn:
            info, rows = queries.register(conn, issuance, day)
    if fmt == Format.json:
        render.out(render.to_json(rows))
        return
    if fmt == Format.csv:
        sys.stdout.write(render.to_csv(rows, [c for c, _h, _n in REGISTER_COLUMNS]))
        return
    shown = [dict(r, acquired_on=", ".join(r["acquired_on"]), payment=", ".join(r["payment"])) for r in rows]
    total = {
        "holder": "total",
        "name": f"{len(rows)} holders",
        "rights_held": sum(r["rights_held"] for r in rows),
        "rights_allotted": sum(r["rights_allotted"] for r in rows),
        "amount_paid": str(sum((Decimal(r["amount_paid"]) for r in rows), Decimal(0))),
        "currency": info.get("currency"),
    }
    when = f"as at {day.isoformat()}" if day else "all recorded events"
    title = (
        f"Register of stock acquisition rights: {info['issuance']} ({info['title']}), "
        f"{info['issuer']}, {when}"
    )
    render.table(title, REGISTER_COLUMNS, shown, [total] if rows else [])


@app.command()
@handled
def history(
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only events of this issuance."),
    holder: Optional[str] = typer.Option(None, "--holder", help="Only events of this holder."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format"),
) -> None:
    """Every stored event in store order, with its dates, figures, command id, actor and reason."""
    from ..projections.history import history_rows

    with opened(_state["db"]) as store:
        store.require_existing()
        rows = history_rows(store.ledger, issuance=issuance, holder=holder)
        if fmt == HistoryFormat.json:
            render.out(render.to_json(list(rows)))
            return
        from ..projections.history import figures_text

        columns = [
            ("position", "#", True),
            ("effective_on", "effective", False),
            ("type", "event", False),
            ("issuance", "issuance", False),
            ("holder", "holder", False),
            ("figures", "figures", False),
            ("command_id", "command id", False),
            ("actor", "actor", False),
            ("reason", "reason", False),
            ("recorded_at", "recorded at (UTC)", False),
        ]
        render.table("History", columns, (dict(r, figures=figures_text(r)) for r in rows))


# --------------------------------------------------------------------------- demo
DEMO_FILE = "iij-2013-sar.jsonl"
DEMO_ALLOTMENT_DATE = date(2013, 7, 31)


@app.command()
@handled
def demo() -> None:
    """Build the IIJ 2013 issuance from the seed in the store and print holdings by group."""
    from importlib.resources import files

    sample = files("equity_ledger.ledger").joinpath("samples", DEMO_FILE)
    with opened(_state["db"]) as store:
        with sample.open("rb") as source:
            report = apply_stream(store, source, False, None)
        at_allotment = holdings_rows(store, "group", "iij-2013-sar", DEMO_ALLOTMENT_DATE)
        totals_then = _totals(store, "group", "iij-2013-sar", DEMO_ALLOTMENT_DATE)
        today = date.today()
        now = holdings_rows(store, "group", "iij-2013-sar", today)
        totals_now = _totals(store, "group", "iij-2013-sar", today)
    render.out(
        "IIJ 2013 stock-compensation-type stock acquisition rights (seed: press release of "
        "2013-07-11)\n"
        f"store: {store.config.display}; applied {report.applied} commands, "
        f"{report.skipped} already there"
    )
    print_holdings(
        at_allotment, "group", "table",
        f"Holdings by group as at {DEMO_ALLOTMENT_DATE.isoformat()} (after the allotment)",
        totals_then,
    )
    if now != at_allotment:
        print_holdings(
            now, "group", "table",
            f"Holdings by group as at {today.isoformat()} (today: after the 1:2 splits of "
            "2021-01-01 and 2022-10-01)",
            totals_now,
        )
    render.out(
        "Facts from the seed: 89 rights of 200 common shares, JPY 647,000 a right paid by offset "
        "of remuneration claims; 7 directors (60 rights), 10 executive officers (29 rights).\n"
        "Facts from the company's notices: resolution of 2013-06-26 for at most 135 rights; "
        "1:2 splits effective 2021-01-01 and 2022-10-01.\n"
        "ILLUSTRATIVE ASSUMPTIONS (not in the seed): the holders' names and ids, the split of "
        "each group's rights between persons, the allotment date 2013-07-29, the exercise price "
        "JPY 1 a share, the exercise period 2013-07-30..2043-07-29 with a 10-day window after "
        "leaving office, and the departure (2019-06-30) and exercise (2019-07-05) of e10."
    )


# --------------------------------------------------------------------------- projections
@projections_app.command("status")
@handled
def projections_status() -> None:
    """Position of the projections against the head of the log."""
    with opened(_state["db"]) as store:
        store.require_existing()
        st = store.projector.status()
    state = "up to date" if st.lag == 0 else f"{st.lag} events behind"
    render.out(f"projections at position {st.position}, log head {st.head}: {state}")


def _with_progress(label: str, total: int, work: Callable[[Callable[[int], None]], int]) -> int:
    if not sys.stderr.isatty():
        return work(lambda n: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=render._console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        return work(lambda n: bar.advance(task, n))


@projections_app.command("catch-up")
@handled
def projections_catch_up() -> None:
    """Fold the events recorded since the projections' position."""
    with opened(_state["db"]) as store:
        store.require_existing()
        st = store.projector.status()
        n = _with_progress("catching up", st.lag, store.projector.catch_up)
        st = store.projector.status()
    render.out(f"folded {n} events; projections at position {st.position} of {st.head}")


@projections_app.command("rebuild")
@handled
def projections_rebuild() -> None:
    """Empty the read models and refold them from the first event."""
    with opened(_state["db"]) as store:
        store.require_existing()
        head = store.ledger.head_position()
        n = _with_progress("rebuilding", head, store.projector.rebuild)
    render.out(f"rebuilt the projections from {n} events")


# --------------------------------------------------------------------------- audit
def _read_digest(value: str) -> Any:
    from ..ledger.audit import Digest

    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise typer.BadParameter(f"{value}: no such file, and not a JSON digest", param_hint="--digest")
        text = path.read_text(encoding="utf-8").strip().splitlines()[-1] if path.stat().st_size else ""
    try:
        return Digest.parse(text)
    except ValueError as e:
        raise BadCommand(f"--digest: not a digest ({e})") from None


@audit_app.command("digest")
@handled
def audit_digest() -> None:
    """Print the head of the hash chain as one JSON line to keep outside the database."""
    from ..ledger.audit import head_digest

    with opened(_state["db"]) as store:
        store.require_existing()
        render.out(head_digest(store.ledger.recorder).to_json())


@audit_app.command("verify")
@handled
def audit_verify(
    digest: Optional[str] = typer.Option(None, "--digest", metavar="FILE|JSON",
                                         help="A digest kept earlier that the history must still extend."),
) -> None:
    """Recompute the chain, check versions and command ids, and projections == a fresh replay."""
    import time

    from ..ledger.audit import verify_log
    from ..projections.verify import verify_projections

    kept = _read_digest(digest) if digest is not None else None
    started = time.perf_counter()
    with opened(_state["db"]) as store:
        store.require_existing()
        head = store.ledger.head_position()
        report = _with_progress("verifying the log", head,
                                lambda p: verify_log(store.ledger.recorder, kept, progress=p))
        if report.finding is not None:
            render.err(f"audit: FAILED at {report.finding}")
            raise typer.Exit(1)
        status = store.projector.status()
        with store.projector.reader.connect() as conn:
            finding = _with_progress(
                "replaying for the projections", status.position,
                lambda p: verify_projections(store.ledger, conn, status.position, progress=p),
            )
        if finding is not None:
            render.err(f"audit: FAILED: {finding}")
            raise typer.Exit(1)
    took = time.perf_counter() - started
    lines = [
        f"audit: OK: {report.events} events, chain intact, versions contiguous, command ids mapped",
        f"head: position {report.head.position}, hash {report.head.hash}",
        f"projections equal a fresh replay up to position {status.position}"
        + (f" ({status.lag} newer events not yet projected: run `projections catch-up`)" if status.lag else ""),
    ]
    if kept is not None:
        lines.append(f"the history extends the kept digest at position {kept.position}")
    lines.append(f"took {took:.2f} s")
    render.out("\n".join(lines))


@audit_app.command("replay")
@handled
def audit_replay(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format"),
) -> None:
    """Rebuild holdings from the raw events alone and compare them with the projections."""
    from ..projections.verify import replay_holdings

    day = _as_of(as_of)
    with opened(_state["db"]) as store:
        store.require_existing()
        replayed = {by: replay_holdings(store.ledger.iter_events(), day, by) for by in ("person", "group", "issuance")}
        live = {by: holdings_rows(store, by, None, day) for by in ("person", "group", "issuance")}
    difference = None
    for by in ("person", "group", "issuance"):
        a, b = replayed[by], live[by]
        for i in range(max(len(a), len(b))):
            ra = a[i] if i < len(a) else None
            rb = b[i] if i < len(b) else None
            if ra != rb:
                key = (ra or rb or {}).get(by if by != "person" else "holder")
                field = next((k for k in (ra or rb or {}) if (ra or {}).get(k) != (rb or {}).get(k)), "row")
                difference = (
                    f"holdings by {by}, {key}: {field} is {(rb or {}).get(field)!r} in the projections, "
                    f"{(ra or {}).get(field)!r} in the replay"
                )
                break
        if difference:
            break
    when = f"as at {day.isoformat()}" if day else "all recorded events"
    if fmt == HistoryFormat.json:
        render.out(render.to_json(replayed["person"]))
    else:
        print_holdings(replayed["person"], "person", "table", f"Replayed from the raw events: holdings by person, {when}")
    if difference:
        render.err(f"replay: DIFFERS from the projections: {difference}")
        raise typer.Exit(1)
    render.err(f"replay: equal to the projections ({when})")


def run() -> None:
    """Console-script entry point."""
    app()


from . import verbs  # noqa: E402,F401  (registers the per-type verbs on `app`)

