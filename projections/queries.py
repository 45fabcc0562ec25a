"""Read-only queries over the projection tables (indexed seeks, never a replay).

Each function takes a connection; give it one from :meth:`.reader.ReadModels.snapshot` so that
all the statements of an answer read one consistent state.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Date, and_, bindparam, column, func, literal_column, select, table, true
from sqlalchemy.engine import Connection

from ..ledger.errors import UnknownIssuance
from ..ledger.personal import SealedAddress, key_bytes, unseal
from . import holdings as holding_rows
from . import register as register_rows
from . import schema as t
from . import vesting as vesting_rows


def latest_rows(conn: Connection, as_of: date | None, issuance: str | None) -> list[dict[str, Any]]:
    """One cumulative row per (issuance, holder): the latest on or before `as_of`."""
    if issuance is not None:
        stmt = _latest_of_issuance(conn.dialect.name, as_of is not None)
        params = {"issuance": issuance} if as_of is None else {"issuance": issuance, "as_of": as_of}
        return _dicts(conn.execute(stmt, params))
    h = t.holdings.c
    inner = select(h.issuance, h.holder, func.max(h.effective_on).label("m"))
    if as_of is not None:
        inner = inner.where(h.effective_on <= as_of)
    inner = inner.group_by(h.issuance, h.holder).subquery()
    q = select(t.holdings).join(
        inner,
        and_(h.issuance == inner.c.issuance, h.holder == inner.c.holder, h.effective_on == inner.c.m),
    )
    return _dicts(conn.execute(q))


def _dicts(result: Any) -> list[dict[str, Any]]:
    """Rows as plain dicts, fetched in one call (cheaper than iterating RowMappings one by one)."""
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result.all()]


# What holdings and register rows read of a holding row (dates and money cost a conversion each).
_REPORTED = [c for c in t.holdings.c if c.name != "effective_on"]


@functools.cache
def _latest_of_issuance(dialect: str, dated: bool) -> Any:
    """Each holding of the issuance (from proj_holding_keys) and its latest row on or before
    `as_of`, by one index seek per holding: the cost follows the holders, not the rows (a
    GROUP BY would read all of them, ~130,000 for 4,000 holders in a 1M-event store).

    Built once per dialect and form, with the issuance and the date as parameters: building
    the statement cost as much as a tenth of a small answer."""
    h, k = t.holdings, t.holding_keys.c
    as_of = bindparam("as_of", type_=Date)
    if dialect == "postgresql":
        newest = select(h).where(h.c.issuance == k.issuance, h.c.holder == k.holder)
        if dated:
            newest = newest.where(h.c.effective_on <= as_of)
        row = newest.order_by(h.c.effective_on.desc()).limit(1).lateral("h")
        return (
            select(*(row.c[c.name] for c in _REPORTED))
            .select_from(t.holding_keys)
            .join(row, true())
            .where(k.issuance == bindparam("issuance"))
        )
    # SQLite has no LATERAL: the seek returns the newest row's rowid, then one rowid lookup
    # (a MAX over the key and a join on it would walk the key's index twice).
    x = h.alias("x")
    newest = select(literal_column("x.rowid")).where(x.c.issuance == k.issuance, x.c.holder == k.holder)
    if dated:
        newest = newest.where(x.c.effective_on <= as_of)
    newest = newest.order_by(x.c.effective_on.desc()).limit(1).scalar_subquery()
    return (
        select(*_REPORTED)
        .select_from(t.holding_keys)
        .join(h, literal_column(f"{h.name}.rowid") == newest)
        .where(k.issuance == bindparam("issuance"))
    )


def terms_on(conn: Connection, as_of: date | None, issuances: set[str]) -> dict[str, tuple[Fraction, Decimal]]:
    """Shares per right and exercise price in force at the end of `as_of` (None: latest)."""
    out: dict[str, tuple[Fraction, Decimal]] = {}
    for issuance in sorted(issuances):
        r = None
        if as_of is not None:
            r = conn.execute(_TERMS_IN_FORCE, {"issuance": issuance, "as_of": as_of}).first()
        r = r or conn.execute(_TERMS_FIRST if as_of is not None else _TERMS_LATEST, {"issuance": issuance}).first()
        if r is not None:
            out[issuance] = (Fraction(r.spr_num, r.spr_den), r.exercise_price)
    return out


def _terms_query() -> Any:
    s = t.share_terms.c
    return select(s.spr_num, s.spr_den, s.exercise_price).where(s.issuance == bindparam("issuance"))


_s = t.share_terms.c
# Built once: the terms in force on a date (the newest on or before it), else the first ones
# (a date before any adjustment), and the newest of all (no date).
_TERMS_IN_FORCE = (
    _terms_query().where(_s.effective_on <= bindparam("as_of", type_=Date)).order_by(_s.effective_on.desc()).limit(1)
)
_TERMS_FIRST = _terms_query().order_by(_s.effective_on).limit(1)
_TERMS_LATEST = _terms_query().order_by(_s.effective_on.desc()).limit(1)
_ISSUANCE = select(t.issuances).where(t.issuances.c.issuance == bindparam("issuance"))


def issuance_info(conn: Connection, issuance: str) -> dict[str, Any]:
    """The issuance's row (resolution and terms); UnknownIssuance when none."""
    row = conn.execute(_ISSUANCE, {"issuance": issuance}).mappings().first()
    if row is None:
        raise UnknownIssuance(f"issuance {issuance} is not recorded")
    return dict(row)


