"""SQLAlchemy engines for the read models: a writer that serialises folds, and a reader whose
every use is one consistent, read-only snapshot.

SQLite: the writer takes the write lock at ``BEGIN IMMEDIATE``; the reader issues an explicit
deferred ``BEGIN`` (pysqlite would run each SELECT in its own implicit snapshot), and the
read-only flavour opens the file by URI with ``mode=ro``, so nothing it runs can write.
PostgreSQL: the reader's transactions are ``REPEATABLE READ`` (one snapshot for all their
statements), and the read-only flavour also makes the session read only; a role with SELECT
only can use it.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url


def make_engines(url: str, kind: str, readonly: bool = False) -> tuple[Engine | None, Engine]:
    """(writer, reader) engines for a store; with `readonly`, (None, a read-only reader)."""
    reader = _reader(url, kind, readonly)
    if readonly:
        return None, reader
    return _writer(url, kind), reader


def _writer(url: str, kind: str) -> Engine:
    if kind != "sqlite":
        return create_engine(url, pool_size=2, max_overflow=2, connect_args={"connect_timeout": 5})
    writer = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(writer, "connect")
    def _no_implicit_begin(dbapi_conn, _rec):  # pysqlite's own BEGIN is deferred
        dbapi_conn.isolation_level = None
        # In WAL mode (the event store sets it) NORMAL syncs at checkpoints, not at every
        # commit: a power cut may lose the last folded pages, never tear one, and catch-up
        # refolds them from the events, whose connection keeps its own FULL setting.
        if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(writer, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return writer


def _reader(url: str, kind: str, readonly: bool) -> Engine:
    if kind != "sqlite":
        args: dict = {"connect_timeout": 5}
        if readonly:
            args["options"] = "-c default_transaction_read_only=on"
        return create_engine(
            url, pool_size=2, max_overflow=2, connect_args=args, isolation_level="REPEATABLE READ"
        )
    if readonly:
        path = make_url(url).database or ""

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                f"file:{quote(path)}?mode=ro", uri=True, timeout=30, isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                return conn
            except sqlite3.OperationalError as e:
                if "readonly" not in str(e) and "unable to open" not in str(e):
                    raise
                # A WAL store in a folder we cannot write: SQLite cannot make the shared-memory
                # file a reader needs. Nobody can write there either, so the file cannot change
                # under us: read it as immutable.
                conn.close()
                return sqlite3.connect(
                    f"file:{quote(path)}?mode=ro&immutable=1", uri=True, timeout=30,
                    isolation_level=None, check_same_thread=False,
                )

        reader = create_engine("sqlite://", creator=connect)
    else:
        reader = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(reader, "connect")
        def _no_implicit_begin(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None

    @event.listens_for(reader, "begin")
    def _begin_deferred(conn):
        # One snapshot for every statement of the transaction (WAL: from its first read).
        conn.exec_driver_sql("BEGIN")

    return reader
