"""Vested rights in the read models: the walk of each holding of an issuance with vesting.

Issuances without vesting write nothing here and cost no query: their rights vest on allotment,
so vested = outstanding. For an issuance with vesting, the projector keeps each holding's
movements (``proj_vesting_moves``) and the issuance's vesting events (``proj_vesting_events``),
and after each batch walks every touched holding with :func:`ledger.vesting.walk`, rewriting its
series (``proj_vesting``: unvested and vested at the end of every date where either changes).
An as-of query is then one more index seek per holding, never a walk.

Dates: `--as-of D` answers at the end of D. Without `--as-of` every recorded event counts, and
time-based vesting (which is not an event) is taken as at today, or as at the holding's last
recorded movement when that is later (so vested + unvested = outstanding always).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, case, delete, func, insert, literal, select
from sqlalchemy.engine import Connection

from ..ledger import vesting as v
from . import schema as t
from .fold import HoldingDelta, IssuanceInfo, VestingOccurred

Key = tuple[str, str]


# --------------------------------------------------------------------------- pure parts
def movement_of(delta: HoldingDelta) -> v.Movement:
    """The walk's movement for one holding delta (a lapse at departure counts as a forfeit:
    both take unvested rights first, and a lapse never takes more than is unvested)."""
    if delta.allotted:
        start = delta.vesting_start.toordinal() if delta.vesting_start is not None else 0
        return v.Movement(delta.effective_on.toordinal(), delta.position, v.ALLOT, delta.allotted, start)
    if delta.exercised:
        return v.Movement(delta.effective_on.toordinal(), delta.position, v.EXERCISE, delta.exercised)
    if delta.forfeited:
        return v.Movement(delta.effective_on.toordinal(), delta.position, v.FORFEIT, delta.forfeited)
    return v.Movement(delta.effective_on.toordinal(), delta.position, v.EXPIRE, delta.expired)


def record_of(o: VestingOccurred) -> list[Any]:
    """A vesting event as :func:`ledger.vesting.occurrences_for` reads it."""
    return [o.occurred_on.toordinal(), o.position, o.event, o.holder, o.portion_met]


def schedule_from_text(text: str | None) -> v.Schedule | None:
    """The schedule of the read models' vesting text (None: vests on allotment)."""
    return None if text is None else v.schedule_of(json.loads(text))


def vesting_day(as_of: date | None, last_move: date | None, today: date) -> date:
    """The date whose end the vested figures describe: `as_of`, else the later of today and
    the holding's last recorded movement."""
    if as_of is not None:
        return as_of
    if last_move is not None and last_move > today:
        return last_move
    return today


def vested_on(
    schedule: v.Schedule, moves: Iterable[v.Movement], records: Iterable[Any], holder: str, day: date
) -> int:
    """Vested rights (outstanding) of one holding at the end of `day`."""
    return v.walk(schedule, moves, v.occurrences_for(records, holder)).on(day.toordinal())[1]


def exercisable_on(info: Mapping[str, Any], departed_on: date | None, day: date) -> bool:
    """Whether the holder could exercise vested rights on `day`: inside the exercise period,
    before expiry, and as the departure conditions allow (only after departure; within the
    window of days after it)."""
    start, end = info.get("exercise_from"), info.get("exercise_to")
    if start is None or end is None or not start <= day <= end:
        return False
    expired_on = info.get("expired_on")
    if expired_on is not None and day >= expired_on:
        return False
    if departed_on is not None and departed_on <= day:
        window = info.get("exercise_window_days_after_departure")
        return window is None or day.toordinal() <= departed_on.toordinal() + window
    return not info.get("exercisable_only_after_departure")


def has_departure_conditions(info: Mapping[str, Any]) -> bool:
    """Whether a holder's departure can change what is exercisable under these terms."""
    return bool(info.get("exercisable_only_after_departure")) or info.get(
        "exercise_window_days_after_departure"
    ) is not None


