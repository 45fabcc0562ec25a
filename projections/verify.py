"""Projections == a fresh replay of the events, checked without holding the log in memory.

The holding rows are cumulative per (issuance, holder, date). For each holding we fold a
weighted sum of the event deltas, each weighted by a hash of (issuance, holder, date), and
the same weighted sum of the differences between consecutive projection rows. The two agree
for every holding exactly when every dated row equals the fold of the events up to its date
(up to a 2^-60 chance per holding), and the memory needed is one accumulator per holding, not
one per event. The latest row of each holding is also compared field by field (names, groups)
with the in-memory replay, and the small tables (issuances, terms in force, allotments,
departures) are compared whole or by an order-free fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Callable

from sqlalchemy import select

from . import history_index
from . import schema as t
from .errors import REBUILD
from .fold import (
    FIGURES,
    Adjustment,
    Allotment,
    Departure,
    DetailsErasure,
    Exercise,
    HolderDetails,
    HoldingDelta,
    IssuanceInfo,
    Replay,
    VestingOccurred,
    effects,
    event_type,
)
from .share_terms import share_terms_rows
from .vesting import movement_of, record_of, schedule_from_text
from ..ledger import vesting as v

PAGE = 5000  # rows per fetch when streaming the projection tables


def _weight(issuance: str, holder: str, day: date) -> int:
    h = hashlib.sha256(f"{issuance}\x1f{holder}\x1f{day.isoformat()}".encode()).digest()
    return int.from_bytes(h[:8], "big") | 1


def _row_hash(*parts: Any) -> int:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


@dataclass
class ProjectionFinding:
    table: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"projection {self.table} {self.key}: {self.problem}"


class _Fold:
    """Everything the replay side needs, in memory proportional to holdings, not events."""

    def __init__(self) -> None:
        self.replay = Replay()
        self.acc: dict[tuple[str, str], list[Any]] = {}
        self.allot_fp = 0
        self.allot_n = 0
        self.departures: dict[str, date] = {}
        self.details: dict[tuple[str, date, int], tuple[str, str]] = {}
        self.erasures: dict[str, int] = {}
        self.exercise_fp = 0
        self.exercise_n = 0
        self.history = history_index.Fingerprint()

    def feed(self, position: int, event: Any) -> None:
        self.history.add_event(position, event_type(event), event)
        for eff in effects(position, event):
            if isinstance(eff, HoldingDelta):
                self.replay.apply(eff)
                w = _weight(eff.issuance, eff.holder, eff.effective_on)
                acc = self.acc.setdefault((eff.issuance, eff.holder), [0] * len(FIGURES))
                for i, f in enumerate(FIGURES):
                    v = getattr(eff, f)
                    if v:
                        acc[i] += w * v
            elif isinstance(eff, Allotment):
                self.allot_n += 1
                self.allot_fp += _row_hash(
                    eff.position, eff.issuance, eff.holder, eff.allotted_on.isoformat(), eff.rights,
                    eff.payment, format(eff.amount, "f"),
                )
            elif isinstance(eff, Departure):
                self.departures[eff.holder] = eff.departed_on
            elif isinstance(eff, (IssuanceInfo, Adjustment, VestingOccurred)):
                self.replay.apply(eff)
            elif isinstance(eff, HolderDetails):
                self.details[(eff.holder, eff.effective_on, eff.position)] = (eff.nonce, eff.ciphertext)
            elif isinstance(eff, DetailsErasure):
                self.details = {k: v for k, v in self.details.items() if k[0] != eff.holder}
                self.erasures[eff.holder] = eff.position
            elif isinstance(eff, Exercise):
                self.exercise_n += 1
                self.exercise_fp += _exercise_hash(
                    eff.position, eff.issuance, eff.holder, eff.exercised_on, eff.rights,
                    eff.shares_delivered, eff.share_price,
                )


def verify_projections(
    log: Any, conn: Any, upto: int, progress: Callable[[int], None] | None = None
) -> ProjectionFinding | None:
    """Compare every projection table (read on `conn`) with a replay of the events of `log`
    (anything with ``iter_events()``) up to `upto`, the projections' tracking position."""
    with localcontext() as ctx:
        ctx.prec = 200  # weighted sums of money stay exact
        fold = _Fold()
        n = 0
        last = 0
        for position, event in log.iter_events():
            if position > upto:
                last = position
                break
            fold.feed(position, event)
            last = position
            n += 1
            if progress is not None and n % 5000 == 0:
                progress(5000)
        if progress is not None:
            progress(n % 5000)
        if upto > last:
            return ProjectionFinding(
                "proj_tracking", f"position {upto}",
                f"claims events past the head of the log ({last}); run {REBUILD}",
            )
        return (
            _check_holdings(conn, fold)
            or _check_holding_keys(conn, fold)
            or _check_issuances(conn, fold)
            or _check_share_terms(conn, fold)
            or _check_allotments(conn, fold)
            or _check_departures(conn, fold)
            or _check_holder_details(conn, fold)
            or _check_vesting(conn, fold)
            or _check_exercises(conn, fold)
            or _check_history_index(conn, fold)
        )


