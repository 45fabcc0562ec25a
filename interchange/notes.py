"""The parseable notes that carry, in an OCF object's `comments`, what OCF 1.2.0 cannot say.

A note is one comment string: the prefix ``equity-ledger:`` followed by one JSON object (keys
sorted, no spaces, Unicode kept). Any other comment is free text and ignored by the import. Keys
are listed in the README ("Moving a cap table in and out"); values are JSON strings, integers,
booleans or null (dates as ``YYYY-MM-DD``, money and ratios as decimal or ``N/M`` strings).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

PREFIX = "equity-ledger:"


def note(values: dict[str, Any]) -> str:
    """One comment line holding `values` (None values dropped)."""
    kept = {k: v for k, v in values.items() if v is not None}
    return PREFIX + json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def read_note(comments: Iterable[Any] | None) -> dict[str, Any]:
    """The note among an object's comments, merged if several; {} when there is none.

    A comment that starts with the prefix but does not hold a JSON object is a broken note:
    ValueError, so that a damaged bundle of this tool is refused rather than misread.
    """
    found: dict[str, Any] = {}
    for text in comments or ():
        if not isinstance(text, str) or not text.startswith(PREFIX):
            continue
        try:
            value = json.loads(text[len(PREFIX):])
        except ValueError:
            raise ValueError(f"comment {text[:60]!r} is not a readable equity-ledger note") from None
        if not isinstance(value, dict):
            raise ValueError(f"comment {text[:60]!r} is not a readable equity-ledger note")
        found.update(value)
    return found
