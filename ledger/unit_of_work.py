"""Units of work: where the use cases find aggregates and where their events go.

:class:`StoredUnitOfWork` keeps aggregates in memory across a run of commands, stores a batch's
events in command order in one transaction together with their command ids and chain links,
and takes snapshots sealed to the chain. :class:`MemoryUnitOfWork` keeps aggregates in memory
only: ``audit verify`` re-applies the stored history through the same use cases with it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Callable, Iterable, Sequence
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import OriginatorVersionError
from eventsourcing.persistence import IntegrityError

from .errors import LedgerError, StoreUnavailable
from .log import LogReader
from .personal import HolderKeys
from .store import (
    CHAIN_KEYED,
    CHAIN_PLAIN,
    KEY_ENV,
    STORE_FORMAT,
    StoreConfig,
    key_fingerprint,
    schema_lock,
    snapshot_seal,
    snapshots_table,
)
from .transcodings import fast_encoder, register_transcodings

_MISSING = object()

# A snapshot is taken when an aggregate grows past a multiple of this many events, so that
# loading a large issuance costs one snapshot plus at most this many events.
SNAPSHOT_EVERY = 2000


class LedgerApplication(Application):
    """eventsourcing Application: the event store, its recorder, snapshots, the mapper."""

    name = "EquityLedger"
    is_snapshotting_enabled = True

    def register_transcodings(self, transcoder: Any) -> None:
        register_transcodings(transcoder)


class MemoryUnitOfWork:
    """Aggregates in memory only (for re-applying a history that is already stored)."""

    def __init__(self) -> None:
        self.aggregates: dict[UUID, Any] = {}
        self.holder_keys = HolderKeys()  # no store: the replay's addresses are already sealed

    def get(self, aggregate_id: UUID) -> Any:
        return self.aggregates.get(aggregate_id)

    def add(self, aggregate: Any) -> None:
        self.aggregates[aggregate.id] = aggregate


class StoredUnitOfWork:
    """Aggregates of one store, cached across a run; batches stored with their command ids."""

    # Writers create the store's tables when they are missing; a dry run never does.
    create_tables = True
    purpose = "for writing"

    def __init__(self, config: StoreConfig, key: bytes | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.key = key
        self.warn = warn or (lambda _message: None)
        try:
            with schema_lock(config):
                self.app = LedgerApplication(
                    env=dict(config.env, CREATE_TABLE="y" if self.create_tables else "n")
                )
        except LedgerError:
            raise
        except Exception as e:  # driver errors, permissions, unreachable servers
            raise StoreUnavailable(f"cannot open store {config.display} {self.purpose}: {_one_line(e)}") from None
        self.recorder = self.app.recorder
        self.recorder.chain_key = key
        self.log = LogReader(self.recorder, config.kind, self.app.mapper)
        self._check_meta()
        self._cache: dict[UUID, Any] = {}
        self._base_version: dict[UUID, int] = {}
        self._stored: dict[UUID, Any] = {}  # aggregates stored since the last snapshot pass
        self._last_position: dict[UUID, int] = {}
        self.holder_keys = HolderKeys(self._stored_key)
        self._encode = fast_encoder(self.app.mapper)

    def _stored_key(self, holder: str) -> str | None:
        rows = self.recorder.query("SELECT key FROM ledger_holder_keys WHERE holder = ?", (holder,))
        return rows[0][0] if rows else None

    def close(self) -> None:
        self.app.close()

    # ------------------------------------------------------------------ the store's own facts
    def _check_meta(self) -> None:
        """Record, or check, what kind of store this is and how its chain is computed."""
        meta = self.log.meta()
        empty = self.log.head_position() == 0
        if not meta or (empty and meta.get("chain") != (CHAIN_KEYED if self.key else CHAIN_PLAIN)):
            if self.key is not None and not empty:
                raise StoreUnavailable(
                    f"store {self.config.display} was chained without a ledger key; it cannot "
                    f"take one now (unset {KEY_ENV} to write to it)"
                )
            rows = [("format", STORE_FORMAT), ("chain", CHAIN_KEYED if self.key else CHAIN_PLAIN)]
            if self.key is not None:
                rows.append(("key", key_fingerprint(self.key)))
            for k, v in rows:
                self.recorder.execute(
                    "INSERT INTO ledger_meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (k, v),
                )
            if not meta and not empty:
                # A store written before snapshots were sealed: its snapshots are derived data
                # that nothing binds to the chain, so they go (the next runs take sealed ones).
                self.recorder.execute(f"DELETE FROM {snapshots_table(self.config.kind)}")
            return
        check_meta(meta, self.key, self.config.display)

    # ------------------------------------------------------------------ aggregates
    def get(self, aggregate_id: UUID) -> Any:
        """The aggregate, from memory or the store (None when it has no events)."""
        agg = self._cache.get(aggregate_id, _MISSING)
        if agg is not _MISSING:
            return agg
        agg = self._load(aggregate_id)
        self._cache[aggregate_id] = agg
        if agg is not None:
            self._base_version[aggregate_id] = agg.version
        return agg

    def prefetch(self, aggregate_ids: Iterable[UUID]) -> None:
        """Learn in one go which of these aggregates the store has never seen (a batch's new
        holders): they are remembered as absent, as :meth:`get` would find them one query
        pair at a time. The others load on first use."""
        cache = self._cache
        missing = [i for i in dict.fromkeys(aggregate_ids) if i not in cache]
        if not missing:
            return
        known = self.log.stored_ids(missing)
        for i in missing:
            if i not in known:
                cache[i] = None

    def add(self, aggregate: Any) -> None:
        self._cache[aggregate.id] = aggregate
        self._base_version[aggregate.id] = 0

    def _load(self, aggregate_id: UUID) -> Any:
        agg, version = None, 0
        snap = self.log.snapshot_row(aggregate_id)
        if snap is not None:
            if self._snapshot_sealed(snap):
                agg = self.log.decode(snap).mutate(None)
                version = snap.version
            else:
                # Never build on a snapshot that fails its check: the events are the truth.
                self.warn(
                    f"warning: the snapshot of aggregate {aggregate_id} at version {snap.version} "
                    "fails its check (edited?); loaded from the events instead; run "
                    "`equity-ledger audit verify`"
                )
        try:
            for event in self.log.events_of(aggregate_id, version):
                version += 1
                if event.originator_version != version:
                    raise OriginatorVersionError(event.originator_version)
                agg = event.mutate(agg)
        except OriginatorVersionError:
            raise StoreUnavailable(
                f"store {self.config.display}: the stored events of aggregate {aggregate_id} are "
                "not contiguous (edited by hand?); run `equity-ledger audit verify`"
            ) from None
        except Exception as e:  # noqa: BLE001  a stored event the domain cannot take back
            raise StoreUnavailable(
                f"store {self.config.display}: the stored events of aggregate {aggregate_id} cannot "
                f"be loaded ({type(e).__name__}); run `equity-ledger audit verify`"
            ) from None
        return agg

    def _snapshot_sealed(self, snap: Any) -> bool:
        found = self.log.snapshot_seal(snap.originator_id, snap.version)
        if found is None:
            return False
        position, seal = found
        link = self.log.chain_link_at(position)
        if link is None or self.log.position_of(snap.originator_id, snap.version) != position:
            return False
        expected = snapshot_seal(self.key, snap.originator_id, snap.version, snap.topic, snap.state, link)
        return hmac.compare_digest(expected, seal)

    # ------------------------------------------------------------------ storing
    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        """Content digests of those command ids that were already applied."""
        return self.log.command_digests(list(command_ids))

    def commit(self, events: list[Any], commands: list[tuple[str, str, int]],
               touched: dict[UUID, Any]) -> list[tuple[int, Any]]:
        """Store events (in command order) with their command ids; (position, event) pairs.

        The holders' keys go in the same transaction: a key made for a holder's first details,
        and the deletion of the key of every holder whose details these events erase."""
        details = {e.holder for e in events if type(e).__name__ == "DetailsRecorded"}
        erasures = {e.holder for e in events if type(e).__name__ == "DetailsErased"}
        extra: dict[str, Any] = {}
        if details or erasures or self.holder_keys.made:
            extra["holder_keys"] = self.holder_keys.take(details, erasures)
        # The recorder directly, not the application's event store: its recordings (two objects
        # per event) are only read back here for their position.
        positions = self.recorder.insert_events(list(map(self._encode, events)), commands=commands, **extra)
        self._stored.update(touched)
        stored = list(zip(positions or (), events, strict=True))
        last = self._last_position
        for position, event in stored:
            last[event.originator_id] = position
        return stored

    def forget(self) -> None:
        """Drop what memory holds: the next use reloads from the store (after a conflict)."""
        self._cache.clear()
        self._base_version.clear()
        self._stored.clear()
        self.holder_keys.forget()

    def snapshot(self) -> None:
        """Snapshot every stored aggregate that grew past a multiple of SNAPSHOT_EVERY, sealed
        to the chain link of its last event (with the ledger key, when there is one)."""
        from eventsourcing.domain import Snapshot

        aggregates, self._stored = list(self._stored.values()), {}
        for agg in aggregates:
            base = self._base_version.get(agg.id, 0)
            position = self._last_position.get(agg.id)
            if position is None or agg.version // SNAPSHOT_EVERY <= base // SNAPSHOT_EVERY:
                continue
            link = self.log.chain_link_at(position)
            if link is None:
                continue
            stored = self.app.mapper.to_stored_event(Snapshot.take(agg))
            seal = snapshot_seal(self.key, agg.id, agg.version, stored.topic, stored.state, link)
            # The seal first: a snapshot without its seal would only be ignored, with a warning.
            self.recorder.execute(
                "INSERT INTO ledger_snapshot_seals (originator_id, version, position, seal) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (str(agg.id), agg.version, position, seal),
            )
            try:
                self.app.snapshots.recorder.insert_events([stored])  # type: ignore[union-attr]
            except IntegrityError:
                pass  # another writer took the same snapshot
            self._base_version[agg.id] = agg.version


class DryRunUnitOfWork(StoredUnitOfWork):
    """A unit of work for `apply --dry-run`: aggregates are loaded from the store as a writer
    loads them, but nothing is ever written: :meth:`commit` only remembers the command ids
    (and their digests) in memory, so that a later line with the same id is seen as applied.

    It never creates tables or the store's facts; a store that does not exist yet (an SQLite
    file that is missing, a database without the ledger's tables) is checked as an empty one.
    The ledger key is checked as a writer checks it: a dry run says what `apply` would do.
    """

    create_tables = False
    purpose = "to check commands against it"

    def __init__(self, config: StoreConfig, key: bytes | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self._remembered: dict[str, str] = {}
        self.empty = config.kind == "sqlite" and not os.path.exists(config.display)
        if self.empty:
            # Opening a missing SQLite file would create it: check against nothing instead.
            self.config, self.key = config, key
            self.warn = warn or (lambda _message: None)
            self.app = None  # type: ignore[assignment]
            self._cache, self._base_version, self._stored, self._last_position = {}, {}, {}, {}
            self.holder_keys = HolderKeys()  # no store: every holder's key would be new
            return
        super().__init__(config, key, warn)
        from .store import events_table

        if not {events_table(config.kind)[0], "ledger_chain", "ledger_commands"} <= self.log.tables():
            self.empty = True
            self.holder_keys = HolderKeys()  # its table is missing too

    def close(self) -> None:
        if self.app is not None:
            self.app.close()

    def _check_meta(self) -> None:
        meta = self.log.meta()
        if meta:
            check_meta(meta, self.key, self.config.display)

    def get(self, aggregate_id: UUID) -> Any:
        if self.empty:
            return self._cache.get(aggregate_id)
        return super().get(aggregate_id)

    def prefetch(self, aggregate_ids: Iterable[UUID]) -> None:
        if not self.empty:
            super().prefetch(aggregate_ids)

    def known_digests(self, command_ids: Sequence[str]) -> dict[str, str]:
        found = {} if self.empty else super().known_digests(command_ids)
        found.update((c, self._remembered[c]) for c in command_ids if c in self._remembered)
        return found

    def commit(self, events: list[Any], commands: list[tuple[str, str, int]],
               touched: dict[UUID, Any]) -> list[tuple[int, Any]]:
        """Remember the command ids as applied; store nothing (the aggregates in memory
        already hold the new state)."""
        for command_id, digest, _n in commands:
            self._remembered[command_id] = digest
        return []

    def forget(self) -> None:
        """Nothing to forget: a dry run never conflicts with a writer (it writes nothing)."""

    def snapshot(self) -> None:
        """A dry run takes no snapshot."""


def check_meta(meta: dict[str, str], key: bytes | None, display: str) -> None:
    """Refuse a store that is not ours, or whose chain needs a key we lack (or another key)."""
    if meta.get("format") != STORE_FORMAT:
        raise StoreUnavailable(f"{display} is not an equity-ledger store")
    chain = meta.get("chain")
    if chain == CHAIN_KEYED:
        if key is None:
            raise StoreUnavailable(
                f"store {display} is authenticated with a ledger key: set {KEY_ENV} to the key's file"
            )
        if meta.get("key") != key_fingerprint(key):
            raise StoreUnavailable(f"store {display} was keyed with another ledger key than {KEY_ENV}'s")
    elif chain == CHAIN_PLAIN:
        if key is not None:
            raise StoreUnavailable(
                f"store {display} was chained without a ledger key, but {KEY_ENV} is set: its events "
                "are not authenticated by that key"
            )
    else:
        raise StoreUnavailable(f"store {display} names an unknown chain algorithm {chain!r}")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
