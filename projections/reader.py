"""The read side of the projections: consistent, read-only snapshots for queries and audits.

Opening one creates and alters nothing; every use is one read transaction (one snapshot for all
its statements), and it refuses read models of another layout in one line naming
`projections rebuild` (:func:`.tracking.check_readable`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ..ledger.store import StoreConfig, events_table
from . import tracking
from .engines import make_engines
from .tracking import Status


class ReadModels:
    """Snapshots of a store's read models. `readonly` (the default) opens the store so that
    nothing can be written through it: SQLite by ``mode=ro``, PostgreSQL as a read-only session
    (a role with SELECT only is enough)."""

    def __init__(self, config: StoreConfig, readonly: bool = True) -> None:
        self.config = config
        _writer, self.engine = make_engines(config.sqlalchemy_url, config.kind, readonly=readonly)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection inside one read transaction, once the read models are known to have
        this code's layout; pass it to :mod:`.queries` (several queries: one state)."""
        with self.engine.connect() as conn, conn.begin() as txn:
            tracking.check_readable(conn)
            yield conn
            txn.rollback()  # nothing to keep: a read transaction ends without a commit

    def status(self, conn: Connection | None = None) -> Status:
        """Tracking position and head of the log, from `conn`'s snapshot (or a new one)."""
        if conn is None:
            with self.snapshot() as c:
                return self.status(c)
        return Status(tracking.check_readable(conn).position, log_head(conn, self.config.kind))


def log_head(conn: Connection, kind: str) -> int:
    """Position of the last stored event, by SQL (no event-store set-up); 0 without events."""
    table, column = events_table(kind)
    if not inspect(conn).has_table(table):
        return 0  # the recorder creates its table with the first event
    return int(conn.execute(text(f"SELECT MAX({column}) FROM {table}")).scalar() or 0)
