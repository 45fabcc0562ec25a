"""Fuzzing the command file reader: whatever a line holds, it is a Command, nothing, or one
BadCommand naming the line, in one line of text; never another exception.

Three sources: arbitrary bytes, arbitrary JSON values and objects, and near-valid commands with
one field mutated (to another JSON value, a huge number, text with surrogates or control
characters). The number of examples comes from EQUITY_LEDGER_HYPOTHESIS_EXAMPLES (default 200
here: each example is one cheap parse).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import factories as f
from equity_ledger.ledger.commands import SCHEMAS, Command, parse_line, read_commands
from equity_ledger.ledger.errors import BadCommand

EXAMPLES = int(os.environ.get("EQUITY_LEDGER_HYPOTHESIS_EXAMPLES", "25")) * 8
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALID: dict[str, dict[str, Any]] = {
    "pass_resolution": f.resolution("s1", max_rights=135),
    "set_terms": f.terms("s1", exercisable_only_after_departure=True,
                         exercise_window_days_after_departure=10),
    "allot_rights": f.allot("h1"),
    "exercise_rights": f.exercise("h1", delivery="treasury_shares"),
    "forfeit_rights": f.forfeit("h1", "all"),
    "record_departure": f.depart("h1"),
    "adjust_shares": f.adjust("1/3"),
    "expire_rights": f.expire(),
    "record_holder_details": f.details("h1", "東京都千代田区1-1"),
    "erase_holder_details": f.erase("h1"),
    "record_vesting_event": f.vest("ipo", holder="h1", portion_met="1/2"),
}
assert set(VALID) == set(SCHEMAS)

# Text with what breaks parsers: lone surrogates, NUL, line breaks, BOMs, wide characters.
nasty_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(["\ud800", "\udfff", "\x00", "\n", "\r", "\ufeff", "日",
                                      "1", "0", ".", "/", "-", "e", " "]), max_size=20),
    st.sampled_from(["all", "ALL", "2", "1/3", "0", "1/0", "2021-02-30", "9999-12-31", "JPY",
                     "1" + "0" * 40, "0." + "0" * 30 + "1", "9223372036854775808"]),
)
nasty_int = st.one_of(st.integers(-10, 10), st.integers(min_value=-(2**70), max_value=2**70),
                      st.sampled_from([2**63 - 1, 2**63, -(2**63), 10**30]))
json_scalars = st.one_of(st.none(), st.booleans(), nasty_int, nasty_text,
                         st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12,
)


def _check_parse(raw: bytes | str, line: int = 7) -> None:
    try:
        result = parse_line(raw, line)
    except BadCommand as e:
        message = str(e)
        assert message.startswith(f"line {line}"), message
        assert "\n" not in message and "\r" not in message
        assert len(message) < 1000
        message.encode("utf-8")  # printable: no lone surrogate in the message
        return
    assert result is None or isinstance(result, Command)
    if result is not None:
        result.digest.encode("ascii")
        for value in result.fields.values():
            if isinstance(value, str):
                value.encode("utf-8")


def _dumps(value: Any) -> str:
    # json.dumps writes lone surrogates as \\u escapes (ensure_ascii), as a file would hold them
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check_parse(raw)
    _check_parse(raw, line=1)  # with a possible byte-order mark


@SETTINGS
@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    text = _dumps(value)
    _check_parse(text.encode("utf-8"))
    _check_parse(text)


@SETTINGS
@given(st.sampled_from(sorted(VALID)), st.data())
def test_near_valid_commands_with_a_mutated_field(ctype: str, data: st.DataObject) -> None:
    d = dict(VALID[ctype])
    how = data.draw(st.sampled_from(["change", "drop", "add", "rename"]))
    key = data.draw(st.sampled_from(sorted(d)))
    if how == "change":
        d[key] = data.draw(json_values)
    elif how == "drop":
        del d[key]
    elif how == "add":
        d[data.draw(nasty_text)] = data.draw(json_values)
    else:
        d[data.draw(nasty_text)] = d.pop(key)
    text = _dumps(d)
    _check_parse(text.encode("utf-8"))
    _check_parse(text)


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=80), json_values.map(lambda v: _dumps(v).encode()),
                          st.sampled_from([json.dumps(v).encode() for v in VALID.values()])),
                max_size=5),
       st.sampled_from([b"\n", b"\r\n"]))
def test_read_commands_over_arbitrary_lines(lines: list[bytes], ending: bytes) -> None:
    stream = io.BytesIO(ending.join(lines))
    n = 0
    try:
        for cmd in read_commands(stream):
            assert isinstance(cmd, Command)
            n += 1
    except BadCommand as e:
        assert str(e).startswith("line ") and "\n" not in str(e)
