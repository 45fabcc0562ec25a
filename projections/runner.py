"""Compatibility alias until the CLI and the tests are wired to :mod:`.projector` and
:mod:`.reader`: the old ``Projector(ledger_or_factory, config=None)``, which installed the read
models on construction and read the log's head by SQL. Delete once nothing imports it."""

from __future__ import annotations

from typing import Any

from . import projector as _projector
from .engines import make_engines  # noqa: F401  (old import point)
from .reader import log_head


class _LazyLog:
    """The service, opened on first use (queries that only read need no event store)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    @property
    def ledger(self) -> Any:
        if callable(self._ledger):
            self._ledger = self._ledger()
        return self._ledger

    def stored_fields(self, start: int, limit: int) -> Any:
        return self.ledger.stored_fields(start, limit)

    def head_position(self) -> int:
        return self.ledger.head_position()

    def iter_events(self, *args: Any, **kw: Any) -> Any:
        return self.ledger.iter_events(*args, **kw)


class Projector(_projector.Projector):
    def __init__(self, ledger: Any, config: Any = None) -> None:
        super().__init__(_LazyLog(ledger), config or ledger.config)
        self.install()

    @property
    def ledger(self) -> Any:
        return self.log.ledger

    def head(self) -> int:
        with self.reader.connect() as conn, conn.begin():
            return log_head(conn, self.kind)

    def status(self) -> _projector.Status:
        with self.reader.connect() as conn, conn.begin():
            return _projector.Status(self.position_in(conn), log_head(conn, self.kind))

    def position_in(self, conn: Any) -> int:
        from . import tracking

        return tracking.check_readable(conn).position


Status = _projector.Status
