"""`audit replay`: holdings from the raw events alone, and whether they equal the projections.

The replay reads domain events through eventsourcing's mapper (not the projector's fast
reader) and folds them in memory with the same :func:`.fold.effects_of`, so the two ways of
reading the log check each other; the comparison policy (which groupings, what counts as the
first difference) lives here, the CLI only prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any, Iterable

from sqlalchemy.engine import Connection

from . import queries
from .fold import Replay
from .holdings import holdings
from .share_terms import in_force, share_terms_rows
from .vesting import exercisable_on, movement_of, record_of, schedule_from_text, vested_on, vesting_day

GROUPINGS = ("person", "group", "issuance")


@dataclass(frozen=True)
class ReplayComparison:
    replayed: dict[str, list[dict[str, Any]]]  # holdings rows by grouping, from the events
    difference: str | None  # the first difference from the projections, None when equal


def replayed(events: Iterable[tuple[int, Any]], as_of: date | None) -> Replay:
    """Fold (position, domain event) pairs in memory, as at the end of `as_of` (None: all)."""
    r = Replay(as_of)
    for position, event in events:
        r.feed(position, event)
    return r


def holdings_of(r: Replay, by: str, today: date | None = None) -> list[dict[str, Any]]:
    """Holdings rows (as ``holdings --format json`` shows them) of a replay (`today`: the date
    of the vested figures without an as-of date; default the system date)."""
    today = today or date.today()
    day = r.as_of or today
    for key, row in r.holdings.items():
        info = r.issuances.get(key[0], {})
        departed = r.departures.get(key[1])
        row["can_exercise"] = exercisable_on(info, departed if departed is not None and departed <= day else None, day)
        schedule = schedule_from_text(info.get("vesting"))
        if schedule is None:
            row.pop("vested", None)
            continue
        deltas = r.deltas.get(key, [])
        last = max((d.effective_on for d in deltas), default=None)
        records = [record_of(o) for o in r.occurred.get(key[0], [])]
        row["vested"] = vested_on(schedule, map(movement_of, deltas), records, key[1], vesting_day(r.as_of, last, today))
    spr: dict[str, Fraction] = {}
    for issuance, info in r.issuances.items():
        if info.get("shares_per_right") is None:
            continue
        rows = share_terms_rows(
            info["resolved_on"], info["shares_per_right"], info["exercise_price_per_share"],
            info["currency"], [(d, ratio) for d, _p, ratio in sorted(r.adjustments.get(issuance, []))],
        )
        spr[issuance] = in_force(rows, r.as_of)[0]
    return holdings(r.holdings.values(), spr, by=by)


def replay_holdings(
    events: Iterable[tuple[int, Any]], as_of: date | None, by: str = "person", today: date | None = None
) -> list[dict[str, Any]]:
    """Holdings computed from the raw events alone (no projection table)."""
    return holdings_of(replayed(events, as_of), by, today)


def compare_with_projections(log: Any, conn: Connection, as_of: date | None) -> ReplayComparison:
    """Replay `log` (anything with ``iter_events()``) and compare holdings by person, group and
    issuance with the projections read on `conn` (one snapshot)."""
    today = date.today()
    r = replayed(log.iter_events(), as_of)
    mine = {by: holdings_of(r, by, today) for by in GROUPINGS}
    live = {by: queries.holdings(conn, by, None, as_of, today) for by in GROUPINGS}
    return ReplayComparison(mine, first_difference(mine, live))


def first_difference(replayed: dict[str, list[dict[str, Any]]], live: dict[str, list[dict[str, Any]]]) -> str | None:
    """The first row and field where the projections differ from the replay, in words."""
    for by in GROUPINGS:
        a, b = replayed[by], live[by]
        for i in range(max(len(a), len(b))):
            ra = a[i] if i < len(a) else None
            rb = b[i] if i < len(b) else None
            if ra != rb:
                key = (ra or rb or {}).get(by if by != "person" else "holder")
                field = next((k for k in (ra or rb or {}) if (ra or {}).get(k) != (rb or {}).get(k)), "row")
                return (
                    f"holdings by {by}, {key}: {field} is {(rb or {}).get(field)!r} in the projections, "
                    f"{(ra or {}).get(field)!r} in the replay"
                )
    return None