# --------------------------------------------------------------------------- the writer
class VestingWriter:
    """Keeps ``proj_vesting*`` up to date after each batch the projector folds."""

    def __init__(self) -> None:
        self._vesting: dict[str, str | None] = {}  # issuance -> vesting text, as read

    def forget(self) -> None:
        self._vesting.clear()

    def _texts(self, conn: Connection, issuances: set[str]) -> dict[str, str | None]:
        unknown = sorted(i for i in issuances if i not in self._vesting)
        if unknown:
            c = t.issuances.c
            for i in range(0, len(unknown), 500):
                chunk = unknown[i : i + 500]
                found = dict(conn.execute(select(c.issuance, c.vesting).where(c.issuance.in_(chunk))).all())
                for issuance in chunk:
                    self._vesting[issuance] = found.get(issuance)
        return {i: self._vesting[i] for i in issuances}

    def execute(self, conn: Connection, folded: Iterable[tuple[int, str, list[Any]]]) -> None:
        """Record the movements and vesting events of vesting issuances in this batch, then
        rewrite the series of every holding they touch."""
        deltas: list[HoldingDelta] = []
        occurred: list[VestingOccurred] = []
        for _position, _kind, effs in folded:
            for eff in effs:
                if type(eff) is HoldingDelta:
                    deltas.append(eff)
                elif type(eff) is VestingOccurred:
                    occurred.append(eff)
                elif type(eff) is IssuanceInfo and "vesting" in eff.columns:
                    self._vesting.pop(eff.issuance, None)
        if not deltas and not occurred:
            return
        texts = self._texts(conn, {d.issuance for d in deltas} | {o.issuance for o in occurred})
        vesting = {i for i, text in texts.items() if text is not None}
        if not vesting:
            return
        touched: set[Key] = set()
        moves = []
        for d in deltas:
            if d.issuance in vesting:
                m = movement_of(d)
                moves.append({
                    "issuance": d.issuance, "holder": d.holder, "position": d.position,
                    "effective_on": d.effective_on, "kind": m.kind, "rights": m.rights,
                    "start": date.fromordinal(m.start) if m.start else None,
                })
                touched.add((d.issuance, d.holder))
        if moves:
            conn.execute(insert(t.vesting_moves), moves)
        events = [o for o in occurred if o.issuance in vesting]
        if events:
            conn.execute(insert(t.vesting_events), [
                {"position": o.position, "issuance": o.issuance, "event": o.event,
                 "occurred_on": o.occurred_on, "holder": o.holder, "portion_met": o.portion_met}
                for o in events
            ])
            k = t.holding_keys.c
            for o in events:
                if o.holder is not None:
                    touched.add((o.issuance, o.holder))
                else:
                    touched.update(conn.execute(select(k.issuance, k.holder).where(k.issuance == o.issuance)).all())
        e, m, s = t.vesting_events.c, t.vesting_moves.c, t.vesting.c
        by_issuance: dict[str, list[str]] = {}
        for issuance, holder in sorted(touched):
            by_issuance.setdefault(issuance, []).append(holder)
        # A few statements per issuance and chunk of holders, not three per holding: a batch
        # of a plan with vesting touches thousands of holdings.
        for issuance, holders in by_issuance.items():
            records = [
                [r.occurred_on.toordinal(), r.position, r.event, r.holder, r.portion_met]
                for r in conn.execute(select(t.vesting_events).where(e.issuance == issuance).order_by(e.position))
            ]
            schedule = schedule_from_text(texts[issuance])
            for i in range(0, len(holders), 500):
                chunk = holders[i : i + 500]
                held: dict[str, list[v.Movement]] = {h: [] for h in chunk}
                for r in conn.execute(select(t.vesting_moves).where(m.issuance == issuance, m.holder.in_(chunk))):
                    held[r.holder].append(v.Movement(
                        r.effective_on.toordinal(), r.position, r.kind, r.rights,
                        r.start.toordinal() if r.start is not None else 0,
                    ))
                conn.execute(delete(t.vesting).where(and_(s.issuance == issuance, s.holder.in_(chunk))))
                rows = []
                for holder in chunk:
                    walked = v.walk(schedule, held[holder], v.occurrences_for(records, holder))
                    rows.extend(
                        {"issuance": issuance, "holder": holder, "effective_on": date.fromordinal(o),
                         "unvested": u, "vested": vv}
                        for o, u, vv in walked.series
                    )
                if rows:
                    conn.execute(insert(t.vesting), rows)


# --------------------------------------------------------------------------- queries
def vested_of_issuance(conn: Connection, issuance: str, as_of: date | None, today: date) -> dict[str, int]:
    """{holder: vested rights} of every holding of a vesting issuance, one seek per holding."""
    k, s, m = t.holding_keys.c, t.vesting.alias("s").c, t.vesting_moves.alias("m").c
    if as_of is not None:
        day: Any = literal(as_of, t.vesting.c.effective_on.type)
    else:
        last = (
            select(func.max(m.effective_on)).where(m.issuance == k.issuance, m.holder == k.holder).scalar_subquery()
        )
        now = literal(today, t.vesting.c.effective_on.type)
        day = case((last > now, last), else_=now)
    vested = (
        select(s.vested)
        .where(s.issuance == k.issuance, s.holder == k.holder, s.effective_on <= day)
        .order_by(s.effective_on.desc())
        .limit(1)
        .scalar_subquery()
    )
    q = select(k.holder, vested).where(k.issuance == issuance)
    return {holder: n or 0 for holder, n in conn.execute(q).all()}
