"""Read-only queries over the projection tables (indexed seeks, never a replay)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ..ledger.errors import UnknownIssuance
from . import report
from . import schema as t


def latest_rows(conn: Connection, as_of: date | None, issuance: str | None) -> list[dict[str, Any]]:
    """One cumulative row per (issuance, holder): the latest on or before `as_of`."""
    if issuance is not None:
        return [dict(r) for r in conn.execute(_latest_of_issuance(issuance, as_of)).mappings()]
    h = t.holdings.c
    inner = select(h.issuance, h.holder, func.max(h.effective_on).label("m"))
    if as_of is not None:
        inner = inner.where(h.effective_on <= as_of)
    if issuance is not None:
        inner = inner.where(h.issuance == issuance)
    inner = inner.group_by(h.issuance, h.holder).subquery()
    q = select(t.holdings).join(
        inner,
        and_(h.issuance == inner.c.issuance, h.holder == inner.c.holder, h.effective_on == inner.c.m),
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def _latest_of_issuance(issuance: str, as_of: date | None) -> Any:
    """Index seeks only, a few per holder: the issuance's holders are found by a loose index
    scan of the primary key (each step jumps to the next holder), then each holder's latest row
    on or before `as_of` by a MAX over the key. A GROUP BY would read every row of the issuance
    up to `as_of`: ~130,000 rows for 4,000 holders in a 1M-event store, 60 ms against 38 ms
    here (bench, SQLite)."""
    h, x, n = t.holdings.c, t.holdings.alias("x").c, t.holdings.alias("n").c
    first = select(func.min(h.holder).label("holder")).where(h.issuance == issuance)
    keys = first.cte("holding_keys", recursive=True)
    following = select(func.min(n.holder)).where(n.issuance == issuance, n.holder > keys.c.holder)
    keys = keys.union_all(
        select(following.scalar_subquery()).where(keys.c.holder.is_not(None))
    )
    newest = select(func.max(x.effective_on)).where(x.issuance == issuance, x.holder == keys.c.holder)
    if as_of is not None:
        newest = newest.where(x.effective_on <= as_of)
    return (
        select(t.holdings)
        .select_from(keys)
        .join(t.holdings, and_(h.issuance == issuance, h.holder == keys.c.holder))
        .where(h.effective_on == newest.scalar_subquery())
    )


def terms_on(conn: Connection, as_of: date | None, issuances: set[str]) -> dict[str, tuple[Fraction, Decimal]]:
    """Shares per right and exercise price in force at the end of `as_of` (None: latest)."""
    s = t.share_terms.c
    out: dict[str, tuple[Fraction, Decimal]] = {}
    for issuance in sorted(issuances):
        q = select(s.spr_num, s.spr_den, s.exercise_price).where(s.issuance == issuance)
        first = q.order_by(s.effective_on).limit(1)
        if as_of is not None:
            q = q.where(s.effective_on <= as_of)
        r = conn.execute(q.order_by(s.effective_on.desc()).limit(1)).first()
        r = r or conn.execute(first).first()
        if r is not None:
            out[issuance] = (Fraction(r.spr_num, r.spr_den), r.exercise_price)
    return out


def issuance_info(conn: Connection, issuance: str) -> dict[str, Any]:
    row = conn.execute(select(t.issuances).where(t.issuances.c.issuance == issuance)).mappings().first()
    if row is None:
        raise UnknownIssuance(f"issuance {issuance} is not recorded")
    return dict(row)


def holdings(conn: Connection, by: str, issuance: str | None, as_of: date | None) -> list[dict[str, Any]]:
    """The contract's `holdings` answer."""
    if issuance is not None:
        info = issuance_info(conn, issuance)
        if as_of is not None and as_of < info["resolved_on"]:
            return []
    rows = latest_rows(conn, as_of, issuance)
    spr = {k: v[0] for k, v in terms_on(conn, as_of, {r["issuance"] for r in rows}).items()}
    return report.holdings(rows, spr, by=by, issuance=issuance)


def register(conn: Connection, issuance: str, as_of: date | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(issuance info, register rows) for one issuance as at `as_of`."""
    info = issuance_info(conn, issuance)
    if as_of is not None and as_of < info["resolved_on"]:
        return info, []
    rows = latest_rows(conn, as_of, issuance)
    if not rows:
        return info, []
    spr, price = terms_on(conn, as_of, {issuance})[issuance]
    a = t.allotments.c
    q = select(t.allotments).where(a.issuance == issuance)
    if as_of is not None:
        q = q.where(a.allotted_on <= as_of)
    allots = [dict(r) for r in conn.execute(q.order_by(a.position)).mappings()]
    return info, report.register(info, rows, allots, spr, price)
