"""The command file: one JSON object per line, validated into typed commands.

A command is an immutable value (like a beancount directive): its type, its fields parsed into
dates, Decimals, Fractions and ints, and the metadata kept on every event it produces (command
id, actor, reason, digest). Parsing refuses anything the contract does not allow, so that the
domain only ever sees well-typed values: whatever a line holds, a bad line is one
:class:`BadCommand` naming the line (and the id when one can be read), never another exception.
:func:`read_commands` is the one loader of a command file.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from datetime import date
from typing import Any, BinaryIO, Callable, Iterator

from .errors import BadCommand, QuantityOutOfRange
from .money import INT64_MAX, MAX_INT_DIGITS, OutOfRange, is_currency, parse_amount, parse_ratio

# The terms (and their vesting schedules) are imported when a command needs them, not when the
# CLI starts: every verb imports this module, and `--help` parses no terms.

MAX_LINE_BYTES = 1024 * 1024

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(value: Any) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a YYYY-MM-DD date string")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"is not a calendar date ({value})") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if "\x00" in value:  # no database keeps NUL in text; everything else is kept verbatim
        raise ValueError("must not contain a NUL character")
    return value


def _positive_int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("must be a JSON integer")
    if value < 1:
        raise ValueError("must be >= 1")
    if value > INT64_MAX:
        raise OutOfRange(f"must be at most {INT64_MAX}")
    return value


def _non_negative_int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("must be a JSON integer")
    if value < 0:
        raise ValueError("must be >= 0")
    if value > INT64_MAX:
        raise OutOfRange(f"must be at most {INT64_MAX}")
    return value


def _money(value: Any):
    if not isinstance(value, str):
        raise ValueError("must be a JSON string holding a plain decimal (not a number)")
    try:
        return parse_amount(value)
    except OutOfRange:
        raise
    except ValueError:
        raise ValueError(f"must be a plain non-negative decimal, not {value!r}") from None


def _currency(value: Any) -> str:
    if not is_currency(value):
        raise ValueError(f"must be an ISO 4217 currency code, not {value!r}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError("must be true or false")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _ratio(value: Any):
    if not isinstance(value, str):
        raise ValueError('must be a string such as "2", "0.5" or "1/3"')
    try:
        return parse_ratio(value)
    except OutOfRange:
        raise
    except ValueError:
        raise ValueError(f'must be a decimal or a fraction such as "2" or "1/3", not {value!r}') from None


def _vesting(value: Any):
    from .vesting import Schedule

    return Schedule.parse(value)


def _portion_met(value: Any):
    from .vesting import parse_portion_met

    return parse_portion_met(value)


def _rights_or_all(value: Any) -> int | str:
    if value == "all":
        return "all"
    if type(value) is int:
        return _positive_int(value)
    raise ValueError('must be a JSON integer >= 1 or "all"')


_TERMS: dict[str, tuple[Callable[[Any], Any], bool, Any]] = {
    "decided_on": (_date, True, None),
    "rights": (_positive_int, True, None),
    "shares_per_right": (_positive_int, True, None),
    "share_class": (_text, False, "common"),
    "price_per_right": (_money, True, None),
    "currency": (_currency, True, None),
    "exercise_price_per_share": (_money, True, None),
    "allotment_date": (_date, True, None),
    "exercise_from": (_date, True, None),
    "exercise_to": (_date, True, None),
    "exercisable_only_after_departure": (_bool, False, False),
    "exercise_window_days_after_departure": (_non_negative_int, False, None),
    "fair_value_per_right": (_money, False, None),
    "vesting": (_vesting, False, None),
}


@lru_cache(maxsize=1)
def _terms_fields() -> tuple[str, ...]:
    """The one list of the terms' fields (terms.TERMS_FIELDS), checked against _TERMS the first
    time a set_terms is parsed: the table must parse exactly those fields, in that order."""
    from .terms import TERMS_FIELDS

    if tuple(_TERMS) != TERMS_FIELDS:
        raise RuntimeError("commands._TERMS must parse exactly terms.TERMS_FIELDS, in that order")
    return TERMS_FIELDS


# type -> {field: (parser, required, default)}
SCHEMAS: dict[str, dict[str, tuple[Callable[[Any], Any], bool, Any]]] = {
    "pass_resolution": {
        "issuance": (_text, True, None),
        "issuer": (_text, True, None),
        "body": (_one_of("board_of_directors", "shareholders_meeting"), True, None),
        "resolved_on": (_date, True, None),
        "title": (_text, True, None),
        "max_rights": (_positive_int, False, None),
    },
    # The fields of Terms, in their order: one list (terms.TERMS_FIELDS, checked by _terms_fields).
    "set_terms": {"issuance": (_text, True, None), **_TERMS},
    "allot_rights": {
        "issuance": (_text, True, None),
        "holder": (_text, True, None),
        "name": (_text, True, None),
        "group": (_text, True, None),
        "rights": (_positive_int, True, None),
        "allotted_on": (_date, True, None),
        "payment": (_one_of("offset", "cash", "gratis"), True, None),
        "vesting_start": (_date, False, None),
    },
    "exercise_rights": {
        "issuance": (_text, True, None),
        "holder": (_text, True, None),
        "rights": (_positive_int, True, None),
        "exercised_on": (_date, True, None),
        "delivery": (_one_of("new_shares", "treasury_shares"), False, "new_shares"),
        "share_price": (_money, False, None),
    },
    "forfeit_rights": {
        "issuance": (_text, True, None),
        "holder": (_text, True, None),
        "rights": (_rights_or_all, True, None),
        "forfeited_on": (_date, True, None),
    },
    "record_departure": {
        "holder": (_text, True, None),
        "departed_on": (_date, True, None),
    },
    "adjust_shares": {
        "issuance": (_text, True, None),
        "ratio": (_ratio, True, None),
        "effective_on": (_date, True, None),
    },
    "expire_rights": {
        "issuance": (_text, True, None),
        "expired_on": (_date, True, None),
    },
    # Personal data (see .personal): the address is sealed before any event is made; its
    # length is a rule of the domain, checked on the sealed address (so also by the audit).
    "record_holder_details": {
        "holder": (_text, True, None),
        "address": (_text, True, None),
        "effective_on": (_date, True, None),
    },
    "erase_holder_details": {
        "holder": (_text, True, None),
    },
    "record_vesting_event": {
        "issuance": (_text, True, None),
        "event": (_text, True, None),
        "occurred_on": (_date, True, None),
        "holder": (_text, False, None),
        "portion_met": (_portion_met, False, Fraction(1)),
    },
}

# Fields every command may carry; `reason` is required for a forfeiture.
_COMMON = {"id", "type", "actor", "reason"}
_ALLOWED = {ctype: set(schema) | _COMMON for ctype, schema in SCHEMAS.items()}
_REASON_REQUIRED = {"forfeit_rights", "erase_holder_details"}



@lru_cache(maxsize=1)
def default_actor() -> str:
    """The OS user, the contract's default actor (looked up once per process)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no env: still an honest answer
        return "unknown"


