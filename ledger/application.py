"""The application service: the one way commands reach the domain, from `apply` and the verbs.

It validates nothing itself: commands are parsed by :mod:`.commands` and every rule is checked
by the aggregates. What it owns is the unit of work: aggregates are kept in memory across a
batch, many commands are stored in one transaction (their events in command order, with the
command ids in the same transaction), and a refused command leaves nothing behind because the
aggregates refuse before they change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import OriginatorVersionError
from eventsourcing.persistence import IntegrityError, PersistenceError

from . import ids
from .commands import Command
from .errors import (
    BeforeResolution,
    IdReused,
    LedgerError,
    Refused,
    ResolutionExists,
    StoreUnavailable,
    UnknownHolder,
    UnknownIssuance,
)
from .holder import Holder
from .issuance import Issuance
from .issuer import Issuer
from .store import StoreConfig, events_table, schema_lock, store_config
from .terms import Terms
from .transcodings import fast_loads, register_ledger_transcodings

# A snapshot is taken when an aggregate grows past a multiple of this many events, so that
# loading a big issuance costs one snapshot plus at most this many events.
SNAPSHOT_EVERY = 2000
BATCH_SIZE = 2000
CONFLICT_RETRIES = 20


class LedgerApplication(Application):
    """eventsourcing Application: repository, event store, snapshots, notification log."""

    name = "EquityLedger"
    is_snapshotting_enabled = True

    def register_transcodings(self, transcoder: Any) -> None:
        super().register_transcodings(transcoder)
        register_ledger_transcodings(transcoder)


@dataclass
class ApplyReport:
    """What an apply did: commands applied, skipped as already applied, events stored."""

    applied: int = 0
    skipped: int = 0
    events: int = 0
    refused: LedgerError | None = None
    types: dict[str, int] = field(default_factory=dict)


class CommandRefused(LedgerError):
    """A refusal, with where it happened (line and id) prefixed to the rule's message."""

    def __init__(self, where: str, error: LedgerError) -> None:
        self.error = error
        self.rule = error.rule
        super().__init__(f"{where}: refused [{error.rule}]: {error}")


