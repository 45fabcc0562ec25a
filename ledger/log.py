"""The log reader: every read of the stored events, the chain and the command ids goes here.

It reads through one SQLAlchemy connection (or opens a short one per call from an engine), so a
caller that needs one consistent state (``audit verify``: events, chain links, command ids,
snapshots and projections) hands it the connection of its read transaction. It never writes, and
it needs no event-store machinery: rows are decoded with the application's own transcodings.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Iterable, Iterator
from uuid import UUID

from .errors import StoreUnavailable
from .store import events_table, snapshots_table

PAGE = 5000


def make_mapper() -> Any:
    """A mapper equal to the application's (same transcodings), built without a store."""
    from eventsourcing.persistence import JSONTranscoder, Mapper

    from .transcodings import register_transcodings

    transcoder = JSONTranscoder()
    register_transcodings(transcoder)
    return Mapper(transcoder=transcoder)


@dataclass(frozen=True)
class StoredRow:
    """One stored event as it is in the table, with its log position."""

    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes
    # False when the stored text of the aggregate id is not its canonical form (SQLite keeps it
    # as text: an upper-cased id names the same UUID but hides the aggregate from lookups).
    canonical_id: bool = True

    def stored_event(self) -> Any:
        from eventsourcing.persistence import StoredEvent

        return StoredEvent(self.originator_id, self.version, self.topic, self.state)


def event_kind(topic: str) -> str:
    """`equity_ledger.ledger.issuance:Issuance.RightsAllotted` -> `RightsAllotted`."""
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def _stored_row(position: Any, oid: Any, version: Any, topic: Any, state: Any) -> StoredRow:
    """A row of the events table as the ledger wrote it; a row edited into another shape (a
    state turned into text, an id that is no UUID) is one line naming its position."""
    try:
        if isinstance(state, str):  # SQLite keeps what an UPDATE wrote: the bytes are the text's
            state = state.encode("utf-8", "surrogatepass")
        uuid = _uuid(oid)
        return StoredRow(int(position), uuid, int(version), str(topic), bytes(state),
                         not isinstance(oid, str) or oid == uuid.hex)
    except (TypeError, ValueError):
        raise StoreUnavailable(
            f"the stored event at position {position} is not in the ledger's shape (edited by "
            "hand): it cannot be read"
        ) from None


_CANONICAL_HEX = re.compile(r"[0-9a-f]{32}")  # how SQLite keeps an aggregate id (UUID.hex)
_KINDS: dict[str, str] = {}


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


