"""Opening a store for a CLI command: the service, the projector, and their errors."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from ..ledger.errors import StoreUnavailable
from ..ledger.store import store_config


class Store:
    """The ledger service and its projector for one CLI invocation, opened lazily."""

    def __init__(self, url: str | None) -> None:
        self.config = store_config(url)
        self._ledger: Any = None
        self._projector: Any = None

    def require_existing(self) -> None:
        """Queries never create a store: a missing SQLite file is an error, not an empty answer."""
        if self.config.kind == "sqlite" and not os.path.exists(self.config.display):
            raise StoreUnavailable(
                f"cannot open store {self.config.display}: no such file "
                "(create it with `equity-ledger init`, `apply` or `demo`)"
            )

    @property
    def ledger(self) -> Any:
        if self._ledger is None:
            from ..ledger.application import Ledger

            self._ledger = Ledger(self.config)
        return self._ledger

    @property
    def projector(self) -> Any:
        if self._projector is None:
            from ..projections.runner import Projector

            self._projector = Projector(lambda: self.ledger, self.config)
        return self._projector

    def close(self) -> None:
        if self._projector is not None:
            self._projector.close()
        if self._ledger is not None:
            self._ledger.close()


@contextmanager
def opened(url: str | None) -> Iterator[Store]:
    store = Store(url)
    try:
        yield store
    finally:
        try:
            store.close()
        except Exception:
            pass
