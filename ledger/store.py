"""Event store wiring: which database, how its events are chained (see recorders.py).

eventsourcing's own SQLite and PostgreSQL recorders are subclassed (:mod:`.recorders`) to write,
in the same transaction as the events they insert:

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
import hmac
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from uuid import UUID

from .errors import StoreUnavailable

GENESIS = "0" * 64
DEFAULT_URL = "sqlite:///equity-ledger.sqlite"
_RECORDERS = __name__.rsplit(".", 1)[0] + ".recorders"


def _link_message(prev: str, position: int, originator_id: UUID | str, version: int, topic: str) -> bytes:
    oid = str(originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id)))
    return f"{prev}\n{position}\n{oid}\n{version}\n{topic}\n".encode()


def link_hash(prev: str, position: int, originator_id: UUID | str, version: int, topic: str,
              state: bytes, key: bytes | None = None) -> str:
    """The chain link of one stored event: SHA-256 over the previous link and the event, or
    HMAC-SHA256 with the ledger key when one is configured (then a link cannot be forged by
    someone who can write the database but does not hold the key)."""
    h = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
    h.update(_link_message(prev, position, originator_id, version, topic))
    h.update(bytes(state))
    return h.hexdigest()


def snapshot_seal(key: bytes | None, originator_id: UUID, version: int, topic: str, state: bytes,
                  link: str) -> str:
    """What binds a snapshot to the log: a digest (an HMAC with the key) over the snapshot and
    the chain link of the aggregate's event it was taken at."""
    h = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
    h.update(f"snapshot\n{originator_id}\n{version}\n{topic}\n{link}\n".encode())
    h.update(bytes(state))
    return h.hexdigest()


KEY_ENV = "EQUITY_LEDGER_KEY_FILE"
MIN_KEY_BYTES = 16


def load_ledger_key() -> bytes | None:
    """The ledger key from the file named by EQUITY_LEDGER_KEY_FILE (None when unset)."""
    path = os.environ.get(KEY_ENV)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError as e:
        raise StoreUnavailable(f"cannot read the ledger key file {path} ({KEY_ENV}): {e.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise StoreUnavailable(
            f"the ledger key in {path} is too short: it needs at least {MIN_KEY_BYTES} bytes of secret"
        )
    return key


def key_fingerprint(key: bytes) -> str:
    """A public name of a key: tells a wrong key from a forged link without revealing it."""
    return hmac.new(key, b"equity-ledger key fingerprint", hashlib.sha256).hexdigest()[:16]


# The store's own facts, in the ledger_meta table: what kind of store it is and how it chains.
STORE_FORMAT = "equity-ledger"
CHAIN_PLAIN = "sha256"
CHAIN_KEYED = "hmac-sha256"


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


@contextmanager
def schema_lock(config: StoreConfig) -> Iterator[None]:
    """Serialise table creation between processes opening one PostgreSQL store at once.

    `CREATE TABLE IF NOT EXISTS` is not safe against itself in PostgreSQL (two sessions can
    both decide to create: "tuple concurrently updated"); a session advisory lock held around
    the start-up DDL makes the second process wait and then find the tables. SQLite serialises
    writers by itself.
    """
    if config.kind != "postgresql":
        yield
        return
    import psycopg

    dsn = config.url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StoreUnavailable(f"cannot open store {config.display}: {first}") from None
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
        yield
    finally:
        conn.close()  # ends the session, and with it the lock


_SCHEMA_LOCK_KEY = 0x6571_6C65_6467  # "eqledg"


def events_table(kind: str) -> tuple[str, str]:
    """(table, notification-id column) of the stored events for a backend."""
    if kind == "sqlite":
        return "stored_events", "rowid"
    return "equityledger_events", "notification_id"


def snapshots_table(kind: str) -> str:
    """The snapshots table of a backend."""
    return "stored_snapshots" if kind == "sqlite" else "equityledger_snapshots"


def resolve_url(url: str | None) -> str:
    """`--db`, else EQUITY_LEDGER_DB, else an SQLite file in the current directory."""
    return url or os.environ.get("EQUITY_LEDGER_DB") or DEFAULT_URL


def store_config(url: str | None = None) -> StoreConfig:
    """Translate a store URL into the eventsourcing environment for our recorders.

    Accepted: ``sqlite:///relative.sqlite``, ``sqlite:////absolute/path.sqlite``, a plain file
    path (an SQLite file), and ``postgresql://``, ``postgresql+psycopg://`` or ``postgres://``
    (all PostgreSQL through psycopg 3).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = resolve_url(url)
    if "://" not in text:
        # A plain file path (`--db ./books.sqlite`, `--db /abs/books.sqlite`) is an SQLite file.
        text = "sqlite:///" + os.path.abspath(text)
    try:
        u = make_url(text)
    except ArgumentError:
        raise StoreUnavailable(f"cannot open store {text!r}: not an SQLAlchemy URL") from None
    display = u.render_as_string(hide_password=True)
    backend = u.get_backend_name()
    if backend == "postgres":  # the libpq spelling (postgres://) means PostgreSQL too
        backend = "postgresql"
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
            "APPLICATION_RECORDER_TOPIC": f"{_RECORDERS}:LedgerSQLiteRecorder",
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
            "APPLICATION_RECORDER_TOPIC": f"{_RECORDERS}:postgres_recorder",
        }
        sa_url = u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return StoreConfig(sa_url, "postgresql", display, env)
    raise StoreUnavailable(
        f"cannot open store {display}: only sqlite:///, postgresql:// (postgresql+psycopg://, "
        "postgres://) URLs or a plain file path are supported"
    )
