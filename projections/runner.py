"""Keeps the read models up to date from the event notifications, with a stored position.

Each page of notifications is folded and written in one transaction together with the new
tracking position, so a crash leaves the projections at a page boundary and `catch-up` resumes
from there. Writers are serialised (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR
UPDATE`` on the tracking row), so two catch-ups never fold the same event twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable

from sqlalchemy import and_, delete, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import Connection, Engine, create_engine

from ..ledger.errors import StoreUnavailable
from ..ledger.store import events_table, schema_lock
from ..ledger.terms import terms_in_force
from . import schema as t
from .fold import (
    Adjustment,
    Allotment,
    Departure,
    HoldingDelta,
    IssuanceInfo,
    add_delta,
    effects_of,
    event_type,
    new_row,
)

NAME = "holdings"
PAGE = 5000
PRELOAD_CHUNK = 500  # holders per IN list (SQLite's default limit is 32,766 variables)


def make_engines(url: str, kind: str) -> tuple[Engine, Engine]:
    """(writer, reader) engines. On SQLite the writer takes the write lock at BEGIN."""
    if kind == "sqlite":
        writer = create_engine(url, connect_args={"timeout": 30})
        reader = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(writer, "connect")
        def _no_implicit_begin(dbapi_conn, _rec):  # pysqlite's own BEGIN is deferred
            dbapi_conn.isolation_level = None
            # In WAL mode (the event store sets it) NORMAL syncs at checkpoints, not at every
            # commit: a power cut may lose the last folded pages, never tear one, and catch-up
            # refolds them from the events, whose connection keeps its own FULL setting.
            if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        @event.listens_for(writer, "begin")
        def _begin_immediate(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return writer, reader
    engine = create_engine(url, pool_size=2, max_overflow=2, connect_args={"connect_timeout": 5})
    return engine, engine


@dataclass
class Status:
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


class Projector:
    """Folds events into the ``proj_*`` tables: catch-up, rebuild, status."""

    def __init__(self, ledger: Any, config: Any = None) -> None:
        """`ledger` is the service, or a function returning it: queries that only read the
        projections never need the event store's machinery, so it is opened on first use."""
        self._ledger = ledger
        cfg = config or ledger.config
        self.kind = cfg.kind
        self.writer, self.reader = make_engines(cfg.sqlalchemy_url, cfg.kind)
        try:
            with schema_lock(cfg):
                t.metadata.create_all(self.writer)
                self._ensure_tracking()
        except Exception as e:
            raise StoreUnavailable(f"cannot write store {cfg.display}: {_one_line(e)}") from None
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._issuances: dict[str, dict[str, Any]] = {}
        self._known_position: int | None = None
        self._empty = False
        self._sql = HotStatements(cfg.kind)

    @property
    def ledger(self) -> Any:
        if callable(self._ledger):
            self._ledger = self._ledger()
        return self._ledger

    def close(self) -> None:
        self.writer.dispose()
        self.reader.dispose()

    # ------------------------------------------------------------------ tracking
    def _ensure_tracking(self) -> None:
        with self.writer.begin() as conn:
            found = conn.execute(select(t.tracking.c.position).where(t.tracking.c.name == NAME)).first()
            if found is None:
                conn.execute(insert(t.tracking).values(name=NAME, position=0))
            self._fill_holding_keys(conn)

    def _fill_holding_keys(self, conn: Connection) -> None:
        """A store projected before proj_holding_keys existed gets it filled once, from the
        holding rows (the as-of queries of one issuance walk it)."""
        def has_rows(column: Any) -> bool:
            return conn.execute(select(column).limit(1)).first() is not None

        if has_rows(t.holding_keys.c.issuance) or not has_rows(t.holdings.c.issuance):
            return
        self._lock_position(conn)  # then look again: another process may have filled it
        if has_rows(t.holding_keys.c.issuance):
            return
        h = t.holdings.c
        conn.execute(
            insert(t.holding_keys).from_select(["issuance", "holder"], select(h.issuance, h.holder).distinct())
        )

    def _lock_position(self, conn: Connection) -> int:
        q = select(t.tracking.c.position).where(t.tracking.c.name == NAME)
        if self.kind == "postgresql":
            q = q.with_for_update()
        return int(conn.execute(q).scalar_one())

    def position(self) -> int:
        with self.reader.connect() as conn:
            return int(
                conn.execute(select(t.tracking.c.position).where(t.tracking.c.name == NAME)).scalar_one()
            )

    def status(self) -> Status:
        return Status(self.position(), self.head())

    def head(self) -> int:
        """Position of the last stored event, read with SQLAlchemy (no event-store set-up)."""
        table, column = events_table(self.kind)
        with self.reader.connect() as conn:
            try:
                return int(conn.execute(text(f"SELECT MAX({column}) FROM {table}")).scalar() or 0)
            except DBAPIError:
                return 0  # no event was ever stored: the recorder creates the table on first use

    # ------------------------------------------------------------------ folding
    def catch_up(self, progress: Callable[[int], None] | None = None, page: int = PAGE) -> int:
        """Fold every event after the tracking position; returns how many were folded."""
        done = 0
        while True:
            with self.writer.begin() as conn:
                pos = self._lock_position(conn)
                if pos != self._known_position:
                    # Someone else moved the projections (or this is our first page): what we
                    # hold in memory may be stale.
                    self._latest.clear()
                    self._issuances.clear()
                    self._empty = pos == 0 and self._count_holdings(conn) == 0
                rows = self.ledger.stored_fields(pos + 1, page)
                if rows:
                    self._fold(conn, rows)
                    pos = rows[-1][0]
                    conn.execute(
                        update(t.tracking).where(t.tracking.c.name == NAME).values(position=pos)
                    )
            self._known_position = pos
            done += len(rows)
            if progress and rows:
                progress(len(rows))
            if len(rows) < page:
                return done

    def fold_stored(self, stored: list[tuple[int, Any]]) -> bool:
        """Fold events just stored by this process when they directly follow the projections'
        position; otherwise catch up from the log. True when folded from memory."""
        if not stored:
            return True
        with self.writer.begin() as conn:
            pos = self._lock_position(conn)
            behind = pos != stored[0][0] - 1
            if not behind:
                if pos != self._known_position:
                    self._latest.clear()
                    self._issuances.clear()
                    self._empty = pos == 0 and self._count_holdings(conn) == 0
                self._fold(conn, [(p, event_type(ev), ev) for p, ev in stored])
                last = stored[-1][0]
                conn.execute(update(t.tracking).where(t.tracking.c.name == NAME).values(position=last))
        if behind:
            # Lagging (an earlier run was killed) or a gap in the numbering (PostgreSQL skips
            # the ids of a killed transaction): read the log up to and including this batch.
            self.catch_up()
            return False
        self._known_position = last
        return True

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty the read models and refold them from the first event."""
        with self.writer.begin() as conn:
            self._lock_position(conn)
            for table in t.READ_MODELS:
                conn.execute(delete(table))
            conn.execute(update(t.tracking).where(t.tracking.c.name == NAME).values(position=0))
        self._known_position = None
        return self.catch_up(progress)

    def _count_holdings(self, conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(t.holdings)).scalar_one())

    def _fold(self, conn: Connection, batch: list[tuple[int, str, Any]]) -> None:
        """Fold (position, event type, fields) triples into the tables, in this transaction."""
        inserts: dict[tuple[str, str, date], dict[str, Any]] = {}
        updates: dict[tuple[str, str, date], dict[str, Any]] = {}
        allot_rows: list[dict[str, Any]] = []
        new_keys: list[tuple[str, str]] = []
        adjust_rows: list[dict[str, Any]] = []
        retime: set[str] = set()

        sql = self._sql

        def flush() -> None:
            if inserts:
                sql.insert_holdings(conn, inserts.values())
                inserts.clear()
            if updates:
                sql.update_holdings(conn, updates.values())
                updates.clear()

        effs = [eff for position, kind, fields in batch for eff in effects_of(position, kind, fields)]
        if not self._empty:
            self._preload_latest(conn, effs)
        for eff in effs:
            if isinstance(eff, HoldingDelta):
                key = (eff.issuance, eff.holder)
                latest = self._latest.get(key)  # after the preload: None = a new holding
                if latest is None:
                    new_keys.append(key)
                if latest is None or eff.effective_on > latest["effective_on"]:
                    row = dict(latest) if latest else new_row(eff)
                    row["effective_on"] = eff.effective_on
                    add_delta(row, eff)
                    self._latest[key] = row
                    inserts[(*key, eff.effective_on)] = row
                elif eff.effective_on == latest["effective_on"]:
                    add_delta(latest, eff)
                    pk = (*key, eff.effective_on)
                    if pk not in inserts:
                        updates[pk] = latest
                else:  # a late entry: rewrite this holding's rows from its date on
                    flush()
                    self._backdate(conn, eff)
                    self._latest[key] = self._load_latest(conn, key)
            elif isinstance(eff, Allotment):
                allot_rows.append(eff)
            elif isinstance(eff, IssuanceInfo):
                flush()
                self._upsert_issuance(conn, eff)
                if "shares_per_right" in eff.columns:
                    retime.add(eff.issuance)
            elif isinstance(eff, Adjustment):
                adjust_rows.append(eff.__dict__.copy())
                retime.add(eff.issuance)
            elif isinstance(eff, Departure):
                conn.execute(insert(t.departures).values(holder=eff.holder, departed_on=eff.departed_on))
        flush()
        if new_keys:
            sql.insert_holding_keys(conn, new_keys)
        if allot_rows:
            sql.insert_allotments(conn, allot_rows)
        if adjust_rows:
            conn.execute(insert(t.adjustments), adjust_rows)
        for issuance in sorted(retime):
            self._write_share_terms(conn, issuance)

    def _preload_latest(self, conn: Connection, effs: list[Any]) -> None:
        """Load the latest row of every holding these effects touch and memory lacks, a few
        queries per batch (one SELECT per holding made an apply of 50k commands onto a 50k
        store take 9.7 s instead of 8.6); a holding left out of `_latest` has no row yet."""
        wanted: dict[str, set[str]] = {}
        for eff in effs:
            if isinstance(eff, HoldingDelta) and (eff.issuance, eff.holder) not in self._latest:
                wanted.setdefault(eff.issuance, set()).add(eff.holder)
        h, x = t.holdings.c, t.holdings.alias("x").c
        newest = (
            select(func.max(x.effective_on))
            .where(x.issuance == h.issuance, x.holder == h.holder)
            .scalar_subquery()
        )
        for issuance, holders in sorted(wanted.items()):
            ordered = sorted(holders)
            for i in range(0, len(ordered), PRELOAD_CHUNK):
                q = select(t.holdings).where(
                    h.issuance == issuance, h.holder.in_(ordered[i : i + PRELOAD_CHUNK]), h.effective_on == newest
                )
                for row in conn.execute(q).mappings():
                    self._latest[(row["issuance"], row["holder"])] = dict(row)

    def _load_latest(self, conn: Connection, key: tuple[str, str]) -> dict[str, Any] | None:
        h = t.holdings.c
        row = conn.execute(
            select(t.holdings)
            .where(and_(h.issuance == key[0], h.holder == key[1]))
            .order_by(h.effective_on.desc())
            .limit(1)
        ).mappings().first()
        return dict(row) if row else None

    def _backdate(self, conn: Connection, eff: HoldingDelta) -> None:
        """Add a late delta to the row of its date (made from the row before if missing) and
        to every later row of the holding: the rows stay cumulative."""
        h = t.holdings.c
        where = and_(h.issuance == eff.issuance, h.holder == eff.holder)
        later = [
            dict(r)
            for r in conn.execute(
                select(t.holdings)
                .where(where, h.effective_on >= eff.effective_on)
                .order_by(h.effective_on)
            ).mappings()
        ]
        if not later or later[0]["effective_on"] != eff.effective_on:
            before = conn.execute(
                select(t.holdings)
                .where(where, h.effective_on < eff.effective_on)
                .order_by(h.effective_on.desc())
                .limit(1)
            ).mappings().first()
            row = dict(before) if before else new_row(eff)
            row["effective_on"] = eff.effective_on
            add_delta(row, eff)
            self._sql.insert_holdings(conn, [row])
        for r in later:
            add_delta(r, eff)
        if later:
            self._sql.update_holdings(conn, later)

    def _upsert_issuance(self, conn: Connection, eff: IssuanceInfo) -> None:
        c = t.issuances.c
        exists = conn.execute(select(c.issuance).where(c.issuance == eff.issuance)).first()
        if exists:
            conn.execute(update(t.issuances).where(c.issuance == eff.issuance).values(**eff.columns))
        else:
            conn.execute(insert(t.issuances).values(issuance=eff.issuance, **eff.columns))

    def _write_share_terms(self, conn: Connection, issuance: str) -> None:
        """Recompute the terms in force over time for one issuance (few rows: one per date)."""
        c = t.issuances.c
        info = conn.execute(select(t.issuances).where(c.issuance == issuance)).mappings().first()
        conn.execute(delete(t.share_terms).where(t.share_terms.c.issuance == issuance))
        if info is None or info["shares_per_right"] is None:
            return
        a = t.adjustments.c
        adjustments = [
            (r.effective_on.toordinal(), r.ratio)
            for r in conn.execute(
                select(a.effective_on, a.ratio).where(a.issuance == issuance).order_by(a.effective_on, a.position)
            )
        ]
        base = (Fraction(info["shares_per_right"]), info["exercise_price_per_share"])
        rows = [(info["resolved_on"].toordinal(), *base)] + terms_in_force(
            info["shares_per_right"], info["exercise_price_per_share"], info["currency"], adjustments
        )
        conn.execute(
            insert(t.share_terms),
            [
                {
                    "issuance": issuance,
                    "effective_on": date.fromordinal(o),
                    "spr_num": spr.numerator,
                    "spr_den": spr.denominator,
                    "exercise_price": price,
                }
                for o, spr, price in _dedupe(rows)
            ],
        )


def _dedupe(rows: list[tuple[int, Fraction, Any]]) -> list[tuple[int, Fraction, Any]]:
    out: dict[int, tuple[int, Fraction, Any]] = {}
    for r in rows:
        out[r[0]] = r  # a later row of the same date wins (adjustments of the resolution date)
    return [out[k] for k in sorted(out)]


class HotStatements:
    """The statements a fold runs once per event, as plain driver SQL with tuples.

    SQLAlchemy's per-row parameter processing cost more than the inserts themselves (about a
    third of a rebuild: bench/results/profile-rebuild-100000.txt), so the hot rows skip it. The
    values are written exactly as the table types would write them (dates as ISO text on
    SQLite, money as plain decimal text), so SQLAlchemy reads them back unchanged.
    """

    def __init__(self, kind: str) -> None:
        mark = "?" if kind == "sqlite" else "%s"
        self.date = date.isoformat if kind == "sqlite" else _same
        cols = [c.name for c in t.holdings.columns]
        keys = ("issuance", "holder", "effective_on")
        values = [c for c in cols if c not in keys]
        self._insert_holding = (
            f"INSERT INTO {t.holdings.name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        )
        self._update_holding = (
            f"UPDATE {t.holdings.name} SET {', '.join(f'{c} = {mark}' for c in values)} "
            f"WHERE {' AND '.join(f'{c} = {mark}' for c in keys)}"
        )
        # The tuple builders below spell the tables' column order out: a column added to a
        # table and not to them must fail here, not write figures into the wrong columns.
        acols = [c.name for c in t.allotments.columns]
        if cols != list(_HOLDING_ORDER) or acols != list(_ALLOTMENT_ORDER):
            raise RuntimeError(f"HotStatements is out of date with the tables: {cols}, {acols}")
        self._insert_key = f"INSERT INTO {t.holding_keys.name} (issuance, holder) VALUES ({mark}, {mark})"
        self._insert_allotment = (
            f"INSERT INTO {t.allotments.name} ({', '.join(acols)}) VALUES ({', '.join([mark] * len(acols))})"
        )

    def _holding(self, r: dict[str, Any]) -> tuple[Any, ...]:
        d = self.date
        return (
            r["issuance"], r["holder"], d(r["effective_on"]), r["name"], r["grp"],
            d(r["last_allot_on"]), r["last_allot_pos"], r["allotted"], r["exercised"],
            r["forfeited"], r["expired"], r["shares_delivered"], _money(r["amount_offset"]),
            _money(r["amount_paid"]), _money(r["exercise_price_paid"]), r["currency"],
        )

    def insert_holdings(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.exec_driver_sql(self._insert_holding, [self._holding(r) for r in rows])

    def update_holdings(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        # SET columns first, then the key: the holding tuple rotated by the key's 3 columns.
        conn.exec_driver_sql(self._update_holding, [(*v[3:], *v[:3]) for v in map(self._holding, rows)])

    def insert_holding_keys(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        conn.exec_driver_sql(self._insert_key, keys)

    def insert_allotments(self, conn: Connection, rows: Iterable[Allotment]) -> None:
        d = self.date
        conn.exec_driver_sql(
            self._insert_allotment,
            [(a.position, a.issuance, a.holder, d(a.allotted_on), a.rights, a.payment, _money(a.amount))
             for a in rows],
        )


_HOLDING_ORDER = (
    "issuance", "holder", "effective_on", "name", "grp", "last_allot_on", "last_allot_pos",
    "allotted", "exercised", "forfeited", "expired", "shares_delivered", "amount_offset",
    "amount_paid", "exercise_price_paid", "currency",
)
_ALLOTMENT_ORDER = ("position", "issuance", "holder", "allotted_on", "rights", "payment", "amount")


def _same(value: Any) -> Any:
    return value


def _money(value: Decimal) -> str:
    return format(value, "f")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
