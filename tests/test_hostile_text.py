"""Hostile text is data: stored verbatim, printed safely, never SQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import factories as f
from helpers import run_cli, write_jsonl

HOSTILE = {
    "sql": "Robert'); DROP TABLE stored_events;--",
    "quotes": 'O"Brien \\ \' `x`',
    "control": "line1\nline2\r\tend\x1b[31mred\x07",
    "rtl": "\u202egnp.exe \u200f\u200e",
    "emoji": "株式 🚀👩‍👩‍👧 ẞ",
    "formula": "=HYPERLINK(\"http://evil\",\"x\")",
    "plus": "+cmd|' /C calc'!A0",
    "minus": "-2+3",
    "at": "@SUM(A1)",
    "long": "長" * 5000,
}


def _build_hostile(url: str, folder: Path) -> None:
    cmds = f.setup()
    for i, (key, text) in enumerate(HOSTILE.items()):
        cmds.append(f.allot(f"h{i}-{key}", 1, name=text, reason=text, actor=text))
    r = run_cli("apply", str(write_jsonl(folder / "h.jsonl", cmds)), db=url)
    assert r.code == 0, r.stderr


@pytest.fixture
def hostile_store(built_store) -> str:
    return built_store("hostile", _build_hostile)


def test_stored_verbatim(hostile_store: str):
    rows = run_cli("holdings", "--format", "json", db=hostile_store).json()
    names = {r["holder"].split("-", 1)[1]: r["name"] for r in rows}
    assert names == HOSTILE
    hist = run_cli("history", "--format", "json", db=hostile_store).json()
    allots = [h for h in hist if h["type"] == "rights_allotted"]
    assert {h["reason"] for h in allots} == set(HOSTILE.values())
    assert {h["actor"] for h in allots} == set(HOSTILE.values())
    assert run_cli("audit", "verify", db=hostile_store).code == 0


def test_csv_neutralises_formulas(hostile_store: str):
    out = run_cli("holdings", "--format", "csv", db=hostile_store).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    for r in rows:
        assert not r["name"].startswith(("=", "+", "-", "@")), r["name"]
    by_key = {r["holder"].split("-", 1)[1]: r["name"] for r in rows}
    assert by_key["formula"] == "'" + HOSTILE["formula"]
    assert by_key["sql"] == HOSTILE["sql"]


def test_tables_print_controls_as_escapes(hostile_store: str):
    out = run_cli("holdings", db=hostile_store)
    assert out.code == 0
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout and "\x07" not in out.stdout
    assert "DROP TABLE" in out.stdout and "🚀" in out.stdout
    hist = run_cli("history", db=hostile_store)
    assert hist.code == 0 and "\x1b" not in hist.stdout


# --- every output path shows data as text (no control sequence, no rich markup) --------------

# Characters that must never reach a stream raw when they come from the data: C0 controls
# (newline aside), DEL, C1 controls, bidi embeddings/overrides/isolates and implicit marks.
FORBIDDEN = (
    [chr(c) for c in range(0x20) if c != 0x0A] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
    + [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u2028", "\u2029"]
)

MARKUP_LINK = "[blink][link=https://evil.example]x[/link][/blink]"
OSC_TITLE = "\x1b]0;pwned\x07"
OSC8 = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
CSI = "\x1b[2J\x1b[31mred\x1b[0m"
C1 = "\x9b31mred\x9d0;t\x9c"
DEL = "a\x7fb"
BIDI = "\u202egnp.exe\u2066x\u2069\u202a\u202d"

ISSUANCE = "s[/bold]\x1b[31m\u202e1"
ISSUER = f"{MARKUP_LINK} {OSC_TITLE} K.K."
TITLE = f"[/bold] {C1} {DEL}"
ATTACKS = {
    "markup": MARKUP_LINK,
    "close": "[/bold]",
    "osc": OSC_TITLE + "name",
    "osc8": OSC8,
    "csi": CSI,
    "c1": C1,
    "del": DEL,
    "bidi": BIDI,
    "lines": "two\nlines\rback",
    "jp": "山田 太郎",
}


def _assert_clean(text: str, what: str) -> None:
    bad = sorted({hex(ord(c)) for c in text if c in FORBIDDEN})
    assert not bad, f"{what}: raw {bad} reached the stream"
    assert "Traceback" not in text, what


def _build_attack(url: str, folder: Path) -> None:
    cmds = [f.resolution(ISSUANCE, issuer=ISSUER, title=TITLE), f.terms(ISSUANCE)]
    for key, text in ATTACKS.items():
        holder = f"h-{key}-{text}" if key != "jp" else "h-jp"
        cmds.append(f.allot(holder, 2, issuance=ISSUANCE, name=text, group=f"g {text}", actor=text, reason=text))
    cmds.append(f.forfeit(f"h-c1-{C1}", 1, on="2021-01-01", issuance=ISSUANCE, reason=BIDI + OSC8))
    r = run_cli("apply", str(write_jsonl(folder / "attack.jsonl", cmds)), "--no-progress", db=url)
    assert r.code == 0, r.stderr


@pytest.fixture
def attack_store(built_store) -> str:
    """A copy of one store of attack text per backend (each test may change its own)."""
    return built_store("attack", _build_attack)


QUERIES = (
    [("holdings", "--by", by, "--format", fmt) for by in ("person", "group", "issuance") for fmt in ("table", "json", "csv")]
    + [("holdings", "--issuance", ISSUANCE, "--as-of", "2020-12-31", "--format", fmt) for fmt in ("table", "json", "csv")]
    + [("register", ISSUANCE, "--format", fmt) for fmt in ("table", "json", "csv")]
    + [("register", ISSUANCE, "--as-of", "2020-12-31")]
    + [("history", "--format", fmt) for fmt in ("table", "json")]
    + [("history", "--issuance", ISSUANCE, "--holder", f"h-c1-{C1}")]
    + [("audit", "replay", "--format", fmt) for fmt in ("table", "json")]
    + [("audit", "verify"), ("audit", "digest"), ("projections", "status")]
)


@pytest.mark.parametrize("args", QUERIES, ids=lambda a: " ".join(x for x in a if x.isascii() and x.isprintable()))
def test_every_query_output_is_text(attack_store: str, args: tuple[str, ...]):
    r = run_cli(*args, db=attack_store)
    assert r.code == 0, r.stderr
    _assert_clean(r.stdout, "stdout")
    _assert_clean(r.stderr, "stderr")


def test_tables_show_markup_literally_and_escapes_visibly(attack_store: str):
    reg = run_cli("register", ISSUANCE, db=attack_store)
    assert reg.code == 0, reg.stderr
    # The title and the issuer are data: their markup is printed as written, not interpreted.
    assert "[/bold]" in reg.stdout and MARKUP_LINK in reg.stdout
    assert "\\x1b]0;pwned\\x07" in reg.stdout and "\\x9b31mred" in reg.stdout and "a\\x7fb" in reg.stdout
    assert "s[/bold]\\x1b[31m\\u202e1" in reg.stdout
    hold = run_cli("holdings", db=attack_store)
    assert hold.code == 0
    for shown in ("[/bold]", "\\u202egnp.exe\\u2066x\\u2069", "two\\nlines\\rback", "\\x1b[2J"):
        assert shown in hold.stdout, shown
    # Japanese names stay aligned: every row of the table has the same width in cells.
    from rich.cells import cell_len

    lines = [ln for ln in hold.stdout.splitlines() if "│" in ln]
    assert any("山田 太郎" in ln for ln in lines)
    assert len({cell_len(ln) for ln in lines}) == 1


def test_json_escapes_c1_del_and_bidi_but_keeps_the_values(attack_store: str):
    r = run_cli("holdings", "--format", "json", db=attack_store)
    assert "\\u009b" in r.stdout and "\\u007f" in r.stdout and "\\u202e" in r.stdout
    names = {row["holder"]: row["name"] for row in r.json()}
    assert names["h-jp"] == "山田 太郎" and "山田 太郎" in r.stdout
    assert set(names.values()) == set(ATTACKS.values())
    hist = run_cli("history", "--format", "json", db=attack_store).json()
    assert {h["issuer"] for h in hist if h["type"] == "resolution_passed"} == {ISSUER}
    forfeit = next(h for h in hist if h["type"] == "rights_forfeited")
    assert forfeit["reason"] == BIDI + OSC8 and forfeit["holder"] == f"h-c1-{C1}"


def test_csv_escapes_controls_and_still_guards_formulas(attack_store: str, tmp_path: Path):
    out = run_cli("holdings", "--format", "csv", db=attack_store).stdout
    rows = {r["name"] for r in csv.DictReader(io.StringIO(out))}
    assert "\\x1b[2J\\x1b[31mred\\x1b[0m" in rows and "two\\nlines\\rback" in rows and "a\\x7fb" in rows
    cmds = [f.allot("h-eq", 1, issuance=ISSUANCE, name="\x1b=cmd"), f.allot("h-eq2", 1, issuance=ISSUANCE, name="=1+1")]
    assert run_cli("apply", str(write_jsonl(tmp_path / "eq.jsonl", cmds)), db=attack_store).code == 0
    out = run_cli("holdings", "--format", "csv", db=attack_store).stdout
    names = {r["holder"]: r["name"] for r in csv.DictReader(io.StringIO(out))}
    assert names["h-eq"] == "\\x1b=cmd" and names["h-eq2"] == "'=1+1"


@pytest.mark.parametrize("text", [OSC_TITLE, CSI, C1, DEL, BIDI, MARKUP_LINK, "[/bold]", "x\ny\r"])
def test_refusals_and_errors_are_one_safe_line(sqlite_url: str, tmp_path: Path, text: str):
    cmds = f.setup() + [f.allot("h1", 1)]
    assert run_cli("apply", str(write_jsonl(tmp_path / "ok.jsonl", cmds)), db=sqlite_url).code == 0
    refused = [
        dict(f.allot("h1", 1), id=f"id {text}", issuance=f"nowhere {text}"),  # unknown-issuance
        dict(f.exercise(f"ghost {text}", 1), id=text),  # unknown-holder
        dict(f.allot("h2", 1000), id=f"big {text}", name=text),  # allotment-over-terms
        {"id": text, "type": f"bad {text}"},  # unknown command type
        {"id": text, "type": "expire_rights", "issuance": "s1", "expired_on": text},  # bad date
    ]
    for cmd in refused:
        r = run_cli("apply", "-", db=sqlite_url, input=json.dumps(cmd) + "\n")
        assert r.code == 1, (cmd, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: line 1"), r.stderr
        _assert_clean(r.stderr, "stderr")
        _assert_clean(r.stdout, "stdout")
    for args in [("register", f"nowhere {text}"), ("holdings", "--issuance", f"nowhere {text}"),
                 ("rights", "exercise", "s1", "--holder", f"ghost {text}", "--rights", "1",
                  "--exercised-on", "2021-01-01", "--id", text)]:
        r = run_cli(*args, db=sqlite_url)
        assert r.code == 1 and r.stderr.count("\n") == 1, (args, r.stderr)
        _assert_clean(r.stderr, "stderr")


@pytest.mark.parametrize("text", [OSC_TITLE, C1, BIDI, "[/bold]"])
def test_usage_errors_and_verb_messages_are_safe(sqlite_url: str, tmp_path: Path, text: str):
    for args in [("holdings", "--as-of", text), ("apply", str(tmp_path / f"missing{text}.jsonl")),
                 ("holdings", "--by", text), ("audit", "verify", "--digest", text)]:
        r = run_cli(*args, db=sqlite_url)
        assert r.code == 2, (args, r.stderr)
        _assert_clean(r.stderr, "stderr")
    assert run_cli("init", db=sqlite_url).code == 0
    steps = [
        ["resolution", "pass", "s1", "--issuer", text, "--body", "board_of_directors",
         "--resolved-on", "2020-01-10", "--title", text, "--id", f"r {text}"],
        ["terms", "set", "s1", "--decided-on", "2020-01-20", "--rights", "100", "--shares-per-right", "100",
         "--price-per-right", "1000", "--currency", "JPY", "--exercise-price-per-share", "1",
         "--allotment-date", "2020-02-01", "--exercise-from", "2020-02-02", "--exercise-to", "2040-02-01"],
        ["rights", "allot", "s1", "--holder", text, "--name", text, "--group", text, "--rights", "1",
         "--allotted-on", "2020-02-01", "--payment", "offset", "--id", f"a {text}", "--actor", text],
    ]
    for args in steps + steps[-1:]:
        r = run_cli(*args, db=sqlite_url)
        assert r.code == 0, (args, r.stderr)
        _assert_clean(r.stdout, "stdout")
        _assert_clean(r.stderr, "stderr")


@pytest.mark.parametrize("columns", ["80", "100"])
def test_on_a_terminal_no_sequence_from_the_data_is_written(attack_store: str, columns: str):
    """On a real (pseudo-)terminal rich writes its own styles; none of the data's may pass."""
    import os
    import pty
    import subprocess
    import sys

    def on_tty(*args: str) -> tuple[int, str]:
        leader, follower = pty.openpty()
        env = dict(os.environ, COLUMNS=columns, LINES="50", TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        p = subprocess.Popen([sys.executable, "-m", "equity_ledger.cli", "--db", attack_store, *args],
                             stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        return p.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")

    for args in [("holdings",), ("register", ISSUANCE), ("history",), ("holdings", "--by", "group")]:
        code, text = on_tty(*args)
        assert code == 0, text
        assert "Traceback" not in text
        for raw in ("\x1b]", "\x1b[2J", "\x1b[31mred", "\x9b", "\x9d", "\x7f", "\u202e", "\u2066", "\x07"):
            assert raw not in text, (args, repr(raw))
