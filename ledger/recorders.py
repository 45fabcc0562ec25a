"""eventsourcing's recorders, extended with the hash chain and the command-id table.

Both tables are written inside the recorder's own insert transaction, after the events (see
:mod:`.store` for why the chain cannot fork), so an event, its link and its command id are
stored together or not at all.
"""

from __future__ import annotations

from typing import Any, Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from .store import GENESIS, link_hash


def _chain_and_command_rows(
    prev: str,
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
    commands: Sequence[tuple[str, str, int]],
    key: bytes | None,
) -> tuple[list[tuple[int, str]], list[tuple[str, str, int, int]]]:
    chain = []
    for s, pos in zip(stored_events, positions, strict=True):
        prev = link_hash(prev, pos, s.originator_id, s.originator_version, s.topic, s.state, key)
        chain.append((pos, prev))
    rows = []
    i = 0
    for command_id, digest, n_events in commands:
        rows.append((command_id, digest, positions[i], n_events))
        i += n_events
    return chain, rows


class _LedgerTables:
    """SQL shared by both recorders ('?' placeholders; PostgreSQL swaps them for '%s')."""

    placeholder = "?"
    # The ledger key (bytes) when one is configured: links are then HMACs (set by the service).
    chain_key: bytes | None = None
    META_DDL = "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    SEALS_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_snapshot_seals ("
        "originator_id TEXT NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL, "
        "seal TEXT NOT NULL, PRIMARY KEY (originator_id, version))"
    )
    CHAIN_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_chain ("
        "position BIGINT PRIMARY KEY, hash TEXT NOT NULL)"
    )
    COMMANDS_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_commands ("
        "command_id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
        "position BIGINT NOT NULL, events INTEGER NOT NULL)"
    )
    # Holders' keys for their sealed personal details (see ledger/personal.py): NOT chained, so
    # that erasing a holder's details deletes the row and nothing in the chain changes.
    HOLDER_KEYS_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_holder_keys (holder TEXT PRIMARY KEY, key TEXT NOT NULL)"
    )
    COMMANDS_INDEX_DDL = (
        "CREATE INDEX IF NOT EXISTS ix_ledger_commands_position ON ledger_commands (position)"
    )

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", "%s")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only statement on the event store's own connection."""
        with self.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute(self.sql(statement), tuple(params))
            rows = c.fetchall()
            if rows and type(rows[0]) is tuple:  # sqlite3's rows are tuples already
                return rows
            return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run one writing statement in its own transaction on the event store's connection."""
        with self.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            c.execute(self.sql(statement), tuple(params))


