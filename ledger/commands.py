"""The command file: one JSON object per line, validated into typed commands.

A command is an immutable value (like a beancount directive): its type, its fields parsed into
dates, Decimals, Fractions and ints, and the metadata kept on every event it produces (command
id, actor, reason). Parsing refuses anything the contract does not allow, so that the domain
only ever sees well-typed values.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date
from typing import Any, Callable

from .errors import BadCommand
from .money import is_currency, parse_amount, parse_ratio

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
    return value


def _non_negative_int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("must be a JSON integer")
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _money(value: Any):
    if not isinstance(value, str):
        raise ValueError("must be a JSON string holding a plain decimal (not a number)")
    try:
        return parse_amount(value)
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
    except ValueError:
        raise ValueError(f'must be a decimal or a fraction such as "2" or "1/3", not {value!r}') from None


def _rights_or_all(value: Any) -> int | str:
    if value == "all":
        return "all"
    if type(value) is int:
        return _positive_int(value)
    raise ValueError('must be a JSON integer >= 1 or "all"')


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
    "set_terms": {
        "issuance": (_text, True, None),
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
    },
    "allot_rights": {
        "issuance": (_text, True, None),
        "holder": (_text, True, None),
        "name": (_text, True, None),
        "group": (_text, True, None),
        "rights": (_positive_int, True, None),
        "allotted_on": (_date, True, None),
        "payment": (_one_of("offset", "cash", "gratis"), True, None),
    },
    "exercise_rights": {
        "issuance": (_text, True, None),
        "holder": (_text, True, None),
        "rights": (_positive_int, True, None),
        "exercised_on": (_date, True, None),
        "delivery": (_one_of("new_shares", "treasury_shares"), False, "new_shares"),
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
}

# Fields every command may carry; `reason` is required for a forfeiture.
_COMMON = {"id", "type", "actor", "reason"}
_REASON_REQUIRED = {"forfeit_rights"}



@lru_cache(maxsize=1)
def default_actor() -> str:
    """The OS user, the contract's default actor (looked up once per process)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no env: still an honest answer
        return "unknown"


def digest(obj: dict[str, Any]) -> str:
    """SHA-256 of the command as a parsed JSON object (key order and spacing do not matter)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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

    @property
    def where(self) -> str:
        """How messages name this command: `line N (id X)` or `id X`."""
        return f"line {self.line} (id {self.id})" if self.line is not None else f"id {self.id}"


def parse_command(obj: Any, line: int | None = None, actor: str | None = None) -> Command:
    """Validate one parsed JSON value into a :class:`Command`; BadCommand names what is wrong."""
    where = f"line {line}" if line is not None else "command"
    if not isinstance(obj, dict):
        raise BadCommand(f"{where}: a command must be a JSON object")
    cid = obj.get("id")
    if "id" in obj and isinstance(cid, str) and cid.strip():
        where = f"{where} (id {cid})" if line is not None else f"id {cid}"
    if not isinstance(cid, str) or not cid.strip():
        raise BadCommand(f"{where}: field 'id' is required and must be a non-empty string")
    ctype = obj.get("type")
    if ctype not in SCHEMAS:
        known = ", ".join(SCHEMAS)
        raise BadCommand(f"{where}: unknown command type {ctype!r} (known: {known})")
    schema = SCHEMAS[ctype]
    unknown = sorted(set(obj) - set(schema) - _COMMON)
    if unknown:
        raise BadCommand(f"{where}: field {unknown[0]!r} is not a field of {ctype}")
    fields: dict[str, Any] = {}
    for name, (parser, required, default) in schema.items():
        if name not in obj or obj[name] is None and not required:
            if required:
                raise BadCommand(f"{where}: {ctype} needs field {name!r}")
            fields[name] = default
            continue
        try:
            fields[name] = parser(obj[name])
        except ValueError as e:
            raise BadCommand(f"{where}: field {name!r} {e}") from None
    for meta in ("actor", "reason"):
        if meta in obj and (not isinstance(obj[meta], str) or "\x00" in obj[meta]):
            raise BadCommand(f"{where}: field {meta!r} must be a string without NUL characters")
    if ctype in _REASON_REQUIRED and not (obj.get("reason") or "").strip():
        raise BadCommand(f"{where}: {ctype} needs field 'reason'")
    return Command(
        id=cid,
        type=ctype,
        fields=fields,
        actor=obj.get("actor") or actor or default_actor(),
        reason=obj.get("reason") or "",
        digest=digest(obj),
        line=line,
        raw=obj,
    )


def parse_line(raw: bytes | str, line: int, actor: str | None = None) -> Command | None:
    """Parse one line of a command file; None for a blank line."""
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
    elif len(raw.encode("utf-8")) > MAX_LINE_BYTES:
        raise BadCommand(f"line {line}: longer than 1 MiB")
    if not raw.strip():
        return None
    try:
        obj = json.loads(
            raw,
            parse_float=_refuse_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except _DuplicateKey as e:
        raise BadCommand(f"{_where(raw, line)}: field {e.args[0]!r} is given twice") from None
    except _FloatRefused:
        raise BadCommand(f"{_where(raw, line)}: a number with a fraction or exponent is not allowed "
                         "(money is a decimal string, rights are integers)") from None
    except json.JSONDecodeError as e:
        raise BadCommand(f"line {line}: malformed JSON ({e.msg} at column {e.colno})") from None
    return parse_command(obj, line=line, actor=actor)


def _where(raw: str, line: int) -> str:
    """`line N (id X)` for a line that is JSON but not an acceptable command."""
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    cid = obj.get("id") if isinstance(obj, dict) else None
    return f"line {line} (id {cid})" if isinstance(cid, str) else f"line {line}"


class _FloatRefused(Exception):
    pass


class _DuplicateKey(Exception):
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
