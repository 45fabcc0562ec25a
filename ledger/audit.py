"""What `audit verify` proves about the log, read in one consistent state.

:func:`verify_log` reads every stored event in position order, with the chain links, the
command ids and the snapshots (through a :class:`~.log.LogReader` on one read transaction), and
checks that:

* each event has its chain link, each link its event, and every link equals SHA-256 (HMAC-SHA256
  with the ledger key) over the previous link and the event (an edited, deleted, inserted or
  reordered row breaks the chain there; without the key no new link can be forged);
* versions are contiguous per aggregate;
* every recorded command id owns exactly the run of events it produced, and its digest is the
  one chained in those events;
* every command re-applied through the domain's own use cases (:class:`RuleReplay`) is accepted
  and produces exactly the stored events: an event added by hand that breaks a rule, or whose
  figures or aggregate ids are not what the rules give, is named with the rule;
* every snapshot equals the state the events give at its version, and carries its seal;
* where a digest kept earlier is given, the chain still passes through it.

What it cannot prove alone: someone able to rewrite the whole database, without a ledger key,
can rewrite a rule-abiding history and recompute every link; a digest kept outside the database
or a ledger key defeats that (README, "Threat model").
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterator
from uuid import UUID

from eventsourcing.domain import Snapshot

from .commands import Command
from .errors import Refused
from .log import LogReader, StoredRow, event_kind
from .personal import SealedAddress
from .service import LedgerService
from .store import GENESIS, link_hash, snapshot_seal
from .unit_of_work import MemoryUnitOfWork

PAGE = 5000


@dataclass(frozen=True)
class Digest:
    """The head of the chain as an auditor keeps it."""

    position: int
    events: int
    hash: str

    def to_json(self) -> str:
        return json.dumps({"position": self.position, "events": self.events, "hash": self.hash})

    @classmethod
    def parse(cls, text: str) -> "Digest":
        obj = json.loads(text)
        if not isinstance(obj, dict) or set(obj) < {"position", "hash"}:
            raise ValueError("a digest is a JSON object with position, events and hash")
        if type(obj["position"]) is not int or not isinstance(obj["hash"], str):
            raise ValueError("a digest needs an integer position and a hex hash")
        events = obj.get("events", obj["position"])
        if type(events) is not int:
            raise ValueError("a digest's events must be an integer")
        return cls(obj["position"], events, obj["hash"])


@dataclass
class Finding:
    """The first thing found wrong, named the way an auditor needs it."""

    position: int | None
    aggregate: str | None
    version: int | None
    command_id: str | None
    problem: str

    def __str__(self) -> str:
        parts = []
        if self.position is not None:
            parts.append(f"position {self.position}")
        if self.aggregate is not None:
            parts.append(f"aggregate {self.aggregate}")
        if self.version is not None:
            parts.append(f"version {self.version}")
        if self.command_id is not None:
            parts.append(f"command {self.command_id}")
        where = ", ".join(parts)
        return f"{where}: {self.problem}" if where else self.problem


@dataclass
class LogReport:
    events: int = 0
    head: Digest = field(default_factory=lambda: Digest(0, 0, GENESIS))
    finding: Finding | None = None
    digest_checked: bool = False



def _pages(fetch: Callable[[int], list[Any]], key: Callable[[Any], int]) -> Iterator[Any]:
    after = 0
    while True:
        rows = fetch(after)
        yield from rows
        if len(rows) < PAGE:
            return
        after = key(rows[-1])


def head_digest(log: LogReader) -> Digest:
    """The current head: last position, number of links, last hash."""
    position, count, last = log.chain_head()
    return Digest(position, count, last or GENESIS)


# Event type that leads a command's run of events -> the command type that produced it.
_COMMAND_OF = {
    "ResolutionPassed": "pass_resolution",
    "TermsSet": "set_terms",
    "RightsAllotted": "allot_rights",
    "RightsExercised": "exercise_rights",
    "RightsForfeited": "forfeit_rights",
    "Departed": "record_departure",
    "SharesAdjusted": "adjust_shares",
    "RightsExpired": "expire_rights",
    "DetailsRecorded": "record_holder_details",
    "DetailsErased": "erase_holder_details",
    "VestingEventRecorded": "record_vesting_event",
}
# Fields added to stored events after some were stored: an older event lacks them, and means
# their default (rights vest on allotment, no fair value or share price given).
_ADDED_FIELDS = {"fair_value_per_right": None, "vesting": None, "vesting_start": None, "share_price": None}
_NOT_FIELDS = {"timestamp", "originator_id", "originator_version", "originator_topic"}
_META = ("command_id", "actor", "reason", "command_digest")


def command_of(events: list[Any], digest: str) -> Command | None:
    """The command a run of stored events says it came from (None: no event leads the run)."""
    from .commands import SCHEMAS

    lead = next((e for e in events if event_kind(type(e).__qualname__) in _COMMAND_OF), None)
    if lead is None:
        return None
    ctype = _COMMAND_OF[event_kind(type(lead).__qualname__)]
    own = vars(lead)
    fields = {name: own.get(name) for name in SCHEMAS[ctype]}
    if ctype == "forfeit_rights" and own.get("all_outstanding"):
        fields["rights"] = "all"
    if ctype == "adjust_shares":
        fields["ratio"] = Fraction(own["ratio"])
    if ctype == "record_holder_details":
        # The plaintext may be erased for good: the use case takes the address as sealed, so
        # every rule is still checked and the ciphertext compared as it is stored.
        fields["sealed"] = SealedAddress(own.get("address_nonce"), own.get("address_ciphertext"))
    if ctype == "record_vesting_event":
        fields["portion_met"] = Fraction(own["portion_met"])
    return Command(
        id=own.get("command_id"),
        type=ctype,
        fields=fields,
        actor=own.get("actor"),
        reason=own.get("reason"),
        digest=own.get("command_digest", digest),
    )


def _comparable(event: Any, stored: Any = None) -> dict[str, Any]:
    """The event's fields to compare; a field added later that the stored event lacks is left
    out when it holds its default."""
    have = vars(stored) if stored is not None else vars(event)
    return {
        k: v for k, v in vars(event).items()
        if k != "timestamp" and not (k in _ADDED_FIELDS and k not in have and v == _ADDED_FIELDS[k])
    }


class RuleReplay:
    """Re-applies a stored history, command by command, through the domain's own use cases."""

    def __init__(self, mapper: Any) -> None:
        self.mapper = mapper
        self.uow = MemoryUnitOfWork()
        self.service = LedgerService(self.uow)

    def check(self, run: list[tuple[StoredRow, Any]], digest: str) -> tuple[int, str] | None:
        """(position, problem) of the first event of a command run the rules do not give."""
        events = [e for _r, e in run]
        first = run[0][0].position
        cmd = command_of(events, digest)
        if cmd is None:
            return first, "no command of the ledger produces these events (inserted by hand?)"
        try:
            aggregates = self.service.execute(cmd)
        except Refused as e:
            return first, f"breaks a rule when re-applied: [{e.rule}] {e}"
        except Exception as e:  # noqa: BLE001  a field of a forged event the domain cannot take
            return first, f"cannot be re-applied ({type(e).__name__}: {_one_line(e)})"
        produced = [e for agg in aggregates for e in agg.collect_events()]
        for i, (row, stored) in enumerate(run):
            made = produced[i] if i < len(produced) else None
            if made is None:
                return row.position, "the rules give no such event for its command (inserted by hand?)"
            if (made.originator_id, made.originator_version) != (row.originator_id, row.version):
                return row.position, (
                    f"the rules give aggregate {made.originator_id} version {made.originator_version} "
                    "for this event (aggregate id or version edited?)"
                )
            want, have = _comparable(made, stored), _comparable(stored)
            if type(made) is not type(stored) or want != have:
                field = next((k for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)), "type")
                return row.position, (
                    f"its {field} is not what the rules give for its command "
                    f"({have.get(field)!r}, the rules give {want.get(field)!r})"
                )
        if len(produced) > len(run):
            return run[-1][0].position, f"its command gives {len(produced)} events, {len(run)} are stored"
        # The aggregates now carry the stored timestamps, as if loaded from the store.
        for row, stored in run:
            agg = self.uow.get(row.originator_id)
            agg._modified_on = stored.timestamp
            if row.version == 1:
                agg._created_on = stored.timestamp
        return None

    def snapshot_state(self, aggregate_id: UUID) -> dict[str, Any] | None:
        """The state a snapshot taken now would hold, normalised through the transcoder."""
        agg = self.uow.get(aggregate_id)
        if agg is None:
            return None
        stored = self.mapper.to_stored_event(Snapshot.take(agg))
        return self.mapper.to_domain_event(stored).state


