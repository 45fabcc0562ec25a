"""Decoding stored event state on the projections' read path.

Kept apart from :mod:`.transcodings` (which builds the event store's transcoder and so imports
eventsourcing and the domain's value types) so that a projector doing upkeep can read the log
without importing either: events hold only the values eventsourcing transcodes itself.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable
from uuid import UUID

# The names under which eventsourcing's own transcodings (UUIDAsHex, DecimalAsStr,
# DatetimeAsISO) and the ledger's DateAsISO write their values, and how each decodes
# (tests/test_read_path.py holds them to the transcoder's own decoders).
BASIC_DECODERS: dict[str, Callable[[Any], Any]] = {
    "uuid_hex": UUID,
    "decimal_str": Decimal,
    "datetime_iso": datetime.fromisoformat,
    "date_iso": date.fromisoformat,
}


def fast_loads(transcoder: Any,
               other: Callable[[str], Callable[[Any], Any] | None] | None = None) -> Callable[[bytes], Any]:
    """A decoder of stored state equal to ``transcoder.decode``, with a leaner object hook.

    eventsourcing writes a transcoded value as ``{"_type_": name, "_data_": text}``; this hook
    looks the name up in the transcoder's own registry, so it decodes exactly what the
    transcoder would and refuses what it would refuse, in one test per object instead of nested
    try blocks (about a third less time in the hook, which runs for every object of every
    stored event on the projections' read path).

    Without a transcoder, the values eventsourcing transcodes itself are decoded by
    :data:`BASIC_DECODERS` and any other name is asked of `other` (None: not registered).
    """
    decoders: dict[str, Callable[[Any], Any]]
    if transcoder is not None:
        decoders = {name: t.decode for name, t in transcoder.names.items()}
    else:
        decoders = dict(BASIC_DECODERS)

    def hook(d: dict[str, Any]) -> Any:
        if len(d) == 2 and "_type_" in d and "_data_" in d:
            decoder = decoders.get(d["_type_"])
            if decoder is None and other is not None:
                decoder = other(d["_type_"])
                if decoder is not None:
                    decoders[d["_type_"]] = decoder
            if decoder is None:
                from eventsourcing.persistence import TranscodingNotRegisteredError

                raise TranscodingNotRegisteredError(f"no transcoding named {d['_type_']!r}")
            return decoder(d["_data_"])
        return d

    decode = json.JSONDecoder(object_hook=hook).decode

    def loads(state: bytes) -> Any:
        return decode(bytes(state).decode("utf-8"))

    return loads
