"""Concurrent writers: 4 `apply` processes allot rights of the SAME issuance at the same time.

The issuance's terms allow TERMS_RIGHTS rights; the 4 command files together ask for more. Each
file holds one- and two-right allotments to holders of its own, allotments (with ids of its own)
to holders shared by all files, and a few commands whose ids and content are the same in every
file; each file has them in its own order, so the writers interleave on the issuance and on the
shared holders.

Two ways of writing at the same time:

* ``whole-file``: the 4 processes each apply their whole file (one transaction-sized batch each,
  so every writer but the first meets a conflict and redoes its batch from the store);
* ``chunked``: 4 writers each apply their file as a sequence of small files, one `apply` process
  after the other, so the writers' commands interleave in the log command by command.

Then every file is re-run (4 processes at once again) until a round stores nothing. What must
hold, after every round: nothing beyond the terms is allotted; every process ended with exit 0,
or exit 1 and one line naming the command and `allotment-over-terms` (never a traceback, a
locked database or any other error); each command id is stored once, with the events of exactly
one command; holdings equal the sum of the allotments whose ids are stored; the chain verifies.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers import run_cli, write_jsonl

ISSUANCE = "race-2024"
TERMS_RIGHTS = 1000
WRITERS = 4
OWN = 150  # allotments to holders of the writer's own
SHARED_HOLDERS = 6
SHARED_PER_WRITER = 12  # allotments per writer to the shared holders, ids of the writer's own
COMMON = 4  # commands with the same id and content in every file
CHUNK = 20  # commands per `apply` in the chunked mode
MAX_ROUNDS = 6
SEED = int(os.environ.get("EQUITY_LEDGER_RACE_SEED", "4242"))

class ProjectionDiffers(AssertionError):
    """The read models (holdings) disagree with the stored events, which are themselves right."""


REFUSAL = re.compile(
    r"^error: line (\d+) \(id ([^)]+)\): refused \[allotment-over-terms\]: [^\n]*\n$"
)


def _allot(cid: str, holder: str, rights: int, group: str = "employee") -> dict[str, Any]:
    return {"id": cid, "type": "allot_rights", "issuance": ISSUANCE, "holder": holder,
            "name": f"Holder {holder}", "group": group, "rights": rights,
            "allotted_on": "2024-04-01", "payment": "offset"}


def setup_commands() -> list[dict[str, Any]]:
    return [
        {"id": "race-res", "type": "pass_resolution", "issuance": ISSUANCE, "issuer": "Race K.K.",
         "body": "board_of_directors", "resolved_on": "2024-03-01", "title": "race series"},
        {"id": "race-terms", "type": "set_terms", "issuance": ISSUANCE, "decided_on": "2024-03-15",
         "rights": TERMS_RIGHTS, "shares_per_right": 100, "price_per_right": "1000", "currency": "JPY",
         "exercise_price_per_share": "1", "allotment_date": "2024-04-01",
         "exercise_from": "2024-04-02", "exercise_to": "2034-04-01"},
    ]


def writer_files(seed: int) -> list[list[dict[str, Any]]]:
    rnd = random.Random(seed)
    common = [_allot(f"common-{j}", f"common-h{j}", 2, "director") for j in range(COMMON)]
    files = []
    for w in range(WRITERS):
        cmds = [_allot(f"w{w}-a{i:03d}", f"w{w}-h{i:03d}", 2 if rnd.random() < 0.75 else 1)
                for i in range(OWN)]
        cmds += [_allot(f"w{w}-s{j:02d}", f"shared-{j % SHARED_HOLDERS}", rnd.choice((1, 2)),
                        "executive_officer") for j in range(SHARED_PER_WRITER)]
        rnd.shuffle(cmds)
        for c in common:  # the common commands at a different place in each file
            cmds.insert(rnd.randrange(len(cmds) + 1), dict(c))
        # A same-day top-up in two adjacent commands to a shared holder, early in the file and
        # inside one chunk: at most one writer records the holder's first rights in its
        # process, every other writer adds twice to a holding another process wrote.
        at = rnd.randrange(CHUNK, 2 * CHUNK - 1)
        cmds[at:at] = [_allot(f"w{w}-t{j}", "shared-0", 1, "executive_officer") for j in (1, 2)]
        files.append(cmds)
    return files


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("EQUITY_LEDGER_DB", None)
    return subprocess.run([sys.executable, "-m", "equity_ledger.cli", "--db", url, *args],
                          capture_output=True, text=True, env=env, timeout=600)


def _outcome(p: subprocess.CompletedProcess, what: str, cmds: list[dict[str, Any]]) -> dict[str, Any]:
    """What a process did: exit 0, or the over-terms refusal (else a problem, kept verbatim)."""
    out: dict[str, Any] = {"what": what, "code": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
    if p.returncode == 0 and p.stderr == "":
        out["ok"] = True
        return out
    m = REFUSAL.match(p.stderr) if p.returncode == 1 else None
    if m and "Traceback" not in p.stderr:
        line = int(m.group(1))
        if 1 <= line <= len(cmds) and cmds[line - 1]["id"] == m.group(2):
            out.update(refused_line=line, refused=cmds[line - 1])
            return out
    out["problem"] = True
    return out


def _problems(outcomes: list[dict[str, Any]]) -> str:
    return "\n".join(f"{o['what']}: exit {o['code']}\nstderr: {o['stderr']}" for o in outcomes
                     if o.get("problem"))


def _applied(url: str) -> dict[str, tuple[int, int]]:
    """command id -> (position, events) as stored in ledger_commands."""
    if url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):], timeout=30)
        try:
            rows = conn.execute("SELECT command_id, position, events FROM ledger_commands").fetchall()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            rows = conn.execute("SELECT command_id, position, events FROM ledger_commands").fetchall()
    return {c: (int(p), int(e)) for c, p, e in rows}


def _run_round(url: str, files: list[Path], cmds: list[list[dict[str, Any]]], chunked: bool,
               tmp: Path, label: str) -> list[dict[str, Any]]:
    """All writers at once; returns one outcome per process that ran."""
    start = threading.Barrier(WRITERS)

    def whole(w: int) -> list[dict[str, Any]]:
        start.wait()
        return [_outcome(_cli(url, "apply", str(files[w]), "--no-progress"), f"{label} file {w}", cmds[w])]

    def in_chunks(w: int) -> list[dict[str, Any]]:
        done = []
        start.wait()
        for i in range(0, len(cmds[w]), CHUNK):
            part = cmds[w][i:i + CHUNK]
            path = write_jsonl(tmp / f"w{w}-chunk{i // CHUNK:03d}.jsonl", part)
            o = _outcome(_cli(url, "apply", str(path), "--no-progress"),
                         f"{label} file {w} lines {i + 1}-{i + len(part)}", part)
            done.append(o)
            if not o.get("ok"):
                break
        return done

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        results = list(pool.map(in_chunks if chunked else whole, range(WRITERS)))
    return [o for r in results for o in r]


def _check_store(url: str, cmds: list[list[dict[str, Any]]], outcomes: list[dict[str, Any]],
                 label: str, findings: list[str]) -> int:
    """The invariants after a round; returns the rights allotted. Read models that differ from
    the events are added to `findings`."""
    problems = _problems(outcomes)
    assert not problems, f"{label}: a writer failed otherwise than by an over-terms refusal:\n{problems}"
    by_id: dict[str, dict[str, Any]] = {}
    for file in cmds:
        for c in file:
            assert by_id.setdefault(c["id"], c) == c
    applied = _applied(url)
    ours = {cid for cid in applied if cid in by_id}
    assert set(applied) - ours == {"race-res", "race-terms"}, sorted(set(applied) - ours)

    # Each allotment id: exactly one rights_allotted event, with the rights of its command.
    hist = run_cli("history", "--issuance", ISSUANCE, "--format", "json", db=url)
    assert hist.code == 0, hist.stderr
    allotted_events = [e for e in hist.json() if e["type"] == "rights_allotted"]
    per_id = Counter(e["command_id"] for e in allotted_events)
    assert per_id == Counter(ours), (
        f"{label}: events per command id differ from the stored ids: "
        f"{sorted((per_id - Counter(ours)).items())[:5]} {sorted((Counter(ours) - per_id).items())[:5]}")
    for e in allotted_events:
        assert (e["holder"], e["rights"]) == (by_id[e["command_id"]]["holder"], by_id[e["command_id"]]["rights"])
    total = sum(by_id[c]["rights"] for c in ours)
    assert total <= TERMS_RIGHTS, f"{label}: {total} rights allotted, beyond the terms' {TERMS_RIGHTS}"

    # Holdings (the projections) equal the sum of the stored allotments. A difference is kept
    # (raised at the end of the test, after every other check) as a finding on the read models.
    expected: Counter[str] = Counter()
    for c in ours:
        expected[by_id[c]["holder"]] += by_id[c]["rights"]
    rows = run_cli("holdings", "--by", "person", "--issuance", ISSUANCE, "--format", "json", db=url)
    assert rows.code == 0 and rows.stderr == "", rows.stderr
    got = {r["holder"]: r["rights_allotted"] for r in rows.json()}
    if got != dict(expected):
        wrong = sorted((h, got.get(h), expected.get(h)) for h in set(got) | set(expected)
                       if got.get(h) != expected.get(h))
        findings.append(f"{label}: holdings --by person: (holder, projected, sum of stored allotments) "
                        f"{wrong[:8]}{' ...' if len(wrong) > 8 else ''}")
    per_issuance = run_cli("holdings", "--by", "issuance", "--format", "json", db=url)
    assert per_issuance.code == 0 and per_issuance.stderr == "", per_issuance.stderr
    got_iss = [(r["issuance"], r["rights_allotted"], r["holders"]) for r in per_issuance.json()]
    if got_iss != [(ISSUANCE, total, len(expected))]:
        findings.append(f"{label}: holdings --by issuance: {got_iss} != {[(ISSUANCE, total, len(expected))]}")

    # Every process: the commands before its refusal are stored, the refused one is not and
    # did not fit; a process that exited 0 has all its commands stored.
    for o in outcomes:
        part = o["what"]
        file_cmds = _commands_of(o, cmds)
        if o.get("ok"):
            missing = [c["id"] for c in file_cmds if c["id"] not in applied]
            assert not missing, f"{part} exited 0 but {missing[:5]} are not stored"
        else:
            line, refused = o["refused_line"], o["refused"]
            assert refused["id"] not in applied, f"{part}: refused {refused['id']} is stored"
            missing = [c["id"] for c in file_cmds[: line - 1] if c["id"] not in applied]
            assert not missing, f"{part}: {missing[:5]} before the refusal are not stored"
    return total


def _commands_of(outcome: dict[str, Any], cmds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    m = re.search(r"file (\d+)(?: lines (\d+)-(\d+))?$", outcome["what"])
    file_cmds = cmds[int(m.group(1))]
    return file_cmds[int(m.group(2)) - 1:int(m.group(3))] if m.group(2) else file_cmds


def test_a_second_apply_adding_twice_to_a_holding_on_its_date_keeps_both(store_url: str, tmp_path: Path) -> None:
    """Regression (fixed in df3774e): a holding row loaded from the table in a fold was not
    cached, so a second delta of the same date in the same fold re-read it and overwrote the
    first. The smallest form of what the concurrent writers below ran into."""
    first = setup_commands() + [_allot("p1", "h1", 1)]
    assert run_cli("apply", str(write_jsonl(tmp_path / "1.jsonl", first)), db=store_url).code == 0
    second = [_allot("p2", "h1", 2), _allot("p3", "h1", 4)]
    assert run_cli("apply", str(write_jsonl(tmp_path / "2.jsonl", second)), db=store_url).code == 0
    rows = run_cli("holdings", "--format", "json", db=store_url).json()
    assert [(r["holder"], r["rights_allotted"]) for r in rows] == [("h1", 7)]
    verify = run_cli("audit", "verify", db=store_url)
    assert verify.code == 0, verify.stderr


@pytest.fixture(params=["whole-file", "chunked"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.heavy
def test_four_writers_never_allot_beyond_the_terms_and_converge(
    store_url: str, mode: str, tmp_path: Path
) -> None:
    chunked = mode == "chunked"
    setup = run_cli("apply", str(write_jsonl(tmp_path / "setup.jsonl", setup_commands())),
                    "--no-progress", db=store_url)
    assert setup.code == 0, setup.stderr
    cmds = writer_files(SEED)
    files = [write_jsonl(tmp_path / f"writer{w}.jsonl", c) for w, c in enumerate(cmds)]
    asked = sum(c["rights"] for c in {c["id"]: c for f in cmds for c in f}.values())
    assert asked > TERMS_RIGHTS + 100, asked

    outcomes = _run_round(store_url, files, cmds, chunked, tmp_path, f"{mode} round 1")
    findings: list[str] = []
    total = _check_store(store_url, cmds, outcomes, f"{mode} round 1", findings)
    assert any(not o.get("ok") for o in outcomes), "the files ask for more than the terms: someone is refused"
    order = [cid.split("-")[0] for cid, _ in sorted(_applied(store_url).items(), key=lambda kv: kv[1][0])
             if re.match(r"w\d+-", cid)]
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    if chunked:
        # The point of this mode: the writers' commands interleave in the log.
        assert switches >= WRITERS, f"the writers did not interleave: {order}"
    first_round = outcomes

    # Re-run every file (4 at once) until a round stores nothing.
    digest = run_cli("audit", "digest", db=store_url).json()
    for rnd in range(2, MAX_ROUNDS + 1):
        outcomes = _run_round(store_url, files, cmds, False, tmp_path, f"{mode} round {rnd}")
        total = _check_store(store_url, cmds, outcomes, f"{mode} round {rnd}", findings)
        now = run_cli("audit", "digest", db=store_url).json()
        if now == digest:
            break
        digest = now
    else:
        pytest.fail(f"{mode}: still storing commands after {MAX_ROUNDS} rounds of re-runs")

    # The fixed point: every file either applied in full or stops at an allotment that does not
    # fit what is left; what is left is less than two rights.
    left = TERMS_RIGHTS - total
    for o in outcomes:
        if not o.get("ok"):
            assert o["refused"]["rights"] > left, (o["what"], o["refused"], left)
    assert left < 2, f"{left} rights left although some allotment was refused"
    assert all(o.get("ok") for o in outcomes) is False

    verify = run_cli("audit", "verify", db=store_url)
    if verify.code != 0:
        # A broken chain, versions or command ids fail here; projections that differ from a
        # fresh replay are a finding on the read models.
        assert "audit: FAILED: projection" in verify.stderr, verify.stdout + verify.stderr
        findings.append(f"audit verify: exit {verify.code}: {verify.stderr.strip()}")
    status = run_cli("projections", "status", db=store_url)
    assert status.code == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    replay = run_cli("audit", "replay", "--format", "json", db=store_url)
    if replay.code != 0:
        assert replay.code == 1 and "DIFFERS" in replay.stderr, replay.stdout + replay.stderr
        findings.append(f"audit replay: exit {replay.code}: {replay.stderr.strip()}")
    print(f"\n[{mode}] round 1: {sum(1 for o in first_round if o.get('ok'))} of {len(first_round)} "
          f"processes exit 0, {sum(1 for o in first_round if not o.get('ok'))} refused over terms; "
          f"writer switches in the log: {switches}; converged after {rnd} rounds; "
          f"{total} of {TERMS_RIGHTS} rights allotted ({asked} asked)")
    if findings:
        raise ProjectionDiffers("the read models lost updates (the stored events are right):\n"
                                + "\n".join(findings))
