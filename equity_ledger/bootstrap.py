"""Opening a store: the one place that wires the service, the projections and the readers.

A writer (``apply``, the verbs, ``demo``, ``init``, ``projections catch-up|rebuild``) gets the
application service over a stored unit of work and the projector that follows it. A reader
(queries and ``audit``) gets one consistent, read-only view: it never creates or alters
anything, needs only read access, and refuses a file or database that is not this tool's store.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .ledger.errors import StoreUnavailable
from .ledger.store import STORE_FORMAT, StoreConfig, events_table, load_ledger_key, store_config


if TYPE_CHECKING:  # the CLI imports this module on every start: SQLAlchemy only when used
    from sqlalchemy.engine import Connection

    from .ledger.log import LogReader


@dataclass
class View:
    """One consistent state of a store: a connection in a read transaction, its log, and how
    far the projections are (their tracking position against the log's head)."""

    conn: "Connection"
    log: "LogReader"
    config: StoreConfig
    key: bytes | None
    status: Any


class Books:
    """One store, opened for one command. Parts are opened on first use."""

    def __init__(self, url: str | None, warn: Callable[[str], None] | None = None) -> None:
        self.config = store_config(url)
        self.key = load_ledger_key()
        self.warn = warn or (lambda message: sys.stderr.write(message + "\n"))
        self._service: Any = None
        self._projector: Any = None
        self._read_models: Any = None

    # ------------------------------------------------------------------ writing
    @property
    def service(self) -> Any:
        """The application service over this store (opening it for writing)."""
        if self._service is None:
            from .ledger.service import LedgerService
            from .ledger.unit_of_work import StoredUnitOfWork

            self._refuse_foreign_file()
            self._service = LedgerService(StoredUnitOfWork(self.config, self.key, self.warn))
        return self._service

    @property
    def projector(self) -> Any:
        """The projector that keeps the read models of this store up to date (a writer)."""
        if self._projector is None:
            from .projections.projector import Projector

            uow = self.service.uow
            self._projector = Projector(uow.log, self.config)
            self._projector.install()
        return self._projector

    @property
    def upkeep(self) -> Any:
        """The projector for ``projections catch-up|rebuild`` of an existing store. It reads the
        log through its own engine, so upkeep never opens the application service (nor imports
        the domain and the event store): a rebuild only folds stored events."""
        if self._projector is None:
            from .projections.projector import Projector

            self.require_existing()
            self._refuse_foreign_file()
            projector = Projector(None, self.config)
            try:
                _check_ours(projector.log, self.config)
            except StoreUnavailable:
                projector.close()
                raise
            except Exception as e:
                projector.close()
                if not is_store_error(e):
                    raise
                raise StoreUnavailable(f"cannot open store {self.config.display}: {_one_line(e)}") from None
            self._projector = projector
            projector.install()
        return self._projector

    def apply(self, commands: Iterable[Any], progress: Callable[[int], None] | None = None) -> Any:
        """Apply commands and bring the projections up to date (the service's one apply)."""
        return self.service.apply(commands, projections=self.projector, progress=progress)

    def check(self, commands: Iterable[Any]) -> Iterator[Any]:
        """Check commands as if applied, storing nothing (``apply --dry-run``): the service's
        outcomes, one per command, over a unit of work that never writes."""
        from .ledger.service import LedgerService
        from .ledger.unit_of_work import DryRunUnitOfWork

        self._refuse_foreign_file()
        service = LedgerService(DryRunUnitOfWork(self.config, self.key, self.warn))
        try:
            yield from service.iter_check(commands)
        finally:
            service.close()

    def _refuse_foreign_file(self) -> None:
        """An existing SQLite file that holds tables, none of them ours, is another program's."""
        if self.config.kind != "sqlite" or not os.path.exists(self.config.display):
            return
        _check_path(self.config.display)
        if os.path.getsize(self.config.display) == 0:
            return
        import sqlite3

        try:
            conn = sqlite3.connect(f"file:{self.config.display}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open store {self.config.display}: {e}") from None
        table, _ = events_table("sqlite")
        if tables and table not in tables and "ledger_meta" not in tables:
            raise StoreUnavailable(f"{self.config.display} is not an equity-ledger store (it holds other tables)")

    # ------------------------------------------------------------------ reading
    def require_existing(self) -> None:
        """Upkeep of an existing store never creates one: a missing SQLite file is an error."""
        if self.config.kind == "sqlite":
            path = self.config.display
            if not os.path.exists(path):
                raise StoreUnavailable(
                    f"cannot read store {path}: no such file (create it with `equity-ledger init`, "
                    "`apply` or `demo`)"
                )
            _check_path(path, "read")
            if os.path.getsize(path) == 0:
                raise StoreUnavailable(f"{path} is not an equity-ledger store (an empty file)")

    @contextmanager
    def reading(self) -> Iterator[View]:
        """One consistent, read-only state of the store (refuses a store that is not ours)."""
        self.require_existing()
        if self._read_models is None:
            from .projections.reader import ReadModels

            self._read_models = ReadModels(self.config, readonly=True)
        try:
            from .ledger.log import LogReader
            from .projections import tracking
            from .projections.tracking import Status

            with self._read_models.engine.connect() as conn, conn.begin() as txn:
                log = LogReader(conn, self.config.kind)
                _check_ours(log, self.config)
                position = tracking.check_readable(conn).position
                yield View(conn, log, self.config, self.key, Status(position, log.head_position()))
                txn.rollback()
        except StoreUnavailable:
            raise
        except Exception as e:
            if not is_store_error(e):
                raise
            raise StoreUnavailable(f"cannot read store {self.config.display}: {_one_line(e)}") from None

    def close(self) -> None:
        for part in (self._projector, self._read_models):
            if part is not None:
                part.close()
        if self._service is not None:
            self._service.uow.close()


def _check_path(path: str, verb: str = "open") -> None:
    if os.path.isdir(path):
        raise StoreUnavailable(f"cannot {verb} store {path}: it is a directory, not an SQLite file")


def _check_ours(log: "LogReader", config: StoreConfig) -> None:
    tables = log.tables()
    table, _ = events_table(config.kind)
    if not {table, "ledger_chain", "ledger_commands"} <= tables:
        raise StoreUnavailable(f"{config.display} is not an equity-ledger store (no ledger tables)")
    meta = log.meta()
    if meta and meta.get("format") != STORE_FORMAT:
        raise StoreUnavailable(f"{config.display} is not an equity-ledger store")


def is_store_error(e: BaseException) -> bool:
    """An error of the database or its driver (as opposed to a bug): shown as one line."""
    import sqlite3

    mods = ("eventsourcing", "sqlalchemy", "psycopg", "sqlite3", "psycopg_pool")
    return isinstance(e, (sqlite3.Error, OSError)) or type(e).__module__.split(".")[0] in mods


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else type(e).__name__
    # SQLAlchemy prefixes the driver's message with its class: "(psycopg.OperationalError) ..."
    if first.startswith("(") and ") " in first:
        first = first.split(") ", 1)[1]
    return first


@contextmanager
def open_books(url: str | None, warn: Callable[[str], None] | None = None) -> Iterator[Books]:
    """The store at `url` (``--db``, else $EQUITY_LEDGER_DB, else ./equity-ledger.sqlite)."""
    books = Books(url, warn)
    try:
        yield books
    finally:
        try:
            books.close()
        except Exception:  # noqa: BLE001  closing must not hide the command's own outcome
            pass