# json.dumps with these options would build a new encoder for every command.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical(obj: dict[str, Any]) -> bytes:
    """The command as canonical UTF-8 JSON (sorted keys, no spacing): what its digest hashes."""
    return _CANONICAL(obj).encode("utf-8")


def digest(obj: dict[str, Any]) -> str:
    """SHA-256 of the command as a parsed JSON object (key order and spacing do not matter)."""
    return hashlib.sha256(_canonical(obj)).hexdigest()


@dataclass(frozen=True)
class Command:
    """A validated command: what to do, with which values, on whose behalf."""

    id: str
    type: str
    fields: dict[str, Any]
    actor: str
    reason: str
    digest: str
    line: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getattr__(self, name: str) -> Any:
        # Typed access to the command's own fields: cmd.issuance, cmd.allotted_on ...
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def _make(cls, id: str, type: str, fields: dict[str, Any], actor: str, reason: str, digest: str,
              line: int | None, raw: dict[str, Any]) -> "Command":
        """A Command as ``Command(...)`` makes it, with its attributes set in one go (the frozen
        dataclass's ``__init__`` sets them one by one through ``object.__setattr__``)."""
        cmd = object.__new__(cls)
        cmd.__dict__.update(id=id, type=type, fields=fields, actor=actor, reason=reason, digest=digest,
                            line=line, raw=raw)
        return cmd

    @property
    def where(self) -> str:
        """How messages name this command: `line N (id X)` or `id X`."""
        return f"line {self.line} (id {self.id})" if self.line is not None else f"id {self.id}"


