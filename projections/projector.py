"""Keeps the read models up to date from the event log: catch-up, fold of what was just
stored, rebuild, status.

It orchestrates three parts: :mod:`.tracking` (the stored position and its lock), :mod:`.plan`
(the row writes a batch makes, pure) and :mod:`.writer` (runs a plan). Each page of events is
folded and written in one transaction together with the new tracking position, so a crash
leaves the projections at a page boundary and `catch-up` resumes from there. Writers are
serialised (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR UPDATE`` on the tracking
row), so two catch-ups never fold the same event twice. A rebuild is one transaction: readers
keep the old read models until the new ones are complete, and a failure leaves the old ones.

The event log is anything with ``stored_fields(start, limit) -> [(position, type, fields)]``
and ``head_position() -> int``; by default, a :class:`~..ledger.log.LogReader` of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from sqlalchemy import delete
from sqlalchemy.engine import Connection

from ..ledger.errors import LedgerError, StoreUnavailable
from ..ledger.log import LogReader
from ..ledger.store import StoreConfig, schema_lock
from . import schema as t
from . import tracking
from .tracking import Status
from .engines import make_engines
from .errors import ProjectionFailed, ProjectionsAhead, one_line
from .fold import event_type
from .history_index import HistoryIndexWriter
from .plan import Key, Row, effects_of_batch, plan, wanted_holdings
from .vesting import VestingWriter
from .writer import Writer

PAGE = 5000
# The most holdings whose latest row is kept between batches. A fold of a long log touches
# holdings all over it; past this bound the least recently cached half is dropped and read
# back from the table when a later batch touches it again, so memory stays flat as the log
# grows (bench/ measures what it costs).
LATEST_CACHE = 20_000


class EventLog(Protocol):
    def stored_fields(self, start: int, limit: int) -> list[tuple[int, str, Any]]: ...

    def head_position(self) -> int: ...


class Projector:
    """Folds the events of `log` into the ``proj_*`` tables of the store `config` names.

    Constructing it touches nothing; :meth:`install` (called by every writing method) creates
    the read models when missing and refolds them when an older layout made them.
    """

    def __init__(self, log: EventLog | None, config: StoreConfig) -> None:
        self.config = config
        self.kind = config.kind
        self.writer, self.reader = make_engines(config.sqlalchemy_url, config.kind)
        # Without a log of the writer's (upkeep of an existing store), it reads the events
        # through its own reader engine.
        self.log: EventLog = log if log is not None else LogReader(self.reader, config.kind)
        self._write = Writer(config.kind)
        self._vesting = VestingWriter()
        self._history = HistoryIndexWriter(config.kind)
        self._latest: dict[Key, Row] = {}  # the latest row of holdings, as of _known_position
        self.cache_limit = LATEST_CACHE
        self._known_position: int | None = None
        self._empty = False  # the cache holds every holding there is (a fold from nothing)
        self._installed = False

    def close(self) -> None:
        self.writer.dispose()
        self.reader.dispose()

    # ------------------------------------------------------------------ install
    def install(self) -> None:
        """Create the read models if missing; if an older layout made them, drop, recreate and
        refold them in one transaction. For writers only (queries never call it)."""
        if self._installed:
            return
        with self._writing():
            with schema_lock(self.config), self.writer.begin() as conn:
                state = tracking.read(conn)
                if state is not None and state.schema_version > t.SCHEMA_VERSION:
                    tracking.check_readable(conn)  # raises: made by a newer version
                if state is None or state.schema_version < t.SCHEMA_VERSION:
                    self._forget()
                    tracking.recreate(conn)
                    refolded = self._fold_all(conn) if state is not None else 0
                else:
                    refolded = None
            if refolded is not None:
                self._known_position = refolded
        self._installed = True

    # ------------------------------------------------------------------ status
    def position(self) -> int:
        """The log position the projections describe (a reader: refuses an older layout)."""
        with self.reader.connect() as conn, conn.begin():
            return tracking.check_readable(conn).position

    def status(self) -> Status:
        return Status(self.position(), self.log.head_position())

    # ------------------------------------------------------------------ folding
    def catch_up(self, progress: Callable[[int], None] | None = None, page: int = PAGE) -> int:
        """Fold every event after the tracking position; returns how many were folded."""
        self.install()
        done = 0
        first = True
        while True:
            with self._writing(), self.writer.begin() as conn:
                pos = tracking.lock(conn)
                if first:
                    self._check_head(pos)
                    first = False
                self._sync(conn, pos)
                rows = self.log.stored_fields(pos + 1, page)
                if rows:
                    self._fold(conn, rows)
                    pos = rows[-1][0]
                    tracking.advance(conn, pos)
            self._known_position = pos
            done += len(rows)
            if progress and rows:
                progress(len(rows))
            if len(rows) < page:
                return done

    def fold_stored(self, stored: list[tuple[int, Any]]) -> bool:
        """Fold events just stored by this process when they directly follow the projections'
        position; otherwise catch up from the log. True when folded from memory."""
        if not stored:
            return True
        self.install()
        with self._writing(), self.writer.begin() as conn:
            pos = tracking.lock(conn)
            behind = pos != stored[0][0] - 1
            if not behind:
                self._sync(conn, pos)
                self._fold(conn, [(p, event_type(ev), ev) for p, ev in stored])
                last = stored[-1][0]
                tracking.advance(conn, last)
        if behind:
            # Lagging (an earlier run was killed), a gap in the numbering (PostgreSQL skips
            # the ids of a killed transaction) or a position past these events: read the log.
            self.catch_up()
            return False
        self._known_position = last
        return True

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Refold the read models from the first event, in one transaction: until it commits,
        readers see the old ones; if it fails, the old ones stay. Returns the events folded."""
        with self._writing():
            with schema_lock(self.config), self.writer.begin() as conn:
                state = tracking.read(conn)
                self._forget()
                if state is None or state.schema_version != t.SCHEMA_VERSION:
                    tracking.recreate(conn)
                else:
                    tracking.lock(conn)
                    for table in t.READ_MODELS:
                        conn.execute(delete(table))
                    tracking.advance(conn, 0)
                done = [0]

                def counted(n: int) -> None:
                    done[0] += n
                    if progress:
                        progress(n)

                last = self._fold_all(conn, counted)
            self._known_position = last
        self._installed = True
        return done[0]

    # ------------------------------------------------------------------ internals
    def _writing(self) -> Any:
        return _Writing(self)

    def _forget(self) -> None:
        self._latest.clear()
        self._known_position = None
        self._empty = False
        self._vesting.forget()

    def _check_head(self, pos: int) -> None:
        if pos > 0:
            head = self.log.head_position()
            if pos > head:
                raise ProjectionsAhead(pos, head)

    def _sync(self, conn: Connection, pos: int) -> None:
        if pos != self._known_position:
            # Someone else moved the projections (or this is our first page): what we hold in
            # memory may be stale.
            self._latest.clear()
            self._empty = pos == 0 and not self._write.has_holdings(conn)
            self._vesting.forget()

    def _fold_all(self, conn: Connection, progress: Callable[[int], None] | None = None) -> int:
        """Fold the whole log into empty read models in this transaction; the last position."""
        self._latest.clear()
        self._empty = True
        pos = 0
        while True:
            rows = self.log.stored_fields(pos + 1, PAGE)
            if rows:
                self._fold(conn, rows)
                pos = rows[-1][0]
                if progress:
                    progress(len(rows))
            if len(rows) < PAGE:
                break
        tracking.advance(conn, pos)
        return pos

    def _fold(self, conn: Connection, batch: list[tuple[int, str, Any]]) -> None:
        """Fold (position, event type, fields) triples into the tables, in this transaction."""
        folded = effects_of_batch(batch)
        if not self._empty:
            wanted = wanted_holdings(folded, self._latest)
            if wanted:
                self._write.load_latest(conn, wanted, self._latest)
        writes = plan(folded, self._latest)
        savepoint = conn.begin_nested()
        try:
            self._write.execute(conn, writes)
            self._vesting.execute(conn, folded)
            self._history.execute(conn, batch)
        except Exception as e:
            savepoint.rollback()
            raise self._pinpoint(conn, batch, e) from None
        savepoint.commit()
        self._bound_cache()

    def _bound_cache(self) -> None:
        """Drop the least recently cached half when the cache is over its bound: a dropped
        holding's row is in the table, and the next batch that touches it loads it."""
        extra = len(self._latest) - self.cache_limit
        if extra > 0:
            drop = extra + self.cache_limit // 2
            for key in list(self._latest)[:drop]:
                del self._latest[key]
            self._empty = False

    def _pinpoint(self, conn: Connection, batch: list[tuple[int, str, Any]], error: Exception) -> ProjectionFailed:
        """The page failed as a whole: fold its events one by one (each in a savepoint, from a
        fresh cache) to name the first that fails. The caller's transaction rolls back anyway."""
        self._latest.clear()
        self._empty = False
        for position, kind, fields in batch:
            savepoint = conn.begin_nested()
            try:
                folded = effects_of_batch([(position, kind, fields)])
                self._write.load_latest(conn, wanted_holdings(folded, self._latest), self._latest)
                self._write.execute(conn, plan(folded, self._latest))
                self._vesting.execute(conn, folded)
                self._history.execute(conn, [(position, kind, fields)])
            except ProjectionFailed as e:
                savepoint.rollback()
                return e
            except Exception as e:
                savepoint.rollback()
                return ProjectionFailed(position, kind, e)
            savepoint.commit()
        position, kind, _fields = batch[0]
        return ProjectionFailed(position, kind, error)


class _Writing:
    """Around a writer's transaction: on any failure the cache is forgotten (it may hold rows
    the rolled-back transaction wrote), and an unexpected error becomes one line naming the
    store; expected errors (LedgerError) pass unchanged."""

    def __init__(self, projector: Projector) -> None:
        self.p = projector

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> bool:
        if error is None:
            return False
        self.p._forget()
        if isinstance(error, (LedgerError, KeyboardInterrupt, SystemExit)) or not isinstance(error, Exception):
            return False
        raise StoreUnavailable(f"cannot write the projections of {self.p.config.display}: {one_line(error)}") from None
