"""Vesting schedules: the terms' ``vesting`` JSON <-> OCF 1.2.0 ``VestingTerms`` (pure functions).

The ledger's schedule (``set_terms.vesting``) is a list of tranches, each a portion of the rights
with one trigger: ``after_months`` from the vesting start (optionally repeated ``occurrences``
times every ``every_months``, each counted from the start) or ``on_event`` (vests when
``record_vesting_event`` records it). OCF says the same with a graph of vesting conditions: a
``VESTING_START_DATE`` condition, ``VESTING_SCHEDULE_RELATIVE`` conditions (a period of months
after another condition, repeated ``occurrences`` times), ``VESTING_EVENT`` and
``VESTING_SCHEDULE_ABSOLUTE`` conditions. Month arithmetic: OCF's
``VESTING_START_DAY_OR_LAST_DAY_OF_MONTH`` is the contract's rule (the start's day of month, or
the month's last day when it has fewer days), so instalments stay counted from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from .notes import note, read_note

START_DAY = "VESTING_START_DAY_OR_LAST_DAY_OF_MONTH"

ALLOCATION_TO_OCF = {
    "cumulative_round_down": "CUMULATIVE_ROUND_DOWN",
    "cumulative_rounding": "CUMULATIVE_ROUNDING",
}
ALLOCATION_FROM_OCF = {v: k for k, v in ALLOCATION_TO_OCF.items()}


class VestingMappingError(ValueError):
    """A schedule that one side cannot say; the message names the OCF vesting terms."""


def portion_text(value: Fraction) -> str:
    """A portion as the contract writes it: "1/4", "1"."""
    return str(value)


def portion_of(text: Any) -> Fraction:
    """The exact value of a contract portion ("1/48", "0.25") or an OCF Numeric string."""
    try:
        if isinstance(text, str) and "/" in text:
            return Fraction(text)
        return Fraction(Decimal(str(text)))
    except (ValueError, ZeroDivisionError, InvalidOperation):
        raise VestingMappingError(f"{text!r} is not a portion") from None


def _numeric(value: Fraction) -> str:
    """An integer as an OCF Numeric string (portions are written as integer ratios)."""
    if value.denominator != 1:
        raise ValueError("not an integer")
    return str(value.numerator)


def _ratio(value: Fraction) -> dict[str, str]:
    return {"numerator": _numeric(Fraction(value.numerator)), "denominator": _numeric(Fraction(value.denominator))}


def allocation_to_ocf(allocation: str | None) -> str:
    """The terms' `allocation` (default cumulative_round_down) as OCF's allocation_type."""
    return ALLOCATION_TO_OCF[allocation or "cumulative_round_down"]


def allocation_from_ocf(allocation_type: str, terms_id: str) -> str:
    """OCF's allocation_type as the terms' `allocation`; other types are refused."""
    try:
        return ALLOCATION_FROM_OCF[allocation_type]
    except KeyError:
        raise VestingMappingError(
            f"vesting terms {terms_id}: allocation_type {allocation_type} has no equivalent in the "
            "ledger (only CUMULATIVE_ROUND_DOWN and CUMULATIVE_ROUNDING)"
        ) from None


def _months(length: int, occurrences: int, relative_to: str) -> dict[str, Any]:
    return {
        "type": "VESTING_SCHEDULE_RELATIVE",
        "period": {"length": length, "type": "MONTHS", "occurrences": occurrences, "day_of_month": START_DAY},
        "relative_to_condition_id": relative_to,
    }


def ocf_vesting_terms(vesting: dict[str, Any], terms_id: str, name: str) -> dict[str, Any]:
    """An OCF VestingTerms object saying the ledger schedule `vesting` (the set_terms JSON).

    Tranches relative to the start become conditions relative to the start condition; a repeated
    tranche whose first instalment comes later than its period starts from a zero-quantity
    condition (first - period) months after the start; one that comes earlier is written as one
    condition per instalment. ``on_event`` tranches are VESTING_EVENT conditions whose id is the
    event's name. ``unvested_lapse_on_departure: false`` travels in the terms' note.
    """
    start_id = f"{terms_id}:start"
    conditions: list[dict[str, Any]] = []
    top: list[str] = []
    used: set[str] = {start_id}

    def portion(tranche: dict[str, Any]) -> dict[str, str]:
        return _ratio(portion_of(tranche["portion"]))

    for i, tranche in enumerate(vesting.get("tranches", []), start=1):
        cid = f"{terms_id}:t{i}"
        if "on_event" in tranche:
            event = str(tranche["on_event"])
            eid = event if event not in used else f"{event}#{i}"
            used.add(eid)
            conditions.append({
                "id": eid, "description": f"vests when the event {event} is recorded",
                "portion": portion(tranche), "trigger": {"type": "VESTING_EVENT"},
                "next_condition_ids": [],
                **({"comments": [note({"on_event": event})]} if eid != event else {}),
            })
            top.append(eid)
            continue
        first = int(tranche.get("after_months", 0))
        times = int(tranche.get("occurrences", 1))
        every = int(tranche.get("every_months", 0) or 0)
        if times == 1:
            conditions.append({"id": cid, "portion": portion(tranche), "trigger": _months(first, 1, start_id),
                               "next_condition_ids": []})
            top.append(cid)
        elif first == every:
            conditions.append({"id": cid, "portion": portion(tranche), "trigger": _months(every, times, start_id),
                               "next_condition_ids": []})
            top.append(cid)
        elif first > every:
            lead = f"{cid}:from"
            conditions.append({"id": lead, "description": "start of the instalments (vests nothing)",
                               "quantity": "0", "trigger": _months(first - every, 1, start_id),
                               "next_condition_ids": [cid]})
            conditions.append({"id": cid, "portion": portion(tranche), "trigger": _months(every, times, lead),
                               "next_condition_ids": []})
            top.append(lead)
        else:
            for k in range(times):
                kid = f"{cid}:{k + 1}"
                conditions.append({"id": kid, "portion": portion(tranche),
                                   "trigger": _months(first + k * every, 1, start_id), "next_condition_ids": []})
                top.append(kid)
    start = {"id": start_id, "description": "vesting start", "quantity": "0",
             "trigger": {"type": "VESTING_START_DATE"}, "next_condition_ids": top}
    terms: dict[str, Any] = {
        "object_type": "VESTING_TERMS",
        "id": terms_id,
        "name": name,
        "description": describe(vesting),
        "allocation_type": allocation_to_ocf(vesting.get("allocation")),
        "vesting_conditions": [start, *conditions],
    }
    if vesting.get("unvested_lapse_on_departure", True) is False:
        terms["comments"] = [note({"unvested_lapse_on_departure": False})]
    return terms


def describe(vesting: dict[str, Any]) -> str:
    """A plain-language description of a schedule (OCF requires one)."""
    parts = []
    for t in vesting.get("tranches", []):
        if "on_event" in t:
            parts.append(f"{t['portion']} when {t['on_event']} is recorded")
        elif int(t.get("occurrences", 1)) > 1:
            parts.append(f"{t['portion']} every {t['every_months']} months, {t['occurrences']} times, "
                         f"from {t['after_months']} months after the start")
        else:
            parts.append(f"{t['portion']} {t.get('after_months', 0)} months after the start")
    lapse = vesting.get("unvested_lapse_on_departure", True)
    return "; ".join(parts) + ("; unvested rights lapse at departure" if lapse else "") + "."


@dataclass
class ImportedVesting:
    """A schedule read from OCF: the terms' `vesting` JSON, and what else the import must do."""

    vesting: dict[str, Any]
    start_condition_id: str
    # Conditions that vest on a fixed date: (event name, date), recorded as vesting events.
    dated_events: list[tuple[str, date]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ledger_vesting(terms: dict[str, Any], quantity: Fraction | None = None) -> ImportedVesting:
    """The ledger schedule an OCF VestingTerms object says (`quantity`: the grant's shares, for
    conditions given as a quantity rather than a portion).

    A ``VESTING_SCHEDULE_ABSOLUTE`` condition becomes an ``on_event`` tranche named by its id and a
    vesting event on its date. A relative condition whose ``relative_to_condition_id`` names no
    condition is read as relative to the condition that lists it in ``next_condition_ids`` (with
    a warning). Refused (VestingMappingError naming the terms): periods in days, portions marked
    ``remainder``, conditions relative to an event, an allocation type other than the two
    cumulative ones, no start condition.
    """
    tid = str(terms.get("id"))
    allocation = allocation_from_ocf(terms.get("allocation_type", ""), tid)
    conditions = {c["id"]: c for c in terms.get("vesting_conditions", [])}
    starts = [c for c in conditions.values() if c["trigger"].get("type") == "VESTING_START_DATE"]
    if len(starts) != 1:
        raise VestingMappingError(f"vesting terms {tid}: needs exactly one VESTING_START_DATE condition")
    start_id = starts[0]["id"]
    parents: dict[str, str] = {}
    for c in conditions.values():
        for n in c.get("next_condition_ids", []):
            parents.setdefault(n, c["id"])
    warnings: list[str] = []
    ends: dict[str, int] = {start_id: 0}

    def relative_to(c: dict[str, Any]) -> str:
        ref = c["trigger"].get("relative_to_condition_id")
        if ref in conditions:
            return ref
        parent = parents.get(c["id"])
        if parent is None:
            raise VestingMappingError(
                f"vesting terms {tid}: condition {c['id']} is relative to {ref}, which is not a condition")
        warnings.append(f"vesting terms {tid}: condition {c['id']} names {ref!r}, not a condition; "
                        f"read as relative to {parent}, the condition before it")
        return parent

    def first_and_period(c: dict[str, Any], seen: tuple[str, ...] = ()) -> tuple[int, int, int]:
        """(months from the start to the first instalment, period, occurrences) of a condition."""
        trig = c["trigger"]
        if trig.get("type") == "VESTING_START_DATE":
            return 0, 0, 1
        if trig.get("type") != "VESTING_SCHEDULE_RELATIVE":
            raise VestingMappingError(
                f"vesting terms {tid}: a schedule relative to condition {c['id']} "
                f"({trig.get('type')}) has no equivalent in the ledger")
        period = trig["period"]
        if period.get("type") != "MONTHS":
            raise VestingMappingError(
                f"vesting terms {tid}: condition {c['id']} counts in {period.get('type')}; the ledger's "
                "schedules count in months")
        if period.get("day_of_month", START_DAY) != START_DAY:
            warnings.append(f"vesting terms {tid}: condition {c['id']} vests on day "
                            f"{period['day_of_month']}; the ledger vests on the vesting start's day")
        ref = relative_to(c)
        if ref in seen:
            raise VestingMappingError(f"vesting terms {tid}: conditions relative to each other in a loop")
        f0, p0, n0 = first_and_period(conditions[ref], seen + (c["id"],))
        base = f0 + p0 * (n0 - 1)
        return base + int(period["length"]), int(period["length"]), int(period["occurrences"])

    tranches: list[dict[str, Any]] = []
    dated: list[tuple[str, date]] = []
    for c in terms.get("vesting_conditions", []):
        part = _portion(c, quantity, tid)
        if part == 0:
            continue
        trig = c["trigger"].get("type")
        event = read_note(c.get("comments")).get("on_event", c["id"])
        if trig in ("VESTING_EVENT", "VESTING_SCHEDULE_ABSOLUTE"):
            tranches.append({"portion": portion_text(part), "on_event": event})
            if trig == "VESTING_SCHEDULE_ABSOLUTE":
                dated.append((event, date.fromisoformat(c["trigger"]["date"])))
            continue
        first, every, times = first_and_period(c)
        tranche: dict[str, Any] = {"portion": portion_text(part), "after_months": first}
        if times > 1:
            if every < 1:
                raise VestingMappingError(f"vesting terms {tid}: condition {c['id']} repeats every 0 months")
            tranche.update(every_months=every, occurrences=times)
        tranches.append(tranche)
    vesting: dict[str, Any] = {"tranches": tranches}
    lapse = read_note(terms.get("comments")).get("unvested_lapse_on_departure")
    if lapse is not None:
        vesting["unvested_lapse_on_departure"] = bool(lapse)
    if allocation != "cumulative_round_down":
        vesting["allocation"] = allocation
    return ImportedVesting(vesting, start_id, dated, warnings)


def _portion(c: dict[str, Any], quantity: Fraction | None, tid: str) -> Fraction:
    if "portion" in c:
        p = c["portion"]
        if p.get("remainder"):
            raise VestingMappingError(f"vesting terms {tid}: condition {c['id']} vests a remainder, "
                                      "which the ledger's schedules do not have")
        den = portion_of(p["denominator"])
        if den == 0:
            raise VestingMappingError(f"vesting terms {tid}: condition {c['id']} has a zero denominator")
        return portion_of(p["numerator"]) / den
    q = portion_of(c.get("quantity", "0"))
    if q == 0:
        return Fraction(0)
    if not quantity:
        raise VestingMappingError(f"vesting terms {tid}: condition {c['id']} vests a quantity; "
                                  "the ledger's schedules vest portions")
    return q / quantity