def parse_command(obj: Any, line: int | None = None, actor: str | None = None) -> Command:
    """Validate one parsed JSON value into a :class:`Command`; BadCommand names what is wrong.

    A field out of the store's range is :class:`QuantityOutOfRange` (a BadCommand with its own
    rule). Lone surrogates are refused in every string, keys included, since no store can
    encode them.
    """
    if not isinstance(obj, dict):
        raise BadCommand(f"{_where_command(obj, line)}: a command must be a JSON object")
    cid = obj.get("id")
    try:
        # The canonical encoding is the content digest's input, and it fails exactly when a lone
        # surrogate hides somewhere: one pass instead of walking every value first.
        canonical = _canonical(obj)
    except UnicodeEncodeError:
        bad_text = _unencodable(obj) or "the command"
        raise BadCommand(f"{_where_command(obj, line)}: {bad_text} holds a lone surrogate (\\ud800-\\udfff), "
                         "which is not text") from None
    if not isinstance(cid, str) or not cid.strip():
        raise BadCommand(f"{_where_command(obj, line)}: field 'id' is required and must be a non-empty string")
    ctype = obj.get("type")
    schema = SCHEMAS.get(ctype) if isinstance(ctype, str) else None
    if schema is None:
        known = ", ".join(SCHEMAS)
        raise BadCommand(f"{_where_command(obj, line)}: unknown command type {_show(ctype)} (known: {known})")
    if ctype == "set_terms":
        _terms_fields()
    if not obj.keys() <= _ALLOWED[ctype]:
        unknown = sorted(set(obj) - _ALLOWED[ctype])
        raise BadCommand(f"{_where_command(obj, line)}: field {_show(unknown[0])} is not a field of {ctype}")
    fields: dict[str, Any] = {}
    for name, (parser, required, default) in schema.items():
        if name not in obj or obj[name] is None and not required:
            if required:
                raise BadCommand(f"{_where_command(obj, line)}: {ctype} needs field {name!r}")
            fields[name] = default
            continue
        try:
            fields[name] = parser(obj[name])
        except OutOfRange as e:
            raise QuantityOutOfRange(
                f"{_where_command(obj, line)}: refused [{QuantityOutOfRange.rule}]: field {name!r} {e}"
            ) from None
        except ValueError as e:
            raise BadCommand(f"{_where_command(obj, line)}: field {name!r} {e}") from None
    for meta in ("actor", "reason"):
        if meta in obj and (not isinstance(obj[meta], str) or "\x00" in obj[meta]):
            raise BadCommand(f"{_where_command(obj, line)}: field {meta!r} must be a string without NUL characters")
    if ctype in _REASON_REQUIRED and not (obj.get("reason") or "").strip():
        raise BadCommand(f"{_where_command(obj, line)}: {ctype} needs field 'reason'")
    return Command._make(
        cid,
        ctype,
        fields,
        obj.get("actor") or actor or default_actor(),
        obj.get("reason") or "",
        hashlib.sha256(canonical).hexdigest(),
        line,
        obj,
    )


def _where_command(obj: Any, line: int | None) -> str:
    """How a refusal names a command: `line N (id X)`, `id X`, `line N` or `command` (the id
    only when it is text that can be shown)."""
    where = f"line {line}" if line is not None else "command"
    cid = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(cid, str) and cid.strip() and _encodable(cid):
        where = f"{where} (id {_show_id(cid)})" if line is not None else f"id {_show_id(cid)}"
    return where


