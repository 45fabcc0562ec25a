"""Small builders of command objects for tests (plain dicts, exactly as in a command file)."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def cid(prefix: str = "c") -> str:
    return f"{prefix}{next(_ids)}"


def resolution(issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {
        "id": cid(), "type": "pass_resolution", "issuance": issuance, "issuer": "Example K.K.",
        "body": "board_of_directors", "resolved_on": "2020-01-10", "title": "1st series", **kw,
    }


def terms(issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {
        "id": cid(), "type": "set_terms", "issuance": issuance, "decided_on": "2020-01-20",
        "rights": 100, "shares_per_right": 100, "price_per_right": "1000", "currency": "JPY",
        "exercise_price_per_share": "1", "allotment_date": "2020-02-01",
        "exercise_from": "2020-02-02", "exercise_to": "2040-02-01", **kw,
    }


def allot(holder: str = "h1", rights: int = 10, issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {
        "id": cid(), "type": "allot_rights", "issuance": issuance, "holder": holder,
        "name": f"Name {holder}", "group": "director", "rights": rights,
        "allotted_on": "2020-02-01", "payment": "offset", **kw,
    }


def exercise(holder: str = "h1", rights: int = 1, on: str = "2021-01-01", issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "exercise_rights", "issuance": issuance, "holder": holder,
            "rights": rights, "exercised_on": on, **kw}


def forfeit(holder: str = "h1", rights: Any = 1, on: str = "2021-01-01", issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "forfeit_rights", "issuance": issuance, "holder": holder,
            "rights": rights, "forfeited_on": on, "reason": "waived", **kw}


def depart(holder: str = "h1", on: str = "2021-01-01", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "record_departure", "holder": holder, "departed_on": on, **kw}


def adjust(ratio: str = "2", on: str = "2021-01-01", issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "adjust_shares", "issuance": issuance, "ratio": ratio, "effective_on": on, **kw}


def expire(on: str = "2040-02-02", issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "expire_rights", "issuance": issuance, "expired_on": on, **kw}


def setup(issuance: str = "s1", **terms_kw: Any) -> list[dict[str, Any]]:
    """A resolution and its terms."""
    return [resolution(issuance), terms(issuance, **terms_kw)]


def details(holder: str = "h1", address: str = "1-1 Chiyoda, Tokyo", on: str = "2020-02-01", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "record_holder_details", "holder": holder, "address": address,
            "effective_on": on, **kw}


def erase(holder: str = "h1", **kw: Any) -> dict[str, Any]:
    return {"id": cid(), "type": "erase_holder_details", "holder": holder, "reason": "erasure request", **kw}


def vest(event: str = "ipo", on: str = "2021-01-01", issuance: str = "s1", **kw: Any) -> dict[str, Any]:
    """A record_vesting_event (every holder unless `holder` is given)."""
    return {"id": cid(), "type": "record_vesting_event", "issuance": issuance, "event": event,
            "occurred_on": on, **kw}


def schedule(*tranches: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A vesting object of the terms."""
    return {"tranches": list(tranches), **kw}
