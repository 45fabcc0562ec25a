"""`report movements`: what the pure :mod:`.movements` needs, read from the read models.

Per holding, the cumulative rows of ``proj_holdings`` as at the opening and the closing give
the movements of issuances without vesting; issuances with vesting are walked from their
``proj_vesting_moves`` and ``proj_vesting_events`` (the walk the holdings' vested figures come
from), which splits each forfeit and expiry between the blocks. The terms in force
(``proj_share_terms``), the issuances, departures and exercises (``proj_exercises``, with their
share prices) give the rest. Give it a connection from :meth:`.reader.ReadModels.snapshot`, so
that every statement reads one state.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..ledger import vesting as v
from . import movements as m
from . import schema as t
from .queries import issuance_info, latest_rows
from .share_terms import TermsRow
from .vesting import exercisable_on, has_departure_conditions, schedule_from_text

CHUNK = 500  # values per IN list


def movements(
    conn: Connection, start: date, end: date, issuance: str | None = None, unit: str = "shares"
) -> list[dict[str, Any]]:
    """The contract's `report movements --from START --to END [--issuance X] [--unit U]`:
    UnknownIssuance for an issuance never recorded; ValueError when START is after END."""
    if unit not in m.UNITS:
        raise ValueError(f"unknown unit {unit!r}")
    if start > end:
        raise ValueError(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    if issuance is not None:
        issuance_info(conn, issuance)
    c = t.issuances.c
    q = select(t.issuances).where(c.shares_per_right.is_not(None))
    if issuance is not None:
        q = q.where(c.issuance == issuance)
    infos = {r["issuance"]: dict(r) for r in conn.execute(q).mappings()}
    if not infos:
        return []
    first, last = start.toordinal(), end.toordinal()
    closing = [r for r in latest_rows(conn, end, issuance) if r["issuance"] in infos]
    opening = {}
    if first > 1:  # nothing is dated before 0001-01-01
        opening = {(r["issuance"], r["holder"]): r for r in latest_rows(conn, date.fromordinal(first - 1), issuance)}
    departed = _departures(conn, sorted({r["holder"] for r in closing
                                         if has_departure_conditions(infos[r["issuance"]])}), end)
    walks = _walks(conn, sorted(i for i, info in infos.items() if info["vesting"] is not None), end)
    held: dict[str, list[m.Flows]] = {}
    for r in closing:
        key = (r["issuance"], r["holder"])
        info = infos[key[0]]
        if info["vesting"] is None:
            flows = m.flows_vesting_on_allotment(opening.get(key), r)
        else:
            flows = m.flows_of_walk(walks[key[0]](key[1]), first, last)
        can = exercisable_on(info, departed.get(key[1]), end)
        held.setdefault(key[0], []).append(m.with_exercisable(flows, can))
    terms = _terms(conn, sorted(held))
    exercises = _exercises(conn, start, end, issuance)
    series = [
        m.series_of(infos[i], terms[i], flows, exercises.get(i, []), unit, end)
        for i, flows in sorted(held.items())
    ]
    return m.report([s for s in series if s is not None], unit, end)


def _departures(conn: Connection, holders: list[str], end: date) -> dict[str, date]:
    """{holder: departed_on} of those who left on or before `end`."""
    d = t.departures.c
    out: dict[str, date] = {}
    for i in range(0, len(holders), CHUNK):
        q = select(d.holder, d.departed_on).where(d.holder.in_(holders[i : i + CHUNK]), d.departed_on <= end)
        out.update(conn.execute(q).all())
    return out


def _walks(conn: Connection, issuances: list[str], end: date) -> dict[str, Any]:
    """{issuance: holder -> the holding's walk up to `end`} for issuances with vesting."""
    out: dict[str, Any] = {}
    mv, ev = t.vesting_moves.c, t.vesting_events.c
    for issuance in issuances:
        schedule = schedule_from_text(
            conn.execute(select(t.issuances.c.vesting).where(t.issuances.c.issuance == issuance)).scalar_one())
        records = [
            [r.occurred_on.toordinal(), r.position, r.event, r.holder, r.portion_met]
            for r in conn.execute(select(t.vesting_events).where(ev.issuance == issuance, ev.occurred_on <= end)
                                  .order_by(ev.position))
        ]
        moves: dict[str, list[v.Movement]] = {}
        for r in conn.execute(select(t.vesting_moves).where(mv.issuance == issuance, mv.effective_on <= end)):
            moves.setdefault(r.holder, []).append(v.Movement(
                r.effective_on.toordinal(), r.position, r.kind, r.rights,
                r.start.toordinal() if r.start is not None else 0))

        def walk(holder: str, schedule: Any = schedule, records: Any = records, moves: Any = moves) -> v.Walk:
            return v.walk(schedule, moves.get(holder, []), v.occurrences_for(records, holder))

        out[issuance] = walk
    return out


def _terms(conn: Connection, issuances: list[str]) -> dict[str, list[TermsRow]]:
    """The terms in force over time of each issuance, in date order."""
    s = t.share_terms.c
    out: dict[str, list[TermsRow]] = {i: [] for i in issuances}
    for i in range(0, len(issuances), CHUNK):
        q = (select(t.share_terms).where(s.issuance.in_(issuances[i : i + CHUNK]))
             .order_by(s.issuance, s.effective_on))
        for r in conn.execute(q).mappings():
            out[r["issuance"]].append((r["effective_on"], Fraction(r["spr_num"], r["spr_den"]), r["exercise_price"]))
    return out


def _exercises(conn: Connection, start: date, end: date, issuance: str | None) -> dict[str, list[dict[str, Any]]]:
    """{issuance: the exercises dated in start..end}."""
    x = t.exercises.c
    q = select(t.exercises).where(x.exercised_on >= start, x.exercised_on <= end)
    if issuance is not None:
        q = q.where(x.issuance == issuance)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(q.order_by(x.position)).mappings():
        out.setdefault(r["issuance"], []).append(dict(r))
    return out
