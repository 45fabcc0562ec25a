"""Tamper evidence for the event store: the hash chain, versions, command ids, digests.

`verify_log` re-reads every stored event in notification order, in pages (memory stays flat
as the log grows), and checks that:

* each event has its chain link, each link its event, and every link equals SHA-256 over the
  previous link and the event's canonical encoding (so an edited, deleted, inserted or
  reordered row breaks the chain at that position);
* versions are contiguous per aggregate (1, 2, 3, ... in notification order);
* every recorded command id maps to exactly the run of events it produced, and every event
  belongs to the command recorded for it;
* where a digest kept earlier is given, the chain still passes through it.

What the chain cannot prove: someone able to rewrite the whole database can recompute every
link. Kept digests (`audit digest`) are what defeat that: the rewritten head no longer extends
a digest the auditor holds outside the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from uuid import UUID

from .store import GENESIS, link_hash

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


def head_digest(recorder: Any) -> Digest:
    """The current head: last position, number of links, last hash."""
    position, digest_hash = recorder.chain_head()
    (count,) = recorder.query("SELECT COUNT(*) FROM ledger_chain")[0]
    return Digest(position, int(count), digest_hash)


def _command_id(state: bytes) -> str | None:
    try:
        return json.loads(bytes(state)).get("command_id")
    except (ValueError, AttributeError):
        return None


def verify_log(
    recorder: Any,
    digest: Digest | None = None,
    progress: Callable[[int], None] | None = None,
) -> LogReport:
    """Stream the log, chain and command table once, merged by position; stop at the first fault."""
    events = _pages(
        lambda after: list(recorder.select_notifications(start=after + 1, limit=PAGE)),
        key=lambda n: n.id,
    )
    links = _pages(
        lambda after: recorder.query(
            "SELECT position, hash FROM ledger_chain WHERE position > ? ORDER BY position LIMIT ?",
            (after, PAGE),
        ),
        key=lambda r: int(r[0]),
    )
    commands = _pages(
        lambda after: recorder.query(
            "SELECT position, command_id, events FROM ledger_commands WHERE position > ? "
            "ORDER BY position LIMIT ?",
            (after, PAGE),
        ),
        key=lambda r: int(r[0]),
    )
    report = LogReport()
    prev = GENESIS
    versions: dict[UUID, int] = {}
    ev = next(events, None)
    link = next(links, None)
    cmd = next(commands, None)
    run_id: str | None = None  # the command whose events we are inside
    run_left = 0
    count = 0
    last_pos = 0

    def fail(position, aggregate, version, command_id, problem) -> LogReport:
        report.finding = Finding(position, str(aggregate) if aggregate else None, version, command_id, problem)
        return report

    while ev is not None or link is not None:
        ev_pos = ev.id if ev is not None else None
        link_pos = int(link[0]) if link is not None else None
        if ev is not None and (link_pos is None or ev_pos < link_pos):
            return fail(ev_pos, ev.originator_id, ev.originator_version, _command_id(ev.state),
                        "stored event has no chain link (inserted outside the ledger)")
        if ev is None or link_pos < ev_pos:
            return fail(link_pos, None, None, None,
                        "chain link has no stored event (the event was deleted)")
        position = ev_pos
        oid, version = ev.originator_id, ev.originator_version
        command_id = _command_id(ev.state)
        expected = link_hash(prev, position, oid, version, ev.topic, ev.state)
        if expected != link[1]:
            return fail(position, oid, version, command_id,
                        "stored event does not match its chain link (edited, replaced or reordered)")
        if versions.get(oid, 0) + 1 != version:
            return fail(position, oid, version, command_id,
                        f"version {version} follows version {versions.get(oid, 0)} of its aggregate")
        versions[oid] = version
        # Commands: each recorded command owns the run of events starting at its position.
        if cmd is not None and int(cmd[0]) == position:
            if run_left:
                return fail(position, oid, version, command_id,
                            f"command {run_id} is missing {run_left} of its events")
            run_id, run_left = cmd[1], int(cmd[2])
            cmd = next(commands, None)
        elif cmd is not None and int(cmd[0]) < position:
            return fail(int(cmd[0]), None, None, cmd[1],
                        "recorded command id has no event at its position")
        if run_left <= 0 or command_id != run_id:
            return fail(position, oid, version, command_id,
                        f"event does not belong to the command recorded for it ({run_id or 'none'})")
        run_left -= 1
        prev = expected
        count += 1
        last_pos = position
        if digest is not None and position == digest.position:
            if prev != digest.hash or count != digest.events:
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
        return fail(int(cmd[0]), None, None, cmd[1], "recorded command id has no event at its position")
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
