"""Executes a :class:`.plan.Plan` on a connection, in the caller's transaction.

The rows that grow with the log (holding, key and allotment rows) go through
:class:`HotStatements`; the few others through SQLAlchemy Core.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from . import schema as t
from .fold import Allotment, add_delta, new_row
from .plan import (
    Backdate,
    EraseDetails,
    InsertDeparture,
    InsertDetails,
    InsertHoldings,
    Key,
    Plan,
    Row,
    UpdateHoldings,
    UpsertIssuance,
)
from .share_terms import share_terms_rows

PRELOAD_CHUNK = 500  # holders per IN list (SQLite's default limit is 32,766 variables)


def _latest_grouped(issuance: str, holders: list[str]) -> Any:
    h = t.holdings.c
    newest = (
        select(h.issuance, h.holder, func.max(h.effective_on).label("newest"))
        .where(h.issuance == issuance, h.holder.in_(holders))
        .group_by(h.issuance, h.holder)
        .subquery()
    )
    return select(t.holdings).join(newest, and_(
        h.issuance == newest.c.issuance, h.holder == newest.c.holder, h.effective_on == newest.c.newest,
    ))


_NAMES = ", ".join(c.name for c in t.holdings.columns)  # in this order: .columns() maps by position
_LATERAL = text(
    f"SELECT {_NAMES} FROM unnest(CAST(:holders AS text[])) AS u(wanted) CROSS JOIN LATERAL ("
    f" SELECT {_NAMES} FROM {t.holdings.name} WHERE issuance = :issuance AND holder = u.wanted"
    " ORDER BY effective_on DESC LIMIT 1) AS l"
).columns(*t.holdings.columns)


def _latest_lateral(issuance: str, holders: list[str]) -> Any:
    return _LATERAL.bindparams(issuance=issuance, holders=holders)


class Writer:
    """Runs plans, and reads what a plan needs (latest rows), on one backend's connections."""

    def __init__(self, kind: str) -> None:
        self.sql = HotStatements(kind)
        self.kind = kind

    def execute(self, conn: Connection, plan: Plan) -> None:
        """Make every write of `plan`, in order, in the connection's transaction."""
        sql = self.sql
        for step in plan.steps:
            if isinstance(step, InsertHoldings):
                sql.insert_holdings(conn, step.rows)
            elif isinstance(step, UpdateHoldings):
                sql.update_holdings(conn, step.rows)
            elif isinstance(step, Backdate):
                self._backdate(conn, step)
            elif isinstance(step, UpsertIssuance):
                self._upsert_issuance(conn, step)
            elif isinstance(step, InsertDeparture):
                conn.execute(insert(t.departures).values(holder=step.holder, departed_on=step.departed_on))
            elif isinstance(step, InsertDetails):
                d = step.details
                conn.execute(insert(t.holder_details).values(
                    holder=d.holder, effective_on=d.effective_on, position=d.position, nonce=d.nonce,
                    ciphertext=d.ciphertext))
            elif isinstance(step, EraseDetails):
                e = step.erasure
                conn.execute(delete(t.holder_details).where(t.holder_details.c.holder == e.holder))
                conn.execute(insert(t.holder_erasures).values(holder=e.holder, position=e.position))
            else:  # pragma: no cover - a step type added to the plan and not here
                raise TypeError(f"unknown plan step {step!r}")
        if plan.new_keys:
            sql.insert_holding_keys(conn, plan.new_keys)
        if plan.allotments:
            sql.insert_allotments(conn, plan.allotments)
        if plan.adjustments:
            conn.execute(insert(t.adjustments), [a.__dict__.copy() for a in plan.adjustments])
        for issuance in plan.share_terms:
            self._write_share_terms(conn, issuance)
        if plan.exercises:
            conn.execute(insert(t.exercises), [
                {"position": e.position, "issuance": e.issuance, "holder": e.holder,
                 "exercised_on": e.exercised_on, "rights": e.rights,
                 "shares_delivered": e.shares_delivered, "share_price": e.share_price}
                for e in plan.exercises
            ])

    def load_latest(self, conn: Connection, wanted: dict[str, set[str]], into: dict[Key, Row]) -> None:
        """Put the latest row of every wanted holding that has one into `into`, a few queries
        per batch (one SELECT per holding made an apply of 50k commands onto a 50k store take
        9.7 s instead of 8.6); a holding left out has no row yet.

        Each holding's latest row is found by one seek, not by comparing every dated row of it
        with a correlated MAX: on PostgreSQL one backward index seek per holder of an array
        (LATERAL), on SQLite each holding's latest date grouped once and its row joined."""
        latest = _latest_lateral if self.kind == "postgresql" else _latest_grouped
        for issuance, holders in sorted(wanted.items()):
            ordered = sorted(holders)
            for i in range(0, len(ordered), PRELOAD_CHUNK):
                result = conn.execute(latest(issuance, ordered[i : i + PRELOAD_CHUNK]))
                names = list(result.keys())
                for values in result:
                    row = dict(zip(names, values))
                    into[(row["issuance"], row["holder"])] = row

    def has_holdings(self, conn: Connection) -> bool:
        return conn.execute(select(t.holdings.c.issuance).limit(1)).first() is not None

    def _backdate(self, conn: Connection, step: Backdate) -> None:
        eff = step.delta
        h = t.holdings.c
        where = and_(h.issuance == eff.issuance, h.holder == eff.holder)
        later = [
            dict(r)
            for r in conn.execute(
                select(t.holdings).where(where, h.effective_on >= eff.effective_on).order_by(h.effective_on)
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
            self.sql.insert_holdings(conn, [row])
        for r in later:
            add_delta(r, eff)
        if later:
            self.sql.update_holdings(conn, later)

    def _upsert_issuance(self, conn: Connection, step: UpsertIssuance) -> None:
        c = t.issuances.c
        exists = conn.execute(select(c.issuance).where(c.issuance == step.issuance)).first()
        if exists:
            conn.execute(update(t.issuances).where(c.issuance == step.issuance).values(**step.columns))
        else:
            conn.execute(insert(t.issuances).values(issuance=step.issuance, **step.columns))

    def _write_share_terms(self, conn: Connection, issuance: str) -> None:
        """Recompute the terms in force over time of one issuance (few rows: one per date)."""
        c = t.issuances.c
        info = conn.execute(select(t.issuances).where(c.issuance == issuance)).mappings().first()
        conn.execute(delete(t.share_terms).where(t.share_terms.c.issuance == issuance))
        if info is None or info["shares_per_right"] is None:
            return
        a = t.adjustments.c
        adjustments = conn.execute(
            select(a.effective_on, a.ratio).where(a.issuance == issuance).order_by(a.effective_on, a.position)
        ).all()
        rows = share_terms_rows(
            info["resolved_on"], info["shares_per_right"], info["exercise_price_per_share"],
            info["currency"], [(d, r) for d, r in adjustments],
        )
        conn.execute(
            insert(t.share_terms),
            [
                {"issuance": issuance, "effective_on": d, "spr_num": spr.numerator,
                 "spr_den": spr.denominator, "exercise_price": price}
                for d, spr, price in rows
            ],
        )


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
        # PostgreSQL: the inserted rows go through COPY (a third of executemany's time per row
        # there); SQLite's executemany is already a C loop.
        self._copy = kind != "sqlite"
        if self._copy:
            self._insert_holding = _copy_statement(t.holdings)
            self._insert_key = _copy_statement(t.holding_keys)
            self._insert_allotment = _copy_statement(t.allotments)

    def _insert(self, conn: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self._copy:
            # On the connection's own driver connection, so inside its transaction.
            with conn.connection.driver_connection.cursor() as cursor:
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            conn.exec_driver_sql(statement, rows)

    def _holding(self, r: dict[str, Any]) -> tuple[Any, ...]:
        d = self.date
        return (
            r["issuance"], r["holder"], d(r["effective_on"]), r["name"], r["grp"],
            d(r["last_allot_on"]), r["last_allot_pos"], r["allotted"], r["exercised"],
            r["forfeited"], r["expired"], r["shares_delivered"], _money(r["amount_offset"]),
            _money(r["amount_paid"]), _money(r["exercise_price_paid"]), r["currency"],
        )

    def insert_holdings(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        self._insert(conn, self._insert_holding, [self._holding(r) for r in rows])

    def update_holdings(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        # SET columns first, then the key: the holding tuple rotated by the key's 3 columns.
        conn.exec_driver_sql(self._update_holding, [(*v[3:], *v[:3]) for v in map(self._holding, rows)])

    def insert_holding_keys(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        self._insert(conn, self._insert_key, keys)

    def insert_allotments(self, conn: Connection, rows: Iterable[Allotment]) -> None:
        d = self.date
        self._insert(
            conn,
            self._insert_allotment,
            [(a.position, a.issuance, a.holder, d(a.allotted_on), a.rights, a.payment, _money(a.amount))
             for a in rows],
        )


# Spelled out as _holding spells them (not made from fold.FIGURES, as the table is): the check
# in HotStatements compares the two.
_HOLDING_ORDER = (
    "issuance", "holder", "effective_on", "name", "grp", "last_allot_on", "last_allot_pos",
    "allotted", "exercised", "forfeited", "expired", "shares_delivered", "amount_offset",
    "amount_paid", "exercise_price_paid", "currency",
)
_ALLOTMENT_ORDER = ("position", "issuance", "holder", "allotted_on", "rights", "payment", "amount")


def _copy_statement(table: Any) -> str:
    """``COPY table (columns) FROM STDIN`` (PostgreSQL): the columns in the table's order."""
    return f"COPY {table.name} ({', '.join(c.name for c in table.columns)}) FROM STDIN"


def _same(value: Any) -> Any:
    return value


def _money(value: Decimal) -> str:
    return format(value, "f")
