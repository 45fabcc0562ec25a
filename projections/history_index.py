"""The history's index: which stored events `history --holder X` and `history --issuance X`
show, so that a filtered history reads only its own events instead of streaming the whole log.

Three read models, written by the projector in the same transaction as the others (so they
describe exactly the events up to the tracking position), emptied by a rebuild and checked by
``audit verify`` against the events:

* ``proj_history_holders (holder, position)``: every event whose ``holder`` is X, and every
  expiry that made X's rights lapse (X is a key of its ``expired``);
* ``proj_history_issuances (issuance, position, joined)``: every event whose ``issuance`` is X;
  ``joined`` names the holder on the events that make a holder join it (a holder's
  ``Registered`` and ``JoinedIssuance``), NULL on the others;
* ``proj_history_departures (holder, position)``: every departure. An issuance's history also
  shows the departures of every holder who ever joined it, and a departure may be stored before
  the late allotment that makes its holder join: the query joins the two when it reads, so the
  fold never has to look ahead or back.

:func:`index_entries` says, for one event, which rows it makes (pure: the projector writes them,
``audit verify`` fingerprints them); :class:`HistoryIndexWriter` writes a batch's rows.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable, Iterator

from sqlalchemy import select, union
from sqlalchemy.engine import Connection

from . import schema as t

# Event types that make a holder join an issuance. Types are unique across the aggregates but
# for `Registered` (the issuer's and a holder's): the holder field tells them apart.
JOINS = frozenset({"Registered", "JoinedIssuance"})
DEPARTED = "Departed"

HOLDERS, ISSUANCES, DEPARTURES = "holders", "issuances", "departures"
TABLES = {
    HOLDERS: t.history_holders,
    ISSUANCES: t.history_issuances,
    DEPARTURES: t.history_departures,
}


def index_entries(position: int, kind: str, fields: Any) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for every index row one event makes; `fields` is the event's fields as
    attributes (a domain event, or the projections' (type, fields) read of the log).

    The rows say exactly what the full scan of :func:`.history.history_rows` filters on: the
    event's ``holder``, the keys of its ``expired``, its ``issuance``, and whether it is a join
    or a departure. Values that are not text cannot equal a filter given on the command line,
    so they make no row."""
    d = fields.__dict__
    holder = d.get("holder")
    if not isinstance(holder, str):
        holder = None
    if holder is not None:
        yield HOLDERS, (holder, position)
    expired = d.get("expired")
    if isinstance(expired, dict):
        for h in expired:
            if isinstance(h, str) and h != holder:
                yield HOLDERS, (h, position)
    issuance = d.get("issuance")
    if isinstance(issuance, str):
        yield ISSUANCES, (issuance, position, holder if kind in JOINS else None)
    if kind == DEPARTED and holder is not None:
        yield DEPARTURES, (holder, position)


class HistoryIndexWriter:
    """Writes the index rows of a batch of (position, event type, fields), in the caller's
    transaction, as plain driver SQL (they grow with the log, like the holding rows)."""

    def __init__(self, kind: str) -> None:
        mark = "?" if kind == "sqlite" else "%s"
        self._sql = {
            name: f"INSERT INTO {table.name} ({', '.join(c.name for c in table.columns)}) "
                  f"VALUES ({', '.join([mark] * len(table.columns))})"
            for name, table in TABLES.items()
        }

    def execute(self, conn: Connection, batch: Iterable[tuple[int, str, Any]]) -> None:
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        for position, kind, fields in batch:
            for name, row in index_entries(position, kind, fields):
                rows[name].append(row)
        for name, values in rows.items():
            if values:
                conn.exec_driver_sql(self._sql[name], values)


# --------------------------------------------------------------------------- reading
def holder_positions(conn: Connection, holder: str) -> list[int]:
    """Positions of the indexed events shown by `history --holder`, in store order."""
    h = t.history_holders.c
    return list(conn.execute(select(h.position).where(h.holder == holder).order_by(h.position)).scalars())


def issuance_positions(conn: Connection, issuance: str, also_joined: Iterable[str] = ()) -> list[int]:
    """Positions of the indexed events shown by `history --issuance`, in store order: the
    issuance's own events and the departures of every holder who joined it (in the index, or
    in `also_joined`: holders who joined it in events not indexed yet)."""
    i, d = t.history_issuances.c, t.history_departures.c
    joined = select(i.joined).where(i.issuance == issuance, i.joined.is_not(None))
    parts = [
        select(i.position).where(i.issuance == issuance),
        select(d.position).where(d.holder.in_(joined)),
    ]
    extra = sorted(set(also_joined))
    for k in range(0, len(extra), 500):
        parts.append(select(d.position).where(d.holder.in_(extra[k : k + 500])))
    return sorted(conn.execute(union(*parts)).scalars())


def joined_holders(conn: Connection, issuance: str) -> set[str]:
    """Holders who joined the issuance in the indexed events."""
    i = t.history_issuances.c
    return set(conn.execute(select(i.joined).where(i.issuance == issuance, i.joined.is_not(None))).scalars())


# --------------------------------------------------------------------------- verifying
class Fingerprint:
    """An order-free fingerprint of each index table: the count of its rows and the sum of a
    keyed hash of each row. The key is random per run, so nobody who edits the tables can make
    a changed set of rows add up to the same sum; memory is constant, whatever the log's size."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else os.urandom(16)
        self.sums = {name: 0 for name in TABLES}
        self.counts = {name: 0 for name in TABLES}

    def add(self, name: str, row: tuple[Any, ...]) -> None:
        digest = hashlib.blake2b(repr(row).encode("utf-8", "surrogatepass"), key=self.key, digest_size=16).digest()
        self.sums[name] = (self.sums[name] + int.from_bytes(digest, "big")) & _MASK
        self.counts[name] += 1

    def add_event(self, position: int, kind: str, fields: Any) -> None:
        for name, row in index_entries(position, kind, fields):
            self.add(name, row)


_MASK = (1 << 128) - 1


def stored_fingerprint(conn: Connection, key: bytes, page: int = 5000) -> Fingerprint:
    """The fingerprint of the index tables as stored (streamed: never the whole table in memory)."""
    fp = Fingerprint(key)
    for name, table in TABLES.items():
        result = conn.execution_options(stream_results=True, yield_per=page).execute(select(table))
        for row in result:
            fp.add(name, tuple(row))
    return fp