def holdings(
    conn: Connection, by: str, issuance: str | None, as_of: date | None, today: date | None = None
) -> list[dict[str, Any]]:
    """The contract's `holdings` answer (`today`: the date without `--as-of`, for the vested
    figures; default the system date)."""
    if issuance is not None:
        info = issuance_info(conn, issuance)
        if as_of is not None and as_of < info["resolved_on"]:
            return []
    rows = latest_rows(conn, as_of, issuance)
    add_vesting(conn, rows, as_of, today or date.today())
    spr = {k: v[0] for k, v in terms_on(conn, as_of, {r["issuance"] for r in rows}).items()}
    return holding_rows.holdings(rows, spr, by=by, issuance=issuance)


_EXERCISE_TERMS = ("vesting", "exercise_from", "exercise_to", "exercisable_only_after_departure",
                   "exercise_window_days_after_departure", "expired_on")
_c, _d = t.issuances.c, t.departures.c
_EXERCISE_TERMS_OF = select(_c.issuance, *(_c[n] for n in _EXERCISE_TERMS)).where(
    _c.issuance.in_(bindparam("issuances", expanding=True))
)
_DEPARTED = select(_d.holder, _d.departed_on).where(
    _d.holder.in_(bindparam("holders", expanding=True)), _d.departed_on <= bindparam("day", type_=Date)
)


def add_vesting(conn: Connection, rows: list[dict[str, Any]], as_of: date | None, today: date) -> None:
    """Set ``vested`` and ``can_exercise`` on each holding row (see
    :func:`.holdings.holding_figures`): one query for the issuances' terms, the departures only
    where the terms depend on them, and one seek per holding only for issuances with vesting."""
    if not rows:
        return
    issuances = sorted({r["issuance"] for r in rows})
    infos: dict[str, dict[str, Any]] = {}
    for i in range(0, len(issuances), 500):
        found = conn.execute(_EXERCISE_TERMS_OF, {"issuances": issuances[i : i + 500]}).mappings()
        infos.update((r["issuance"], dict(r)) for r in found)
    day = as_of or today
    # Per issuance, not per row (a 1M-event store answers 4,000 rows an issuance): whether a
    # departure matters at all, and what a holder who has not left may do.
    conditional = {i for i in issuances if vesting_rows.has_departure_conditions(infos.get(i, {}))}
    staying = {i: vesting_rows.exercisable_on(infos.get(i, {}), None, day) for i in issuances}
    departed: dict[str, date] = {}
    wanted = sorted({r["holder"] for r in rows if r["issuance"] in conditional})
    for i in range(0, len(wanted), 500):
        departed.update(conn.execute(_DEPARTED, {"holders": wanted[i : i + 500], "day": day}).all())
    vested: dict[str, dict[str, int]] = {
        i: vesting_rows.vested_of_issuance(conn, i, as_of, today)
        for i in issuances
        if infos.get(i, {}).get("vesting") is not None
    }
    for r in rows:
        i = r["issuance"]
        if i in vested:
            r["vested"] = vested[i].get(r["holder"], 0)
        left = departed.get(r["holder"]) if i in conditional else None
        r["can_exercise"] = staying[i] if left is None else vesting_rows.exercisable_on(infos.get(i, {}), left, day)


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
    details = holder_details(conn, {r["holder"] for r in rows}, as_of)
    return info, register_rows.register(info, rows, allots, spr, price, details)


# The ledger's table of holders' keys (not a read model: see ledger/recorders.py).
_keys = table("ledger_holder_keys", column("holder"), column("key"))


def holder_details(conn: Connection, holders: set[str], as_of: date | None) -> dict[str, tuple[str | None, bool]]:
    """{holder: (address in force at the end of `as_of` or None, erased?)}, the address opened
    here with the holder's key: erased holders (whose key is gone) and holders without a
    record on or before `as_of` have None."""
    out: dict[str, tuple[str | None, bool]] = {h: (None, False) for h in holders}
    e, d = t.holder_erasures.c, t.holder_details.c
    ordered = sorted(holders)
    latest: dict[str, Any] = {}
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        for (h,) in conn.execute(select(e.holder).where(e.holder.in_(chunk))):
            out[h] = (None, True)
        q = select(t.holder_details).where(d.holder.in_(chunk))
        if as_of is not None:
            q = q.where(d.effective_on <= as_of)
        for r in conn.execute(q.order_by(d.holder, d.effective_on, d.position)).mappings():
            latest[r["holder"]] = r  # the last in (date, record order) is in force
    wanted = sorted(h for h in latest if not out[h][1])
    keys: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        keys.update(conn.execute(select(_keys.c.holder, _keys.c.key).where(_keys.c.holder.in_(wanted[i : i + 500]))).all())
    for h in wanted:
        r = latest[h]
        if h in keys:
            address = unseal(key_bytes(keys[h]), h, r["effective_on"], SealedAddress(r["nonce"], r["ciphertext"]))
            out[h] = (address, False)
    return out