def verify_log(
    log: LogReader,
    key: bytes | None = None,
    digest: Digest | None = None,
    progress: Callable[[int], None] | None = None,
    chain: bool = True,
) -> LogReport:
    """Check the log, chain, command ids, rules and snapshots; stop at the first fault.

    With `chain` False the links are not recomputed (``audit replay``, which needs no key):
    everything else is checked."""
    report = LogReport()
    events = log.iter_rows()
    links = _pages(lambda after: log.chain_links(after), key=lambda r: r[0])
    commands = _pages(lambda after: log.command_runs(after), key=lambda r: r[0])
    snapshots = {k: None for k in log.snapshot_keys()}
    replay = RuleReplay(log.mapper)
    prev = GENESIS
    versions: dict[UUID, int] = {}
    ev = next(events, None)
    link = next(links, None)
    cmd = next(commands, None)
    run: list[tuple[StoredRow, Any]] = []
    run_id: str | None = None  # the command whose events we are inside
    run_digest = ""
    run_left = 0
    count = 0
    last_pos = 0

    def fail(position, aggregate, version, command_id, problem) -> LogReport:
        report.finding = Finding(position, str(aggregate) if aggregate else None, version, command_id, problem)
        return report

    def close_run() -> LogReport | None:
        # The rules first: a forged event is named by the rule it breaks, whatever else is off.
        bad = replay.check(run, run_digest)
        if bad is not None:
            row = next(r for r, _e in run if r.position == bad[0])
            return fail(row.position, row.originator_id, row.version, run_id, bad[1])
        for row, decoded in run:
            chained = getattr(decoded, "command_digest", None)
            if chained is not None and chained != run_digest:
                return fail(row.position, row.originator_id, row.version, run_id,
                            "the command id's recorded digest differs from the digest chained in "
                            "its events (ledger_commands edited?)")
        for row, _e in run:
            if (row.originator_id, row.version) in snapshots:
                problem = _check_snapshot(log, key, replay, row, chain)
                if problem:
                    return fail(row.position, row.originator_id, row.version, run_id, problem)
                del snapshots[(row.originator_id, row.version)]
        return None

    while ev is not None or link is not None:
        link_pos = link[0] if link is not None else None
        if ev is not None and (link_pos is None or ev.position < link_pos):
            return fail(ev.position, ev.originator_id, ev.version, _command_id(ev.state),
                        "stored event has no chain link (inserted outside the ledger)")
        if ev is None or link_pos < ev.position:
            return fail(link_pos, None, None, None,
                        "chain link has no stored event (the event was deleted)")
        position, oid, version = ev.position, ev.originator_id, ev.version
        if not ev.canonical_id:
            return fail(position, oid, version, _command_id(ev.state),
                        "the stored aggregate id is not in its canonical form (edited by hand: it "
                        "hides the aggregate's events from the ledger)")
        try:
            decoded = log.decode(ev)
        except Exception:  # noqa: BLE001  whatever an edited row decodes into, it is named
            return fail(position, oid, version, _command_id(ev.state),
                        "stored event cannot be decoded as a ledger event (edited by hand)")
        command_id = getattr(decoded, "command_id", None)
        expected = link_hash(prev, position, oid, version, ev.topic, ev.state, key)
        if chain and not hmac.compare_digest(expected, link[1]):
            problem = (
                "stored event is not authenticated by the ledger key (edited, inserted, replaced "
                "or reordered without the key)" if key is not None else
                "stored event does not match its chain link (edited, replaced or reordered)"
            )
            return fail(position, oid, version, command_id, problem)
        if versions.get(oid, 0) + 1 != version:
            return fail(position, oid, version, command_id,
                        f"version {version} follows version {versions.get(oid, 0)} of its aggregate")
        versions[oid] = version
        # Commands: each recorded command owns the run of events starting at its position.
        if cmd is not None and cmd[0] == position:
            if run_left:
                return fail(position, oid, version, command_id,
                            f"command {run_id} is missing {run_left} of its events")
            run_id, run_digest, run_left = cmd[1], cmd[2], cmd[3]
            run = []
            cmd = next(commands, None)
        elif cmd is not None and cmd[0] < position:
            return fail(cmd[0], None, None, cmd[1], "recorded command id has no event at its position")
        if run_left <= 0 or command_id != run_id:
            return fail(position, oid, version, command_id,
                        f"event does not belong to the command recorded for it ({run_id or 'none'})")
        run.append((ev, decoded))
        run_left -= 1
        if run_left == 0:
            bad = close_run()
            if bad is not None:
                return bad
        prev = expected if chain else link[1]
        count += 1
        last_pos = position
        if digest is not None and position == digest.position:
            if (chain and prev != digest.hash) or count != digest.events:
                return fail(position, oid, version, command_id,
                            "the history no longer extends the digest kept for this position "
                            f"(digest {digest.hash[:16]}.. for {digest.events} events; store has "
                            f"{prev[:16]}.. for {count})")
            report.digest_checked = True
        if progress is not None and count % PAGE == 0:
            progress(PAGE)
        ev = next(events, None)
        link = next(links, None)
    if run_left:
        return fail(last_pos, None, None, run_id, f"command {run_id} is missing {run_left} of its events")
    if cmd is not None:
        return fail(cmd[0], None, None, cmd[1], "recorded command id has no event at its position")
    if snapshots:
        oid, version = sorted(snapshots, key=str)[0]
        return fail(None, oid, version, None, "snapshot of a version the events never reached")
    if digest is not None and not report.digest_checked:
        if digest.position == 0 and digest.hash == GENESIS:
            report.digest_checked = True
        else:
            return fail(digest.position, None, None, None,
                        "the kept digest's position is not in the store (history truncated or rewritten)")
    if progress is not None:
        progress(count % PAGE)
    report.events = count
    report.head = Digest(last_pos, count, prev)
    return report


def _check_snapshot(log: LogReader, key: bytes | None, replay: RuleReplay, row: StoredRow,
                    sealed_check: bool = True) -> str | None:
    """Why the stored snapshot at this event's version is wrong, or None."""
    snap = log.snapshot_row(row.originator_id, row.version)
    if snap is None:
        return None
    sealed = log.snapshot_seal(row.originator_id, row.version)
    if sealed is None or sealed[0] != row.position:
        return "snapshot has no seal binding it to this event (edited or inserted by hand?)"
    link = log.chain_link_at(row.position) or ""
    want = snapshot_seal(key, row.originator_id, row.version, snap.topic, snap.state, link)
    if sealed_check and not hmac.compare_digest(want, sealed[1]):
        return "snapshot does not match its seal (edited?)"
    if log.decode(snap).state != replay.snapshot_state(row.originator_id):
        return "snapshot differs from the state the events give at its version (edited?)"
    return None


def _command_id(state: bytes) -> str | None:
    try:
        return json.loads(bytes(state)).get("command_id")
    except (ValueError, AttributeError):
        return None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