class Ledger:
    """The application service. One instance per store; not shared between threads."""

    def __init__(self, config: StoreConfig | str | None = None) -> None:
        self.config = config if isinstance(config, StoreConfig) else store_config(config)
        try:
            with schema_lock(self.config):
                self.app = LedgerApplication(env=dict(self.config.env, CREATE_TABLE="y"))
        except LedgerError:
            raise
        except Exception as e:  # driver errors, permissions, unreachable servers
            raise StoreUnavailable(f"cannot open store {self.config.display}: {_one_line(e)}") from None
        self.recorder = self.app.recorder
        self._cache: dict[UUID, Any] = {}
        self._base_version: dict[UUID, int] = {}
        self._stored: dict[UUID, Any] = {}  # aggregates stored since the last snapshot pass
        # Called with [(position, event)] after each stored batch: lets the projections fold
        # what was just written without reading it back and decoding it.
        self.on_stored: Callable[[list[tuple[int, Any]]], None] | None = None
        self._loads: Callable[[bytes], Any] | None = None

    def close(self) -> None:
        self.app.close()

    # ------------------------------------------------------------------ aggregates in memory
    def _get(self, aggregate_id: UUID) -> Any:
        if aggregate_id in self._cache:
            return self._cache[aggregate_id]
        try:
            agg = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            agg = None
        except OriginatorVersionError:
            raise StoreUnavailable(
                f"store {self.config.display}: the stored events of aggregate {aggregate_id} are "
                "not contiguous (edited by hand?); run `equity-ledger audit verify`"
            ) from None
        self._cache[aggregate_id] = agg
        if agg is not None:
            self._base_version[aggregate_id] = agg.version
        return agg

    def _put_new(self, agg: Any) -> None:
        self._cache[agg.id] = agg
        self._base_version[agg.id] = 0

    def issuance(self, issuance: str) -> Issuance:
        agg = self._get(ids.issuance_id(issuance))
        if agg is None:
            raise UnknownIssuance(f"issuance {issuance} has no resolution on record")
        return agg

    def holder(self, holder: str) -> Holder | None:
        return self._get(ids.holder_id(holder))

    def _departed_on(self, holder: str):
        h = self.holder(holder)
        return h.departed_on if h is not None else None

    # ------------------------------------------------------------------ use cases
    def pass_resolution(self, cmd: Command) -> list[Any]:
        if self._get(ids.issuance_id(cmd.issuance)) is not None:
            raise ResolutionExists(f"issuance {cmd.issuance} already has its resolution")
        issuer = self._get(ids.issuer_id())
        made = []
        if issuer is None:
            issuer = Issuer(issuer=cmd.issuer, registered_on=cmd.resolved_on, **_meta(cmd))
            self._put_new(issuer)
            made.append(issuer)
        else:
            issuer.check_same_issuer(cmd.issuer)
        issuance = Issuance(
            issuance=cmd.issuance,
            issuer=issuer.name,
            body=cmd.body,
            resolved_on=cmd.resolved_on,
            title=cmd.title,
            max_rights=cmd.max_rights,
            **_meta(cmd),
        )
        self._put_new(issuance)
        return [*made, issuance]

    def set_terms(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.set_terms(Terms.from_fields(cmd.fields), **_meta(cmd))
        return [issuance]

    def allot_rights(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        holder = self.holder(cmd.holder)
        issuance.allot(
            holder=cmd.holder,
            name=cmd.name,
            group=cmd.group,
            rights=cmd.rights,
            allotted_on=cmd.allotted_on,
            payment=cmd.payment,
            departed_on=holder.departed_on if holder else None,
            **_meta(cmd),
        )
        if holder is None:
            holder = Holder(
                holder=cmd.holder,
                name=cmd.name,
                issuance=cmd.issuance,
                joined_on=cmd.allotted_on,
                **_meta(cmd),
            )
            self._put_new(holder)
        else:
            holder.join(cmd.issuance, cmd.allotted_on, **_meta(cmd))
        return [issuance, holder]

    def exercise_rights(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.exercise(
            holder=cmd.holder,
            rights=cmd.rights,
            exercised_on=cmd.exercised_on,
            delivery=cmd.delivery,
            departed_on=self._departed_on(cmd.holder),
            **_meta(cmd),
        )
        return [issuance]

    def forfeit_rights(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.forfeit(
            holder=cmd.holder, rights=cmd.rights, forfeited_on=cmd.forfeited_on, **_meta(cmd)
        )
        return [issuance]

    def record_departure(self, cmd: Command) -> list[Any]:
        holder = self.holder(cmd.holder)
        if holder is None:
            raise UnknownHolder(f"holder {cmd.holder} has no rights on record")
        holder.depart(
            cmd.departed_on, [self.issuance(i) for i in holder.issuances], **_meta(cmd)
        )
        return [holder]

    def adjust_shares(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.adjust(cmd.ratio, cmd.effective_on, **_meta(cmd))
        return [issuance]

    def expire_rights(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.expire(cmd.expired_on, **_meta(cmd))
        return [issuance]

    # ------------------------------------------------------------------ applying commands
    def apply(
        self,
        commands: Iterable[Command],
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> ApplyReport:
        """Apply commands in order, many per transaction; stop at the first refusal.

        `commands` may raise LedgerError while being iterated (a malformed line): the commands
        before it are stored, then the error is raised. A refusal is raised as CommandRefused
        after the commands before it were stored.
        """
        report = ApplyReport()
        it = iter(commands)
        try:
            self._apply_all(it, batch_size, progress, report)
        finally:
            # Snapshots once per run, not per batch: a big issuance is copied once, so the cost
            # stays linear in the events applied.
            self._snapshot()
        return report

    def _apply_all(
        self,
        it: Iterator[Command],
        batch_size: int,
        progress: Callable[[int], None] | None,
        report: ApplyReport,
    ) -> None:
        while True:
            batch: list[Command] = []
            error: LedgerError | None = None
            try:
                for cmd in it:
                    batch.append(cmd)
                    if len(batch) >= batch_size:
                        break
            except LedgerError as e:
                error = e
            if batch:
                self._apply_batch(batch, report)
                if progress:
                    progress(len(batch))
            if error is not None:
                raise error
            if len(batch) < batch_size:
                return

    def _apply_batch(self, batch: list[Command], report: ApplyReport) -> None:
        for attempt in range(CONFLICT_RETRIES):
            try:
                self._try_batch(batch, report)
                return
            except IntegrityError:
                # Another writer stored events for an aggregate we hold, or the same command
                # id, since we loaded them: forget what we hold and redo the batch from the
                # store; commands that are no longer valid are then refused by the domain.
                self._forget()
            except LedgerError:
                raise
            except PersistenceError as e:
                self._forget()
                raise StoreUnavailable(
                    f"cannot write store {self.config.display}: {_one_line(e)}"
                ) from None
            except BaseException:
                self._forget()
                raise
        raise StoreUnavailable(
            f"store {self.config.display}: gave up after {CONFLICT_RETRIES} conflicting writes"
        )

    def _try_batch(self, batch: list[Command], report: ApplyReport) -> None:
        known = self.recorder.command_digests([c.id for c in batch])
        events: list[Any] = []
        recorded: list[tuple[str, str, int]] = []
        touched: dict[UUID, Any] = {}
        counts: dict[str, int] = {}
        skipped = 0
        refusal: CommandRefused | None = None
        for cmd in batch:
            seen = known.get(cmd.id)
            if seen is not None:
                if seen != cmd.digest:
                    refusal = CommandRefused(
                        cmd.where,
                        IdReused(f"command id {cmd.id} was applied before with other content"),
                    )
                    break
                skipped += 1
                continue
            try:
                aggregates = getattr(self, cmd.type)(cmd)
            except Refused as e:
                refusal = CommandRefused(cmd.where, e)
                break
            n = 0
            for agg in aggregates:
                new = agg.collect_events()
                events.extend(new)
                n += len(new)
                touched[agg.id] = agg
            recorded.append((cmd.id, cmd.digest, n))
            known[cmd.id] = cmd.digest
            counts[cmd.type] = counts.get(cmd.type, 0) + 1
        if events:
            # Straight to the event store: the events are already in command order, and
            # Application.save's per-event protocol checks cost more than the insert.
            recordings = self.app.events.put(events, commands=recorded)
            self._stored.update(touched)
            if self.on_stored is not None and recordings:
                try:
                    self.on_stored([(r.notification.id, r.domain_event) for r in recordings])
                except Exception:  # noqa: BLE001
                    # The events are stored: a projection that cannot follow now is brought up
                    # to date by catch-up, which reports its own errors.
                    self.on_stored = None
        report.applied += len(recorded)
        report.skipped += skipped
        report.events += len(events)
        for k, v in counts.items():
            report.types[k] = report.types.get(k, 0) + v
        if refusal is not None:
            report.refused = refusal
            raise refusal

    def _snapshot(self) -> None:
        """Snapshot every stored aggregate that grew past a multiple of SNAPSHOT_EVERY."""
        snaps = []
        aggregates, self._stored = list(self._stored.values()), {}
        for agg in aggregates:
            base = self._base_version.get(agg.id, 0)
            if agg.version // SNAPSHOT_EVERY > base // SNAPSHOT_EVERY:
                snaps.append(type(agg).Snapshot.take(agg))
                self._base_version[agg.id] = agg.version
        if snaps and self.app.snapshots is not None:
            self.app.snapshots.put(snaps)

    def _forget(self) -> None:
        self._cache.clear()
        self._base_version.clear()
        self._stored.clear()

    # ------------------------------------------------------------------ reading the log
    def notifications(self, start: int, limit: int) -> list[Any]:
        """Stored events from position `start` on (inclusive), at most `limit`."""
        return list(self.recorder.select_notifications(start=start, limit=limit))

    def decode(self, notification: Any) -> Any:
        return self.app.mapper.to_domain_event(notification)

    def stored_fields(self, start: int, limit: int) -> list[tuple[int, str, Any]]:
        """(position, event type, fields) of the stored events from `start` on, at most `limit`.

        The projections' reader: a fold needs the event's type and fields, not a domain event
        object with its UUID and version, and building those was a third of a rebuild. Fields
        are decoded by :func:`.transcodings.fast_loads` with the application's own
        transcodings; a store whose mapper encrypts or compresses goes the mapper's way.
        """
        mapper = self.app.mapper
        if mapper.cipher is not None or mapper.compressor is not None:
            return [
                (n.id, *_kind_and_fields(n.topic, self.decode(n).__dict__))
                for n in self.notifications(start, limit)
            ]
        if self._loads is None:
            self._loads = fast_loads(mapper.transcoder)
        table, column = events_table(self.config.kind)
        rows = self.recorder.query(
            f"SELECT {column}, topic, state FROM {table} WHERE {column} >= ? ORDER BY {column} LIMIT ?",
            (start, limit),
        )
        loads = self._loads
        return [(int(pos), *_kind_and_fields(topic, loads(state))) for pos, topic, state in rows]

    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def iter_events(self, start: int = 1, page: int = 5000) -> Iterator[tuple[int, Any]]:
        """(position, domain event) for every stored event from `start`, streamed by pages."""
        while True:
            rows = self.notifications(start, page)
            for n in rows:
                yield n.id, self.decode(n)
            if len(rows) < page:
                return
            start = rows[-1].id + 1


def _kind_and_fields(topic: str, fields: dict[str, Any]) -> tuple[str, Any]:
    # "equity_ledger.ledger.issuance:Issuance.RightsAllotted" -> "RightsAllotted"
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1], SimpleNamespace(**fields)


def _meta(cmd: Command) -> dict[str, str]:
    return {
        "command_id": cmd.id,
        "actor": cmd.actor,
        "reason": cmd.reason,
        "command_digest": cmd.digest,
    }


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = ["Ledger", "LedgerApplication", "ApplyReport", "CommandRefused", "BeforeResolution"]
