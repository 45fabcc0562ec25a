"""Transcodings for values that eventsourcing does not encode out of the box."""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)

from .issuance import EntryKind, HolderAccount, TimelineEntry
from .terms import Terms


class DateAsISO(Transcoding):
    """A calendar date as ISO text: effective dates are dates, never datetimes."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class TermsAsDict(Transcoding):
    """The aggregate's Terms in a snapshot: its fields by name (dates and Decimals transcoded)."""

    type = Terms
    name = "terms"

    def encode(self, obj: Terms) -> dict[str, Any]:
        return obj.as_fields()

    def decode(self, data: dict[str, Any]) -> Terms:
        # a snapshot taken before vesting has fewer fields: they take their defaults
        return Terms.from_fields(data)


class TimelineEntryAsList(Transcoding):
    """A timeline entry in a snapshot: [ordinal, seq, kind, rights, all_outstanding], compact,
    then the vesting start of an allotment that has one."""

    type = TimelineEntry
    name = "timeline_entry"

    def encode(self, obj: TimelineEntry) -> list[Any]:
        out = [obj.ordinal, obj.seq, obj.kind.value, obj.rights, obj.all_outstanding]
        if obj.start:
            out.append(obj.start)
        return out

    def decode(self, data: list[Any]) -> TimelineEntry:
        ordinal, seq, kind, rights, every, *start = data
        return TimelineEntry(ordinal, seq, EntryKind(kind), rights, every, start[0] if start else 0)


class HolderAccountAsDict(Transcoding):
    """A holder's account in a snapshot: its counters, name, group and timeline."""

    type = HolderAccount
    name = "holder_account"

    def encode(self, obj: HolderAccount) -> dict[str, Any]:
        return {
            "group": obj.group,
            "name": obj.name,
            "allotted": obj.allotted,
            "exercised": obj.exercised,
            "forfeited": obj.forfeited,
            "expired": obj.expired,
            "last_ordinal": obj.last_ordinal,
            "timeline": obj.timeline,
        }

    def decode(self, data: dict[str, Any]) -> HolderAccount:
        return HolderAccount(**data)


LEDGER_TRANSCODINGS: tuple[type[Transcoding], ...] = (
    DateAsISO,
    TermsAsDict,
    TimelineEntryAsList,
    HolderAccountAsDict,
)




def fast_encoder(mapper: Any) -> Callable[[Any], Any]:
    """An encoder of domain events equal to ``mapper.to_stored_event``: the same topic and the
    same bytes of state, built with less work per value.

    The mapper's transcoder hands every value JSON cannot hold to a Python ``default`` hook
    from inside the C encoder (a call, a dict and a nested encode per date, amount and
    timestamp); the flat state of an event is written here value by value instead, strings
    through the C string encoder, transcoded values as the ``{"_type_": ..., "_data_": ...}``
    object the hook would have made. Anything else (lists, dicts, booleans, floats, a key that
    is not text) goes through the transcoder's own encoder, so the output is identical byte
    for byte (the chain hashes these bytes). A mapper that compresses or encrypts keeps its
    own path.
    """
    if getattr(mapper, "compressor", None) or getattr(mapper, "cipher", None):
        return mapper.to_stored_event
    from json.encoder import encode_basestring  # the C string encoder (ensure_ascii=False)

    from eventsourcing.persistence import StoredEvent
    from eventsourcing.utils import get_topic

    transcoder = mapper.transcoder
    general = transcoder.encoder.encode
    transcodings = dict(transcoder.types)
    heads = {t: '{"_type_":' + encode_basestring(tr.name) + ',"_data_":' for t, tr in transcodings.items()}
    keys: dict[str, str] = {}
    topics: dict[type, tuple[str, int]] = {}

    def value(v: Any) -> str:
        t = type(v)
        if t is str:
            return encode_basestring(v)
        if t is int:
            return int.__repr__(v)
        if v is None:
            return "null"
        head = heads.get(t)
        if head is not None:
            return head + value(transcodings[t].encode(v)) + "}"
        return general(v)

    def encode_event(event: Any) -> Any:
        cls = type(event)
        found = topics.get(cls)
        if found is None:
            found = topics[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
        topic, class_version = found
        state = dict(vars(event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        if class_version > 1:
            state["class_version"] = class_version
        parts = []
        for k, v in state.items():
            key = keys.get(k)
            if key is None:
                if type(k) is not str:
                    return StoredEvent(originator_id, originator_version, topic, transcoder.encode(state))
                key = keys[k] = encode_basestring(k) + ":"
            # the common values inline (a call per value is a fifth of the encoding)
            t = type(v)
            if t is str:
                parts.append(key + encode_basestring(v))
            elif v is None:
                parts.append(key + "null")
            elif t is int:
                parts.append(key + int.__repr__(v))
            else:
                parts.append(key + value(v))
        text = "{" + ",".join(parts) + "}"
        return StoredEvent(originator_id, originator_version, topic, text.encode("utf8"))

    return encode_event


def register_transcodings(transcoder: JSONTranscoder) -> None:
    """Every transcoding the ledger's stored events and snapshots use: eventsourcing's own
    (UUID, Decimal, datetime) and the ledger's (dates, the aggregates' value objects). The one list, used by the application
    and by readers that decode the log without an application."""
    for t in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(t)
    for transcoding in LEDGER_TRANSCODINGS:
        transcoder.register(transcoding())
