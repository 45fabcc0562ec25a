"""Event store wiring: eventsourcing's own SQLite and PostgreSQL recorders, plus two tables.

The recorders are subclassed to write, in the same transaction as the events they insert:

* ``ledger_chain``: one SHA-256 link per event, over the event's canonical encoding and the
  previous link (notification order). The insert already holds the store's write lock (SQLite's
  single writer; PostgreSQL's ``LOCK TABLE ... EXCLUSIVE`` taken by eventsourcing), so reading
  the head and appending cannot fork the chain, whatever the number of writers.
* ``ledger_commands``: one row per applied command id with the digest of its content and the
  position of its first event, which makes re-runs idempotent and lets the audit map command
  ids to events.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from .errors import StoreUnavailable

GENESIS = "0" * 64
DEFAULT_URL = "sqlite:///equity-ledger.sqlite"


def link_hash(prev: str, position: int, originator_id: UUID | str, version: int, topic: str,
              state: bytes) -> str:
    """The chain link of one stored event: SHA-256 over the previous link and the event."""
    oid = str(originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id)))
    h = hashlib.sha256()
    h.update(f"{prev}\n{position}\n{oid}\n{version}\n{topic}\n".encode())
    h.update(bytes(state))
    return h.hexdigest()


def _chain_and_command_rows(
    prev: str,
    stored_events: Sequence[StoredEvent],
    positions: Sequence[int],
    commands: Sequence[tuple[str, str, int]],
) -> tuple[list[tuple[int, str]], list[tuple[str, str, int, int]]]:
    chain = []
    for s, pos in zip(stored_events, positions, strict=True):
        prev = link_hash(prev, pos, s.originator_id, s.originator_version, s.topic, s.state)
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
    CHAIN_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_chain ("
        "position BIGINT PRIMARY KEY, hash TEXT NOT NULL)"
    )
    COMMANDS_DDL = (
        "CREATE TABLE IF NOT EXISTS ledger_commands ("
        "command_id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
        "position BIGINT NOT NULL, events INTEGER NOT NULL)"
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
            return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in c.fetchall()]

    def command_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        """Digests of those of `command_ids` that were already applied."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(command_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for cid, digest in self.query(
                f"SELECT command_id, digest FROM ledger_commands WHERE command_id IN ({marks})",
                chunk,
            ):
                found[cid] = digest
        return found

    def chain_head(self) -> tuple[int, str]:
        rows = self.query("SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
        return (int(rows[0][0]), rows[0][1]) if rows else (0, GENESIS)


class LedgerSQLiteRecorder(_LedgerTables, SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, with the chain and command tables."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            self.CHAIN_DDL,
            self.COMMANDS_DDL,
            self.COMMANDS_INDEX_DDL,
        ]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any):
        # The event inserts come first: they take SQLite's write lock, so the head read
        # below is the head every other writer will see until we commit.
        positions = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            c.execute("SELECT hash FROM ledger_chain ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            chain, commands = _chain_and_command_rows(
                row[0] if row else GENESIS, stored_events, positions, kwargs.get("commands", ())
            )
            c.executemany("INSERT INTO ledger_chain VALUES (?,?)", chain)
            c.executemany("INSERT INTO ledger_commands VALUES (?,?,?,?)", commands)
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
                SQL(ddl) for ddl in (self.CHAIN_DDL, self.COMMANDS_DDL, self.COMMANDS_INDEX_DDL)
            )

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
                )
                curs.executemany("INSERT INTO ledger_chain VALUES (%s,%s)", chain)
                curs.executemany("INSERT INTO ledger_commands VALUES (%s,%s,%s,%s)", commands)
            return positions

    return LedgerPostgresRecorder


@dataclass(frozen=True)
class StoreConfig:
    """Where the ledger lives: the SQLAlchemy URL, and the eventsourcing environment for it."""

    url: str
    kind: str  # "sqlite" or "postgresql"
    display: str  # the URL with any password hidden, for messages
    env: dict[str, str]

    @property
    def sqlalchemy_url(self) -> str:
        return self.url


def resolve_url(url: str | None) -> str:
    """`--db`, else EQUITY_LEDGER_DB, else an SQLite file in the current directory."""
    return url or os.environ.get("EQUITY_LEDGER_DB") or DEFAULT_URL


def store_config(url: str | None = None) -> StoreConfig:
    """Translate an SQLAlchemy URL into the eventsourcing environment for our recorders."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = resolve_url(url)
    try:
        u = make_url(text)
    except ArgumentError:
        raise StoreUnavailable(f"cannot open store {text!r}: not an SQLAlchemy URL") from None
    display = u.render_as_string(hide_password=True)
    backend = u.get_backend_name()
    if backend == "sqlite":
        path = u.database or ""
        if not path or path == ":memory:" or "mode=memory" in path:
            raise StoreUnavailable(
                f"cannot open store {display}: an in-memory SQLite store keeps nothing; "
                "name a file (sqlite:///path/to/ledger.sqlite)"
            )
        path = os.path.abspath(path)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise StoreUnavailable(f"cannot open store {path}: folder {folder} does not exist")
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": f"{__name__}:LedgerSQLiteRecorder",
        }
        return StoreConfig(f"sqlite:///{path}", "sqlite", path, env)
    if backend == "postgresql":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": u.database or "",
            "POSTGRES_HOST": u.host or "localhost",
            "POSTGRES_PORT": str(u.port or 5432),
            "POSTGRES_USER": u.username or "",
            "POSTGRES_PASSWORD": u.password or "",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "2",
            "APPLICATION_RECORDER_TOPIC": f"{__name__}:postgres_recorder",
        }
        sa_url = u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return StoreConfig(sa_url, "postgresql", display, env)
    raise StoreUnavailable(
        f"cannot open store {display}: only sqlite:/// and postgresql+psycopg:// URLs are supported"
    )


def __getattr__(name: str) -> Any:
    # `postgres_recorder` is resolved by topic from the environment; build the class lazily.
    if name == "postgres_recorder":
        cls = _postgres_recorder_class()
        globals()["postgres_recorder"] = cls
        return cls
    raise AttributeError(name)