def _streamed(conn: Any, query: Any) -> Any:
    """Rows of a table that grows with the log, fetched in pages: psycopg would otherwise
    buffer the whole result client-side (the 1M-event verify peaked at 634 MiB on PostgreSQL)."""
    return conn.execution_options(stream_results=True, yield_per=PAGE).execute(query).mappings()


def _check_holdings(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    h = t.holdings.c
    seen: set[tuple[str, str]] = set()
    key: tuple[str, str] | None = None
    prev: dict[str, Any] | None = None
    acc: list[Any] = []

    def close(key: tuple[str, str], last: dict[str, Any], acc: list[Any]) -> ProjectionFinding | None:
        where = f"issuance {key[0]} holder {key[1]}"
        expected = fold.acc.get(key)
        if expected is None:
            return ProjectionFinding("proj_holdings", where, "has rows but no event made them")
        for i, f in enumerate(FIGURES):
            if acc[i] != expected[i]:
                return ProjectionFinding("proj_holdings", where, f"{f} differs from the events on some date")
        final = fold.replay.holdings[key]
        for f in ("name", "grp", "currency", *FIGURES):
            if last[f] != final[f]:
                return ProjectionFinding(
                    "proj_holdings", where, f"latest {f} is {last[f]!r}, the events give {final[f]!r}"
                )
        return None

    q = select(t.holdings).order_by(h.issuance, h.holder, h.effective_on)
    for row in _streamed(conn, q):
        k = (row["issuance"], row["holder"])
        if k != key:
            if key is not None and prev is not None:
                bad = close(key, prev, acc)
                if bad:
                    return bad
            key, prev, acc = k, None, [0] * len(FIGURES)
            seen.add(k)
        w = _weight(k[0], k[1], row["effective_on"])
        for i, f in enumerate(FIGURES):
            diff = row[f] - (prev[f] if prev is not None else 0)
            if diff:
                acc[i] += w * diff
        prev = dict(row)
    if key is not None and prev is not None:
        bad = close(key, prev, acc)
        if bad:
            return bad
    missing = sorted(set(fold.acc) - seen)
    if missing:
        return ProjectionFinding(
            "proj_holdings", f"issuance {missing[0][0]} holder {missing[0][1]}", "rows are missing"
        )
    return None


def _check_holding_keys(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    """One key per holding the events made, no other (the as-of queries walk this table)."""
    n = 0
    for r in _streamed(conn, select(t.holding_keys)):
        n += 1
        if (r["issuance"], r["holder"]) not in fold.acc:
            return ProjectionFinding(
                "proj_holding_keys", f"issuance {r['issuance']} holder {r['holder']}", "no event made this holding"
            )
    if n != len(fold.acc):
        return ProjectionFinding(
            "proj_holding_keys", f"({n} rows, {len(fold.acc)} holdings in the events)", "keys are missing"
        )
    return None


_ISSUANCE_COLUMNS = [c.name for c in t.issuances.columns if c.name != "issuance"]


def _check_issuances(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    rows = {r["issuance"]: dict(r) for r in conn.execute(select(t.issuances)).mappings()}
    expected = fold.replay.issuances
    for issuance in sorted(set(rows) | set(expected)):
        if issuance not in rows or issuance not in expected:
            return ProjectionFinding("proj_issuances", issuance, "present on one side only")
        for c in _ISSUANCE_COLUMNS:
            if rows[issuance].get(c) != expected[issuance].get(c):
                return ProjectionFinding(
                    "proj_issuances", issuance,
                    f"{c} is {rows[issuance].get(c)!r}, the events give {expected[issuance].get(c)!r}",
                )
    return None


def _check_share_terms(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    s = t.share_terms.c
    stored: dict[str, list[tuple[date, Fraction, Decimal]]] = {}
    for r in conn.execute(select(t.share_terms).order_by(s.issuance, s.effective_on)).mappings():
        stored.setdefault(r["issuance"], []).append(
            (r["effective_on"], Fraction(r["spr_num"], r["spr_den"]), r["exercise_price"])
        )
    for issuance, info in sorted(fold.replay.issuances.items()):
        expected: list[tuple[date, Fraction, Decimal]] = []
        if info.get("shares_per_right") is not None:
            expected = share_terms_rows(
                info["resolved_on"], info["shares_per_right"], info["exercise_price_per_share"],
                info["currency"], [(d, r) for d, _p, r in sorted(fold.replay.adjustments.get(issuance, []))],
            )
        if stored.pop(issuance, []) != expected:
            return ProjectionFinding("proj_share_terms", issuance, "terms in force differ from the events")
    if stored:
        return ProjectionFinding("proj_share_terms", sorted(stored)[0], "has rows but no event made them")
    return None


def _check_allotments(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    fp, n = 0, 0
    for r in _streamed(conn, select(t.allotments)):
        n += 1
        fp += _row_hash(
            r["position"], r["issuance"], r["holder"], r["allotted_on"].isoformat(), r["rights"],
            r["payment"], format(r["amount"], "f"),
        )
    if (fp, n) != (fold.allot_fp, fold.allot_n):
        return ProjectionFinding(
            "proj_allotments", f"({n} rows, {fold.allot_n} allotment events)", "rows differ from the events"
        )
    return None


def _check_departures(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    rows = {r["holder"]: r["departed_on"] for r in conn.execute(select(t.departures)).mappings()}
    if rows != fold.departures:
        diff = sorted(set(rows.items()) ^ set(fold.departures.items()))
        return ProjectionFinding("proj_departures", f"holder {diff[0][0]}", "differs from the events")
    return None



def _check_holder_details(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    """Sealed addresses and erasures (few rows: one per record), compared whole."""
    rows = {
        (r["holder"], r["effective_on"], r["position"]): (r["nonce"], r["ciphertext"])
        for r in conn.execute(select(t.holder_details)).mappings()
    }
    if rows != fold.details:
        diff = sorted(set(rows.items()) ^ set(fold.details.items()))
        return ProjectionFinding("proj_holder_details", f"holder {diff[0][0][0]}", "differs from the events")
    erased = {r["holder"]: r["position"] for r in conn.execute(select(t.holder_erasures)).mappings()}
    if erased != fold.erasures:
        diff = sorted(set(erased.items()) ^ set(fold.erasures.items()))
        return ProjectionFinding("proj_holder_erasures", f"holder {diff[0][0]}", "differs from the events")
    return None


def _check_vesting(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    """The movements, vesting events and vested series of issuances with vesting (only they
    have rows), compared whole with a walk of the replayed events."""
    r = fold.replay
    moves: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    series: dict[tuple[str, str, date], tuple[int, int]] = {}
    for (issuance, holder), deltas in r.deltas.items():
        held = [movement_of(d) for d in deltas]
        for d, m in zip(deltas, held):
            moves[(issuance, holder, d.position)] = (
                d.effective_on, m.kind, m.rights, date.fromordinal(m.start) if m.start else None)
        schedule = schedule_from_text(r.issuances[issuance].get("vesting"))
        records = [record_of(o) for o in r.occurred.get(issuance, [])]
        for o, u, vv in v.walk(schedule, held, v.occurrences_for(records, holder)).series:
            series[(issuance, holder, date.fromordinal(o))] = (u, vv)
    events = {
        o.position: (o.issuance, o.event, o.occurred_on, o.holder, o.portion_met)
        for issuance, occurred in r.occurred.items()
        if r.issuances.get(issuance, {}).get("vesting") is not None
        for o in occurred
    }
    stored_moves = {
        (x["issuance"], x["holder"], x["position"]): (x["effective_on"], x["kind"], x["rights"], x["start"])
        for x in _streamed(conn, select(t.vesting_moves))
    }
    if stored_moves != moves:
        diff = sorted(set(stored_moves.items()) ^ set(moves.items()), key=str)
        return ProjectionFinding("proj_vesting_moves", f"issuance {diff[0][0][0]} holder {diff[0][0][1]}",
                                 "differs from the events")
    stored_events = {
        x["position"]: (x["issuance"], x["event"], x["occurred_on"], x["holder"], x["portion_met"])
        for x in conn.execute(select(t.vesting_events)).mappings()
    }
    if stored_events != events:
        diff = sorted(set(stored_events.items()) ^ set(events.items()), key=str)
        return ProjectionFinding("proj_vesting_events", f"position {diff[0][0]}", "differs from the events")
    stored_series = {
        (x["issuance"], x["holder"], x["effective_on"]): (x["unvested"], x["vested"])
        for x in _streamed(conn, select(t.vesting))
    }
    if stored_series != series:
        diff = sorted(set(stored_series.items()) ^ set(series.items()), key=str)
        return ProjectionFinding("proj_vesting", f"issuance {diff[0][0][0]} holder {diff[0][0][1]}",
                                 "vested rights differ from the events")
    return None


def _exercise_hash(position: int, issuance: str, holder: str, exercised_on: date, rights: int,
                   shares: int, share_price: Decimal | None) -> int:
    return _row_hash(position, issuance, holder, exercised_on.isoformat(), rights, shares,
                     None if share_price is None else format(share_price, "f"))


def _check_exercises(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    """The exercise rows (with their share prices), by an order-free fingerprint."""
    fp, n = 0, 0
    for r in _streamed(conn, select(t.exercises)):
        n += 1
        fp += _exercise_hash(r["position"], r["issuance"], r["holder"], r["exercised_on"], r["rights"],
                             r["shares_delivered"], r["share_price"])
    if (fp, n) != (fold.exercise_fp, fold.exercise_n):
        return ProjectionFinding(
            "proj_exercises", f"({n} rows, {fold.exercise_n} exercise events)", "rows differ from the events"
        )
    return None


def _check_history_index(conn: Any, fold: _Fold) -> ProjectionFinding | None:
    """The history index (rows that grow with the log): each table's keyed fingerprint."""
    expected = fold.history
    stored = history_index.stored_fingerprint(conn, expected.key, PAGE)
    for name, table in history_index.TABLES.items():
        if (stored.counts[name], stored.sums[name]) != (expected.counts[name], expected.sums[name]):
            return ProjectionFinding(
                table.name, f"({stored.counts[name]} rows, {expected.counts[name]} from the events)",
                "rows differ from the events",
            )
    return None