class LogReader:
    """Reads the log of one store: by position, decoded or as (type, fields), and its tables."""

    def __init__(self, source: Any, kind: str, mapper: Any = None) -> None:
        """`source` is a SQLAlchemy Connection (reads share its transaction), an Engine (a short
        connection per read), or the event store's recorder (the writer's own connection)."""
        self.source = source
        self.kind = kind
        # Decoding needs eventsourcing and the domain's transcodings: a query that only reads
        # the head of the log never imports them.
        self._mapper = mapper
        self._loads: Any = None
        self._events, self._pos = events_table(kind)
        self._snapshots = snapshots_table(kind)

    @property
    def mapper(self) -> Any:
        if self._mapper is None:
            self._mapper = make_mapper()
        return self._mapper

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if hasattr(self.source, "exec_driver_sql"):
            yield self.source
        else:
            with self.source.connect() as conn:
                yield conn

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if hasattr(self.source, "datastore"):  # the recorder: '?' marks, its own transaction
            return self.source.query(sql, params)
        if self.kind != "sqlite":
            sql = sql.replace("?", "%s")
        with self._conn() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql, params).all()]

    # ------------------------------------------------------------------ events
    def head_position(self) -> int:
        """Position of the last stored event (0 for an empty log)."""
        rows = self._rows(f"SELECT MAX({self._pos}) FROM {self._events}")
        return int(rows[0][0] or 0)

    def rows(self, start: int, limit: int) -> list[StoredRow]:
        """Stored events from position `start` on (inclusive), at most `limit`."""
        return [
            _stored_row(*r)
            for r in self._rows(
                f"SELECT {self._pos}, originator_id, originator_version, topic, state "
                f"FROM {self._events} WHERE {self._pos} >= ? ORDER BY {self._pos} LIMIT ?",
                (start, limit),
            )
        ]

    def iter_rows(self, start: int = 1, page: int = PAGE) -> Iterator[StoredRow]:
        """Every stored event from `start` on, in position order, read by pages."""
        while True:
            rows = self.rows(start, page)
            yield from rows
            if len(rows) < page:
                return
            start = rows[-1].position + 1

    def decode(self, row: StoredRow) -> Any:
        """The domain event of a stored row (through the mapper, as the application reads it)."""
        return self.mapper.to_domain_event(row.stored_event())

    def iter_events(self, start: int = 1, page: int = PAGE) -> Iterator[tuple[int, Any]]:
        """(position, domain event) for every stored event from `start`."""
        for row in self.iter_rows(start, page):
            yield row.position, self.decode(row)

    def rows_at(self, positions: Iterable[int], chunk: int = 1000) -> Iterator[StoredRow]:
        """The stored events at these positions, in position order, read `chunk` at a time (a
        filtered history reads its events by the positions of its index)."""
        ordered = sorted(positions)
        for i in range(0, len(ordered), chunk):
            part = tuple(ordered[i : i + chunk])
            yield from (
                _stored_row(*r)
                for r in self._rows(
                    f"SELECT {self._pos}, originator_id, originator_version, topic, state FROM {self._events} "
                    f"WHERE {self._pos} IN ({','.join('?' * len(part))}) ORDER BY {self._pos}",
                    part,
                )
            )

    def stored_fields(self, start: int, limit: int) -> list[tuple[int, str, Any]]:
        """(position, event type, fields) of the stored events from `start` on, at most `limit`.

        The projections' reader: a fold needs the event's type and fields, not a domain event
        with its UUID and version, and building those costs more than the fold itself.
        """
        if self._loads is None:
            self._loads = self._state_loads()
        loads = self._loads
        kinds = _KINDS
        out = []
        for position, oid, version, topic, state in self._rows(
            f"SELECT {self._pos}, originator_id, originator_version, topic, state "
            f"FROM {self._events} WHERE {self._pos} >= ? ORDER BY {self._pos} LIMIT ?",
            (start, limit),
        ):
            # The checks of _stored_row, without building a StoredRow and a UUID per event
            # that a fold never reads: an id in its stored form needs no parsing.
            if not (
                (type(oid) is UUID or type(oid) is str and _CANONICAL_HEX.fullmatch(oid))
                and type(state) is bytes and type(position) is int and type(version) is int
            ):
                row = _stored_row(position, oid, version, topic, state)
                position, topic, state = row.position, row.topic, row.state
            kind = kinds.get(topic)
            if kind is None:
                kind = kinds[topic] = event_kind(str(topic))
            out.append((int(position), kind, SimpleNamespace(**loads(state))))
        return out

    def _state_loads(self) -> Any:
        """The decoder of stored state. With the application's mapper, its transcoder's; without
        one (a projector doing upkeep), the values eventsourcing itself transcodes are decoded
        here and the event store and the domain are imported only if a ledger value appears
        (events hold dates, amounts and ids; terms and timelines live in snapshots)."""
        from .decoding import fast_loads

        if self._mapper is not None:
            return fast_loads(self.mapper.transcoder)
        full: list[Any] = []

        def other(name: str) -> Any:
            if not full:
                full.append({n: t.decode for n, t in self.mapper.transcoder.names.items()})
            return full[0].get(name)

        return fast_loads(None, other)

    def events_of(self, originator_id: UUID, after_version: int = 0) -> list[Any]:
        """The domain events of one aggregate after a version, in version order."""
        oid = originator_id.hex if self.kind == "sqlite" else originator_id
        rows = self._rows(
            f"SELECT originator_version, topic, state FROM {self._events} "
            "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version",
            (oid, after_version),
        )
        return [
            self.decode(StoredRow(0, originator_id, int(v), topic, bytes(state))) for v, topic, state in rows
        ]

    def stored_ids(self, originator_ids: list[UUID]) -> set[UUID]:
        """Those of `originator_ids` that have any stored event or snapshot (a few queries for
        many ids: the unit of work learns in one go which aggregates of a batch are new)."""
        sqlite = self.kind == "sqlite"
        found: set[UUID] = set()
        ids = list(dict.fromkeys(originator_ids))
        if not sqlite and ids:
            # PostgreSQL: one round trip per table, the ids as one array parameter
            for table in (self._events, self._snapshots):
                found.update(
                    _uuid(r[0])
                    for r in self._rows(f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id = ANY(?)",
                                        (ids,))
                )
            return found
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            params = tuple(u.hex for u in chunk) if sqlite else tuple(chunk)
            marks = ",".join("?" * len(chunk))
            for table in (self._events, self._snapshots):
                found.update(
                    _uuid(r[0])
                    for r in self._rows(f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id IN ({marks})",
                                        params)
                )
        return found

    # ------------------------------------------------------------------ chain and commands
    def chain_links(self, after: int, limit: int = PAGE) -> list[tuple[int, str]]:
        return [
            (int(p), h)
            for p, h in self._rows(
                "SELECT position, hash FROM ledger_chain WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            )
        ]

    def chain_link_at(self, position: int) -> str | None:
        rows = self._rows("SELECT hash FROM ledger_chain WHERE position = ?", (position,))
        return rows[0][0] if rows else None

    def chain_head(self) -> tuple[int, int, str | None]:
        """(last position, number of links, last hash) of the chain."""
        last = self._rows("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
        count = self._rows("SELECT COUNT(*) FROM ledger_chain")[0][0]
        if not last:
            return 0, 0, None
        return int(last[0][0]), int(count), last[0][1]

    def command_runs(self, after: int, limit: int = PAGE) -> list[tuple[int, str, str, int]]:
        """(first position, command id, digest, events) of recorded commands, by position."""
        return [
            (int(p), cid, digest, int(n))
            for p, cid, digest, n in self._rows(
                "SELECT position, command_id, digest, events FROM ledger_commands "
                "WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            )
        ]

    def command_digests(self, command_ids: list[str]) -> dict[str, str]:
        """Digests of those of `command_ids` that were already applied."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(command_ids))
        if self.kind != "sqlite" and ids:
            # PostgreSQL: one round trip, the ids as one array parameter
            return dict(self._rows("SELECT command_id, digest FROM ledger_commands WHERE command_id = ANY(?)",
                                   (ids,)))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._rows(
                    f"SELECT command_id, digest FROM ledger_commands WHERE command_id IN ({marks})",
                    tuple(chunk),
                )
            )
        return found

    # ------------------------------------------------------------------ snapshots
    def snapshot_keys(self) -> list[tuple[UUID, int]]:
        """(aggregate id, version) of every stored snapshot."""
        return [
            (_uuid(oid), int(v))
            for oid, v in self._rows(f"SELECT originator_id, originator_version FROM {self._snapshots}")
        ]

    def snapshot_row(self, originator_id: UUID, version: int | None = None) -> StoredRow | None:
        """The stored snapshot of an aggregate at `version` (None: the latest one)."""
        oid = originator_id.hex if self.kind == "sqlite" else originator_id
        sql = f"SELECT originator_version, topic, state FROM {self._snapshots} WHERE originator_id = ?"
        params: tuple[Any, ...] = (oid,)
        if version is not None:
            sql += " AND originator_version = ?"
            params += (version,)
        rows = self._rows(sql + " ORDER BY originator_version DESC LIMIT 1", params)
        if not rows:
            return None
        v, topic, state = rows[0]
        return StoredRow(0, originator_id, int(v), topic, bytes(state))

    def snapshot_seal(self, originator_id: UUID, version: int) -> tuple[int, str] | None:
        """(position of the aggregate's event at `version`, seal) recorded for a snapshot."""
        rows = self._rows(
            "SELECT position, seal FROM ledger_snapshot_seals WHERE originator_id = ? AND version = ?",
            (str(originator_id), version),
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        oid = originator_id.hex if self.kind == "sqlite" else originator_id
        rows = self._rows(
            f"SELECT {self._pos} FROM {self._events} WHERE originator_id = ? AND originator_version = ?",
            (oid, version),
        )
        return int(rows[0][0]) if rows else None

    def tables(self) -> set[str]:
        """Names of the tables in the store (a catalogue read: it never fails on a foreign store,
        and on PostgreSQL it does not abort the read transaction as a failed SELECT would)."""
        if self.kind == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        return {r[0] for r in self._rows(sql)}

    def meta(self) -> dict[str, str]:
        """The store's own facts (format, chain algorithm); empty for a store made before them."""
        if "ledger_meta" not in self.tables():
            return {}
        return dict(self._rows("SELECT key, value FROM ledger_meta"))