def parse_line(raw: bytes | str, line: int, actor: str | None = None) -> Command | None:
    """Parse one line of a command file (without its line ending); None for a blank line.

    Whatever the line holds, it gives a Command, None, or one :class:`BadCommand` naming the
    line (and the id when one can be read), in one line of text.
    """
    if line == 1:  # a byte-order mark some editors put at the start of a file
        if isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        elif isinstance(raw, str) and raw.startswith("\ufeff"):
            raw = raw[1:]
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            raise BadCommand(f"line {line}: longer than 1 MiB")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadCommand(f"line {line}: not valid UTF-8 (byte {e.start})") from None
    else:
        # 4 bytes at most per character: only a long line needs its UTF-8 length counted
        if len(raw) * 4 > MAX_LINE_BYTES:
            try:
                size = len(raw.encode("utf-8"))
            except UnicodeEncodeError as e:
                raise BadCommand(f"line {line}: not valid Unicode (lone surrogate at "
                                 f"character {e.start})") from None
            if size > MAX_LINE_BYTES:
                raise BadCommand(f"line {line}: longer than 1 MiB")
        if not _encodable(raw):
            raise BadCommand(f"line {line}: not valid Unicode (lone surrogate)")
    if not raw.strip():
        return None
    try:
        obj = _loads(raw)
    except _DuplicateKey as e:
        raise BadCommand(f"{_where(raw, line)}: field {_show(e.args[0])} is given twice") from None
    except _FloatRefused:
        raise BadCommand(f"{_where(raw, line)}: a number with a fraction or exponent is not allowed "
                         "(money is a decimal string, rights are integers)") from None
    except _IntOutOfRange:
        raise QuantityOutOfRange(
            f"{_where(raw, line)}: refused [{QuantityOutOfRange.rule}]: an integer beyond "
            f"{INT64_MAX} (quantities must fit a 64-bit integer)"
        ) from None
    except json.JSONDecodeError as e:
        raise BadCommand(f"line {line}: malformed JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise BadCommand(f"line {line}: malformed command (JSON nested too deeply)") from None
    except ValueError as e:  # any other refusal of the JSON decoder, in one line
        raise BadCommand(f"line {line}: malformed JSON ({_show(str(e))})") from None
    return parse_command(obj, line=line, actor=actor)


def read_commands(
    stream: BinaryIO,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Command]:
    """The commands of a command file read from a binary stream, in order (blank lines skipped).

    Each line is read with a bounded ``readline``: a line longer than 1 MiB is refused after
    reading at most 1 MiB and a few bytes of it, never whole. A UTF-8 byte-order mark at the
    start and the line ending (LF or CRLF) are stripped. `progress`, when given, is called with
    the number of bytes of each line read. A bad line raises BadCommand (the lines before it
    were yielded).
    """
    n = 0
    while True:
        n += 1
        # room for the line, its CR LF, and on the first line a byte-order mark
        limit = MAX_LINE_BYTES + 2 + (3 if n == 1 else 0)
        raw = stream.readline(limit)
        if not raw:
            return
        if progress is not None:
            progress(len(raw))
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        elif len(raw) >= limit:
            raise BadCommand(f"line {n}: longer than 1 MiB")
        cmd = parse_line(raw, n, actor=actor)
        if cmd is not None:
            yield cmd


# --- helpers: showing values in one line, decoding JSON with the contract's restrictions ---------

_SHOW_MAX = 80


def _show(value: Any) -> str:
    """A value as it may appear in a message: repr (one line, escaped), cut to a sane length."""
    text = repr(value)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _show_id(cid: str) -> str:
    """A command id in a message: as written when printable, else escaped (always one line)."""
    if cid.isprintable() and len(cid) <= _SHOW_MAX:
        return cid
    return _show(cid)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable(obj: Any) -> str | None:
    """Where a lone surrogate hides in a parsed JSON value ('field ...', 'a key'), else None."""
    stack: list[tuple[Any, str]] = [(obj, "the command")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return where
        elif isinstance(value, dict):
            for k, v in value.items():
                if not _encodable(k):
                    return "a field name"
                stack.append((v, f"field {k!r}" if value is obj else where))
        elif isinstance(value, list):
            stack.extend((v, where) for v in value)
    return None


def _where(raw: str, line: int) -> str:
    """`line N (id X)` for a line that is JSON but not an acceptable command."""
    try:
        # numbers are not converted: only the id is wanted, whatever the rest holds
        obj = json.loads(raw, parse_int=_ignore, parse_float=_ignore, parse_constant=_ignore)
    except (ValueError, RecursionError):
        obj = None
    cid = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(cid, str) and cid.strip() and _encodable(cid):
        return f"line {line} (id {_show_id(cid)})"
    return f"line {line}"


def _ignore(_text: str) -> None:
    return None


class _FloatRefused(Exception):
    pass


class _DuplicateKey(Exception):
    pass


class _IntOutOfRange(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _v in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def _refuse_float(_text: str) -> Any:
    raise _FloatRefused


def _refuse_constant(_text: str) -> Any:
    raise _FloatRefused


def _bounded_int(text: str) -> int:
    """A JSON integer, refused beyond 64 bits before Python converts its digits."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _IntOutOfRange
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise _IntOutOfRange
    return value


_DECODER = json.JSONDecoder(
    parse_float=_refuse_float,
    parse_int=_bounded_int,
    parse_constant=_refuse_constant,
    object_pairs_hook=_no_duplicate_keys,
)


def _loads(raw: str) -> Any:
    return _DECODER.decode(raw)