class LedgerSQLiteRecorder(_LedgerTables, SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, with the chain and command tables."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            self.CHAIN_DDL,
            self.COMMANDS_DDL,
            self.COMMANDS_INDEX_DDL,
            self.META_DDL,
            self.SEALS_DDL,
            self.HOLDER_KEYS_DDL,
        ]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any):
        # The event inserts come first: they take SQLite's write lock, so the head read
        # below is the head every other writer will see until we commit.
        positions = self._insert_stored(c, stored_events)
        if stored_events:
            c.execute("SELECT hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            chain, commands = _chain_and_command_rows(
                row[0] if row else GENESIS, stored_events, positions, kwargs.get("commands", ()),
                self.chain_key,
            )
            c.executemany("INSERT INTO ledger_chain VALUES (?,?)", chain)
            c.executemany("INSERT INTO ledger_commands VALUES (?,?,?,?)", commands)
            keys = kwargs.get("holder_keys")
            if keys:
                inserts, deletes = keys
                c.executemany("INSERT INTO ledger_holder_keys VALUES (?,?)", inserts)
                if deletes:
                    # Overwrite the deleted key's bytes in the page, not just unlink the row.
                    c.execute("PRAGMA secure_delete = ON")
                    c.executemany("DELETE FROM ledger_holder_keys WHERE holder = ?", [(h,) for h in deletes])
        return positions

    def _insert_stored(self, c: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Insert the events in one ``executemany`` (eventsourcing runs one ``execute`` per
        event to read each ``lastrowid``); their positions (rowids) are then the run that ends
        at ``last_insert_rowid()``: the insert holds the write lock, and a rowid table without
        AUTOINCREMENT numbers each new row one past the largest. That is checked on the first
        event; should it ever not hold, each position is looked up by its key."""
        if not stored_events:
            return []
        rows = [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        c.executemany(self.insert_events_statement, rows)
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        first = last - len(rows) + 1
        lookup = f"SELECT rowid FROM {self.events_table_name} WHERE originator_id = ? AND originator_version = ?"
        c.execute(lookup, rows[0][:2])
        found = c.fetchone()
        if found is not None and int(found[0]) == first:
            return list(range(first, last + 1))
        positions = []
        for row in rows:
            c.execute(lookup, row[:2])
            positions.append(int(c.fetchone()[0]))
        return positions


def _postgres_recorder_class():
    # Imported lazily: psycopg costs start-up time that SQLite users need not pay.
    from eventsourcing.postgres import PostgresApplicationRecorder

    class LedgerPostgresRecorder(_LedgerTables, PostgresApplicationRecorder):
        """eventsourcing's PostgreSQL application recorder, with the chain and command tables."""

        placeholder = "%s"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            from psycopg.sql import SQL

            self.sql_create_statements.extend(
                SQL(ddl) for ddl in (
                    self.CHAIN_DDL, self.COMMANDS_DDL, self.COMMANDS_INDEX_DDL, self.META_DDL,
                    self.SEALS_DDL, self.HOLDER_KEYS_DDL,
                )
            )

        def _insert_stored_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
            # As eventsourcing does (table lock, notify, one INSERT ... RETURNING the positions
            # in insert order), with one typed array per column instead of an array of composite
            # values, which psycopg dumps field by field in Python.
            self._lock_table(curs)
            self._notify_channel(curs)
            curs.execute(
                self._ledger_insert,
                (
                    [s.originator_id for s in stored_events],
                    [s.originator_version for s in stored_events],
                    [s.topic for s in stored_events],
                    [s.state for s in stored_events],
                ),
            )

        @property
        def _ledger_insert(self) -> Any:
            from psycopg.sql import SQL, Identifier

            statement = self.__dict__.get("_ledger_insert_sql")
            if statement is None:
                statement = self.__dict__["_ledger_insert_sql"] = SQL(
                    "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                    "SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[]) "
                    "RETURNING notification_id"
                ).format(
                    schema=Identifier(self.datastore.schema),
                    table=Identifier(self.events_table_name),
                    id_type=Identifier(self.datastore.originator_id_type),
                )
            return statement

        def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Any, **kwargs: Any):
            positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            if stored_events:
                # The events table is locked EXCLUSIVE by now: the head cannot move under us.
                curs.execute("SELECT hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
                row = curs.fetchone()
                chain, commands = _chain_and_command_rows(
                    row["hash"] if row else GENESIS,
                    stored_events,
                    positions,
                    kwargs.get("commands", ()),
                    self.chain_key,
                )
                # One statement per table (arrays unnested by the server), not one per row.
                curs.execute(
                    "INSERT INTO ledger_chain (position, hash) "
                    "SELECT * FROM unnest(%s::bigint[], %s::text[])",
                    ([p for p, _ in chain], [h for _, h in chain]),
                )
                if commands:
                    curs.execute(
                        "INSERT INTO ledger_commands (command_id, digest, position, events) "
                        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[])",
                        tuple(list(column) for column in zip(*commands)),
                    )
                keys = kwargs.get("holder_keys")
                if keys:
                    inserts, deletes = keys
                    curs.executemany("INSERT INTO ledger_holder_keys VALUES (%s,%s)", inserts)
                    curs.executemany("DELETE FROM ledger_holder_keys WHERE holder = %s", [(h,) for h in deletes])
            return positions

    return LedgerPostgresRecorder


def __getattr__(name: str) -> Any:
    # `postgres_recorder` is resolved by topic from the environment; build the class lazily.
    if name == "postgres_recorder":
        cls = _postgres_recorder_class()
        globals()["postgres_recorder"] = cls
        return cls
    raise AttributeError(name)

