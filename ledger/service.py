"""The application service: the one way commands reach the domain, from `apply`, the verbs, the
OCF import and `audit verify`'s re-application of the history.

One method per use case (``pass_resolution``, ``allot_rights`` ...), each taking a parsed
:class:`~.commands.Command`, finding its aggregates through the unit of work and calling their
public methods, which check every rule before they change. :meth:`LedgerService.apply` runs a
stream of commands in batches and then brings the projections up to date: the CLI, the tests
and bench/ all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Protocol

from eventsourcing.persistence import IntegrityError, PersistenceError

from . import ids
from .commands import Command
from .errors import (
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
from .personal import keyed_digest, seal
from .terms import Terms

BATCH_SIZE = 2000
CONFLICT_RETRIES = 20


class Projections(Protocol):
    """What the service needs of the read models: fold what it stored, or catch up."""

    def fold_stored(self, stored: list[tuple[int, Any]]) -> bool: ...

    def catch_up(self) -> int: ...


@dataclass
class ApplyReport:
    """What an apply did: commands applied, skipped as already applied, events stored."""

    applied: int = 0
    skipped: int = 0
    events: int = 0


@dataclass(frozen=True)
class Outcome:
    """What a dry run found for one command: it would be applied (with how many events),
    skipped (already applied), or refused (with the rule's slug and message).

    A line that is not a command at all has no id and type: ``refuse`` with rule
    ``bad-input``, and the check stops there (the reader cannot go past a bad line).
    """

    verdict: str  # "apply" | "skip" | "refuse"
    line: int | None
    command_id: str | None
    type: str | None
    events: int = 0
    rule: str | None = None
    message: str | None = None

    @property
    def where(self) -> str:
        """How messages name the command: `line N (id X)`, `id X`, or `line N`."""
        if self.command_id is None:
            return f"line {self.line}" if self.line is not None else "a line"
        return f"line {self.line} (id {self.command_id})" if self.line is not None else f"id {self.command_id}"


class CommandRefused(LedgerError):
    """A refusal, with where it happened (line and id) prefixed to the rule's message."""

    def __init__(self, where: str, error: LedgerError) -> None:
        self.error = error
        self.rule = error.rule
        super().__init__(f"{where}: refused [{error.rule}]: {error}")


class LedgerService:
    """The use cases of the ledger, over a unit of work (stored, or in memory for audits)."""

    def __init__(self, uow: Any) -> None:
        self.uow = uow

    def close(self) -> None:
        """Release the store the unit of work holds open (none for one in memory)."""
        close = getattr(self.uow, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ lookups
    def issuance(self, issuance: str) -> Issuance:
        agg = self.uow.get(ids.issuance_id(issuance))
        if agg is None:
            raise UnknownIssuance(f"issuance {issuance} has no resolution on record")
        return agg

    def holder(self, holder: str) -> Holder | None:
        return self.uow.get(ids.holder_id(holder))

    def _departed_on(self, holder: str) -> Any:
        h = self.holder(holder)
        return h.departed_on if h is not None else None

    # ------------------------------------------------------------------ use cases
    def execute(self, cmd: Command) -> list[Any]:
        """Run one command's use case; returns the aggregates it changed (events pending)."""
        return getattr(self, cmd.type)(cmd)

    def pass_resolution(self, cmd: Command) -> list[Any]:
        if self.uow.get(ids.issuance_id(cmd.issuance)) is not None:
            raise ResolutionExists(f"issuance {cmd.issuance} already has its resolution")
        issuer = self.uow.get(ids.issuer_id())
        made = []
        if issuer is None:
            issuer = Issuer(issuer=cmd.issuer, registered_on=cmd.resolved_on, **_meta(cmd))
            self.uow.add(issuer)
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
        self.uow.add(issuance)
        return [*made, issuance]

    def set_terms(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.set_terms(Terms.from_fields(cmd.fields), **_meta(cmd))
        return [issuance]

    def allot_rights(self, cmd: Command) -> list[Any]:
        f = cmd.fields  # the hot use cases read the fields directly (cmd.x is a fallback lookup)
        issuance = self.issuance(f["issuance"])
        holder = self.holder(f["holder"])
        meta = _meta(cmd)
        issuance.allot(
            holder=f["holder"],
            name=f["name"],
            group=f["group"],
            rights=f["rights"],
            allotted_on=f["allotted_on"],
            payment=f["payment"],
            departed_on=holder.departed_on if holder else None,
            vesting_start=f.get("vesting_start"),
            **meta,
        )
        if holder is None:
            holder = Holder(
                holder=f["holder"],
                name=f["name"],
                issuance=f["issuance"],
                joined_on=f["allotted_on"],
                **meta,
            )
            self.uow.add(holder)
        else:
            holder.join(f["issuance"], f["allotted_on"], **meta)
        return [issuance, holder]

    def exercise_rights(self, cmd: Command) -> list[Any]:
        f = cmd.fields
        issuance = self.issuance(f["issuance"])
        issuance.exercise(
            holder=f["holder"],
            rights=f["rights"],
            exercised_on=f["exercised_on"],
            delivery=f["delivery"],
            departed_on=self._departed_on(f["holder"]),
            share_price=f.get("share_price"),
            **_meta(cmd),
        )
        return [issuance]

    def forfeit_rights(self, cmd: Command) -> list[Any]:
        f = cmd.fields
        issuance = self.issuance(f["issuance"])
        issuance.forfeit(
            holder=f["holder"], rights=f["rights"], forfeited_on=f["forfeited_on"],
            departed_on=self._departed_on(f["holder"]), **_meta(cmd),
        )
        return [issuance]

    def record_departure(self, cmd: Command) -> list[Any]:
        holder = self.holder(cmd.holder)
        if holder is None:
            raise UnknownHolder(f"holder {cmd.holder} has no rights on record")
        issuances = [self.issuance(i) for i in holder.issuances]
        holder.depart(cmd.departed_on, issuances, **_meta(cmd))
        # Where the terms say so, what is still unvested lapses at the departure: one event per
        # issuance with unvested rights, after the holder's (the departure's guards ran).
        lapsed = [i for i in issuances if i.lapse_unvested(cmd.holder, cmd.departed_on, **_meta(cmd))]
        return [holder, *lapsed]

    def adjust_shares(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.adjust(cmd.ratio, cmd.effective_on, **_meta(cmd))
        return [issuance]

    def record_vesting_event(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        holders = [cmd.holder] if cmd.holder is not None else sorted(issuance.holdings)
        issuance.record_vesting_event(
            event_name=cmd.event,
            occurred_on=cmd.occurred_on,
            holder=cmd.holder,
            portion_met=cmd.portion_met,
            departures={h: self._departed_on(h) for h in holders},
            **_meta(cmd),
        )
        return [issuance]

    def expire_rights(self, cmd: Command) -> list[Any]:
        issuance = self.issuance(cmd.issuance)
        issuance.expire(cmd.expired_on, **_meta(cmd))
        return [issuance]

    # ------------------------------------------------------------------ personal details
    def record_holder_details(self, cmd: Command) -> list[Any]:
        holder = self._holder_on_record(cmd.holder)
        holder.check_not_erased()
        cmd = self.sealed(cmd)
        holder.record_details(cmd.effective_on, cmd.sealed, **_meta(cmd))
        return [holder]

    def erase_holder_details(self, cmd: Command) -> list[Any]:
        holder = self._holder_on_record(cmd.holder)
        holder.erase_details(**_meta(cmd))
        # The key row goes with the batch that stores this event (the unit of work's commit).
        self.uow.holder_keys.erase(cmd.holder)
        return [holder]

    def _holder_on_record(self, holder_id: str) -> Holder:
        holder = self.holder(holder_id)
        if holder is None:
            raise UnknownHolder(f"holder {holder_id} has no rights on record")
        return holder

    def sealed(self, cmd: Command) -> Command:
        """A details command with its address sealed under the holder's key (made on the
        holder's first details) and its content digest keyed by it (see :mod:`.personal`);
        any other command, one already sealed (the audit's replay), or one the use case will
        refuse (holder unknown or erased) unchanged."""
        if cmd.type != "record_holder_details" or "sealed" in cmd.fields:
            return cmd
        holder = self.holder(cmd.holder)
        if holder is None or holder.erased:
            return cmd
        key = self.uow.holder_keys.get_or_make(cmd.holder)
        sealed = seal(key, cmd.holder, cmd.effective_on, cmd.address)
        return replace(cmd, fields={**cmd.fields, "address": None, "sealed": sealed},
                       digest=keyed_digest(cmd.raw, key))

    def _prefetch(self, batch: list[Command]) -> None:
        """Tell the unit of work every aggregate a batch names, so that it finds the new ones
        (most holders of a bulk load) in a few queries instead of two per aggregate."""
        prefetch = getattr(self.uow, "prefetch", None)
        if prefetch is None:
            return
        wanted = []
        holder_id, issuance_id = ids.holder_id, ids.issuance_id
        for cmd in batch:
            f = cmd.fields
            h = f.get("holder")
            if type(h) is str:
                wanted.append(holder_id(h))
            i = f.get("issuance")
            if type(i) is str:
                wanted.append(issuance_id(i))
        prefetch(wanted)

    # ------------------------------------------------------------------ checking (dry run)
    def check(self, commands: Iterable[Command], batch_size: int = BATCH_SIZE) -> list[Outcome]:
        """Check commands as if applied, in order, storing nothing: one :class:`Outcome` each.

        Run it over a unit of work whose commit only remembers command ids (a
        :class:`~.unit_of_work.DryRunUnitOfWork`): each accepted command changes the
        aggregates held in memory, so later commands are checked against the state the earlier
        ones would leave; a refused command changes nothing (every guard runs before any event),
        so the commands after it are checked as if it were not in the file.
        """
        return list(self.iter_check(commands, batch_size))

    def iter_check(self, commands: Iterable[Command], batch_size: int = BATCH_SIZE) -> Iterator[Outcome]:
        """:meth:`check`, one outcome at a time (for printing as the file is read)."""
        for batch, bad in _batches(commands, batch_size):
            yield from self._check_batch(batch)
            if bad is not None:
                yield Outcome("refuse", _line_of(bad), None, None, rule=bad.rule, message=str(bad))

    def _check_batch(self, batch: list[Command]) -> Iterator[Outcome]:
        known = self.uow.known_digests([c.id for c in batch])
        self._prefetch(batch)
        for cmd in batch:
            cmd = self.sealed(cmd)  # as apply does: a details command is checked sealed
            seen = known.get(cmd.id)
            if seen is not None:
                if seen != cmd.digest and not _unsealable(cmd):
                    e = IdReused(f"command id {cmd.id} was applied before with other content")
                    yield Outcome("refuse", cmd.line, cmd.id, cmd.type, rule=e.rule, message=str(e))
                else:
                    yield Outcome("skip", cmd.line, cmd.id, cmd.type)
                continue
            try:
                aggregates = self.execute(cmd)
            except Refused as e:
                yield Outcome("refuse", cmd.line, cmd.id, cmd.type, rule=e.rule, message=str(e))
                continue
            events: list[Any] = []
            touched: dict[Any, Any] = {}
            for agg in aggregates:
                events.extend(agg.collect_events())
                touched[agg.id] = agg
            self.uow.commit(events, [(cmd.id, cmd.digest, len(events))], touched)
            known[cmd.id] = cmd.digest
            yield Outcome("apply", cmd.line, cmd.id, cmd.type, events=len(events))

    # ------------------------------------------------------------------ applying commands
    def apply(
        self,
        commands: Iterable[Command],
        *,
        projections: Projections | None = None,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> ApplyReport:
        """Apply commands in order, many per transaction, then bring the projections up to date.

        Stops at the first refused command (or the first line that is not a command, raised
        while `commands` is iterated): the commands before it stay stored, the projections
        catch up with them, then the error is raised with ``error.report`` saying what was
        applied.
        """
        report = ApplyReport()
        error: LedgerError | None = None
        fold = projections.fold_stored if projections is not None else None
        try:
            self._apply_all(iter(commands), batch_size, progress, report, fold)
        except LedgerError as e:
            error = e
        finally:
            # Snapshots once per run, not per batch: a big issuance is copied once.
            self.uow.snapshot()
        if projections is not None and not isinstance(error, StoreUnavailable):
            projections.catch_up()
        if error is not None:
            error.report = report  # type: ignore[attr-defined]
            raise error
        return report

    def _apply_all(self, it: Iterator[Command], batch_size: int, progress: Any,
                   report: ApplyReport, fold: Any) -> None:
        for batch, error in _batches(it, batch_size):
            if batch:
                fold = self._apply_batch(batch, report, fold)
                if progress:
                    progress(len(batch))
            if error is not None:
                raise error

    def _apply_batch(self, batch: list[Command], report: ApplyReport, fold: Any) -> Any:
        for _attempt in range(CONFLICT_RETRIES):
            try:
                return self._try_batch(batch, report, fold)
            except IntegrityError:
                # Another writer stored events for an aggregate we hold, or the same command
                # id, since we loaded them: forget what we hold and redo the batch from the
                # store; commands that are no longer valid are then refused by the domain.
                self.uow.forget()
            except LedgerError:
                raise
            except PersistenceError as e:
                self.uow.forget()
                raise StoreUnavailable(f"cannot write store {self.uow.config.display}: {_one_line(e)}") from None
            except BaseException:
                self.uow.forget()
                raise
        raise StoreUnavailable(
            f"store {self.uow.config.display}: gave up after {CONFLICT_RETRIES} conflicting writes"
        )

    def _try_batch(self, batch: list[Command], report: ApplyReport, fold: Any) -> Any:
        known = self.uow.known_digests([c.id for c in batch])
        self._prefetch(batch)
        events: list[Any] = []
        recorded: list[tuple[str, str, int]] = []
        touched: dict[Any, Any] = {}
        skipped = 0
        refusal: CommandRefused | None = None
        for cmd in batch:
            cmd = self.sealed(cmd)
            seen = known.get(cmd.id)
            if seen is not None:
                if seen != cmd.digest and not _unsealable(cmd):
                    refusal = CommandRefused(
                        cmd.where, IdReused(f"command id {cmd.id} was applied before with other content")
                    )
                    break
                skipped += 1
                continue
            try:
                aggregates = self.execute(cmd)
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
        if events:
            stored = self.uow.commit(events, recorded, touched)
            if fold is not None and stored:
                try:
                    fold(stored)
                except Exception:  # noqa: BLE001
                    # The events are stored: projections that cannot follow now are brought up
                    # to date by the catch-up after the run, which reports its own errors.
                    fold = None
        report.applied += len(recorded)
        report.skipped += skipped
        report.events += len(events)
        if refusal is not None:
            raise refusal
        return fold


def _batches(commands: Iterable[Command], size: int) -> Iterator[tuple[list[Command], LedgerError | None]]:
    """The commands in batches of `size`. A line that is not a command (raised while the file is
    read) ends the stream: its error comes with the batch of the commands read before it."""
    it = iter(commands)
    while True:
        batch: list[Command] = []
        error: LedgerError | None = None
        try:
            for cmd in it:
                batch.append(cmd)
                if len(batch) >= size:
                    break
        except LedgerError as e:
            error = e
        yield batch, error
        if error is not None or len(batch) < size:
            return


def _meta(cmd: Command) -> dict[str, str]:
    """What every event of a command carries: who asked, why, and the command's id and digest
    (chained with the event, so the command-id table can be checked against it)."""
    return {"command_id": cmd.id, "actor": cmd.actor, "reason": cmd.reason, "command_digest": cmd.digest}


def _unsealable(cmd: Command) -> bool:
    """A details command whose holder's key is gone (erased): its digest cannot be compared
    with the one recorded for its id any more, so a re-run skips it."""
    return cmd.type == "record_holder_details" and "sealed" not in cmd.fields

def _line_of(error: LedgerError) -> int | None:
    """The line number a reader's error names (`line N: ...`), if any."""
    text = str(error)
    if text.startswith("line "):
        number = text[5:].split(maxsplit=1)[0].rstrip(":")
        if number.isdigit():
            return int(number)
    return None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
