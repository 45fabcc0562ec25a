"""What an attacker with write access to the database does, through public means only.

Plain SQL on the store's tables (as a database operator or an intruder would run it), the
public chain-link function, and the CLI run as a user runs it. Used by tests/test_attacks.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import create_engine, inspect, text

from helpers import Run, ask_cli, run_cli, write_jsonl


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def events_table(url: str) -> tuple[str, str]:
    """(events table, its position column): eventsourcing's own names for each backend."""
    return ("stored_events", "rowid") if is_sqlite(url) else ("equityledger_events", "notification_id")


def snapshots_table(url: str) -> str:
    """eventsourcing's snapshots table: `stored_snapshots` on SQLite, `<app>_snapshots` on PostgreSQL."""
    if not is_sqlite(url):
        return "equityledger_snapshots"
    names = set(inspect_tables(url))
    for name in ("snapshots", "stored_snapshots"):
        if name in names:
            return name
    raise AssertionError(f"no snapshots table among {sorted(names)}")


def inspect_tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def sql(url: str, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement in its own transaction; the rows it returns, if any."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params or {})
            return [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        engine.dispose()


def fingerprint(url: str) -> str:
    """Every row of every table of the store (order-independent), as one hash."""
    engine = create_engine(url)
    h = hashlib.sha256()
    try:
        with engine.connect() as conn:
            for t in sorted(inspect(engine).get_table_names()):
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{t}"')))
                h.update(t.encode() + b"\0" + "\n".join(rows).encode())
    finally:
        engine.dispose()
    return h.hexdigest()


def apply(url: str, commands: Iterable[dict[str, Any]], folder: Path, name: str = "cmds.jsonl",
          env: dict[str, str] | None = None) -> Run:
    """`equity-ledger apply FILE` of these commands; asserts it succeeded."""
    r = run_cli("apply", str(write_jsonl(folder / name, commands)), db=url, env=env)
    assert r.code == 0, (r.stdout, r.stderr)
    return r


def one_line_error(r: Run, code: int = 1) -> str:
    """The verdict of a refusal: the exit code, exactly one error line on stderr, no traceback.
    (A `warning:` line before it, about what the ledger noticed on the way, is not the verdict.)"""
    assert r.code == code, (r.code, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines(keepends=True) if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].endswith("\n"), r.stderr[-3000:]
    return lines[0]


def verify_fails(url: str, *words: str, digest: str | None = None,
                 env: dict[str, str] | None = None) -> str:
    """`audit verify` exits 1 with one line naming every one of `words` (case-insensitive)."""
    args = ["audit", "verify"] + (["--digest", digest] if digest else [])
    r = run_cli(*args, db=url, env=env)
    err = one_line_error(r)
    for w in words:
        assert w.lower() in err.lower(), (w, err)
    return err


def verify_passes(url: str, env: dict[str, str] | None = None) -> None:
    r = run_cli("audit", "verify", db=url, env=env)
    assert r.code == 0 and "Traceback" not in r.stderr, (r.stdout, r.stderr)


def holdings(url: str, *extra: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The holdings as JSON: an observation, asked in-process unless it needs an environment."""
    args = ("holdings", "--format", "json", *extra)
    r = run_cli(*args, db=url, env=env) if env else ask_cli(*args, db=url)
    assert r.code == 0 and "Traceback" not in r.stderr, (r.stdout, r.stderr)
    return r.json()


def rights_by_holder(url: str, issuance: str = "s1") -> dict[str, int]:
    return {row["holder"]: row["rights_allotted"] for row in holdings(url, "--issuance", issuance)}


# --- events written by hand -----------------------------------------------------------------------


def issuance_events(url: str, topic_suffix: str = "") -> list[tuple[int, Any, int, str, bytes]]:
    """(position, originator id as stored, version, topic, state) of the Issuance aggregates' events."""
    table, pos = events_table(url)
    rows = sql(url, f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} "
                    f"WHERE topic LIKE :t ORDER BY {pos}", {"t": f"%Issuance.%{topic_suffix}"})
    return [(int(p), o, int(v), t, bytes(s)) for p, o, v, t, s in rows]


def append_forged_event(url: str, originator_id: Any, version: int, topic: str, state: bytes,
                        command_id: str) -> int:
    """Append one event as an intruder would: the event row, a recomputed chain link
    (plain SHA-256 through the public `link_hash`) and a command row, all consistent.
    Returns the forged event's position."""
    from equity_ledger.ledger.store import GENESIS, link_hash

    table, pos = events_table(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            params = {"o": originator_id, "v": version, "t": topic, "s": state}
            insert = (f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                      "VALUES (:o, :v, :t, :s)")
            if is_sqlite(url):
                position = conn.execute(text(insert), params).lastrowid
            else:
                position = conn.execute(text(insert + " RETURNING notification_id"), params).scalar_one()
            head = conn.execute(text("SELECT hash FROM ledger_chain ORDER BY position DESC LIMIT 1")).scalar()
            link = link_hash(head or GENESIS, int(position), originator_id, version, topic, state)
            conn.execute(text("INSERT INTO ledger_chain (position, hash) VALUES (:p, :h)"),
                         {"p": position, "h": link})
            conn.execute(text("INSERT INTO ledger_commands (command_id, digest, position, events) "
                              "VALUES (:c, :d, :p, 1)"),
                         {"c": command_id, "d": hashlib.sha256(state).hexdigest(), "p": position})
    finally:
        engine.dispose()
    return int(position)


def forged_allotment(url: str, rights: int, command_id: str) -> int:
    """Append a copy of the issuance's last allotment, for `rights` rights, at the next version."""
    allotments = issuance_events(url, "RightsAllotted")
    assert allotments, "the store has no allotment to copy"
    _, oid, _, topic, state = allotments[-1]
    last_version = max(v for _, o, v, _, _ in issuance_events(url) if o == oid)
    data = json.loads(state)
    data["rights"] = rights
    data["command_id"] = command_id
    if isinstance(data.get("amount"), dict) and "_data_" in data["amount"]:
        data["amount"]["_data_"] = str(rights * 1000)
    forged = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return append_forged_event(url, oid, last_version + 1, topic, forged, command_id)


def edit_json(value: Any, change: Callable[[str, Any], Any]) -> tuple[Any, int]:
    """Walk a decoded JSON document; `change(key, value)` returns a new value or None to keep it.
    Returns (the new document, how many values were changed)."""
    count = 0

    def walk(node: Any) -> Any:
        nonlocal count
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                new = change(k, v)
                if new is not None:
                    count += 1
                    out[k] = new
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(value), count


# --- running the CLI as someone without write permission ------------------------------------------


def unprivileged_prefix() -> list[str] | None:
    """A command prefix that runs the CLI without the power to ignore file permissions.

    Not root: nothing to do. Root: drop the capabilities that bypass permissions
    (setpriv), else run as `nobody` when nobody can run this Python. None when neither works."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = [setpriv, "--inh-caps=-dac_override,-dac_read_search,-fowner",
                  "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
        if subprocess.run(prefix + [sys.executable, "-c", "import equity_ledger"],
                          capture_output=True).returncode == 0:
            return prefix
    runuser = shutil.which("runuser")
    if runuser:
        prefix = [runuser, "-u", "nobody", "--"]
        if subprocess.run(prefix + [sys.executable, "-c", "import equity_ledger.cli"],
                          capture_output=True).returncode == 0:
            return prefix
    return None


def run_cli_as(prefix: list[str], *args: str, db: str, cwd: str | None = None) -> Run:
    env = dict(os.environ)
    env.pop("EQUITY_LEDGER_DB", None)
    p = subprocess.run(prefix + [sys.executable, "-m", "equity_ledger.cli", "--db", db, *args],
                       capture_output=True, env=env, cwd=cwd, timeout=300)
    return Run(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
