"""Export: the ledger's facts as an OCF 1.2.0 bundle (pure: facts in, OCF objects out).

One stock plan per issuance (OCF has no object for the terms of a series: they travel in the
plan's note), one stakeholder per holder, one stock class per share class, one vesting terms
object per issuance with a schedule, and the transactions in record order: each allotment an
equity compensation issuance of options (its own security), exercises (with the stock issued by
them), forfeits, lapses and expiry as cancellations, adjustments as stock class splits, vesting
events. Rights of a holder are fungible in the ledger while OCF counts per security: an exercise,
forfeit or expiry is spread over the holder's grants first allotted, first taken (a transaction
per grant, all carrying the command's id in their note, so the import puts them back together).
What OCF cannot say travels in notes (see :mod:`.notes`); addresses are never exported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any

from ..ledger.terms import in_force_on, terms_in_force
from .ledger_log import Fact, LedgerFacts
from .notes import note
from .vesting import ocf_vesting_terms

OCF_VERSION = "1.2.0"

RELATIONSHIP = {"director": "BOARD_MEMBER", "executive_officer": "OFFICER", "employee": "EMPLOYEE"}
TERMINATION_REASONS = ("VOLUNTARY_OTHER", "VOLUNTARY_GOOD_CAUSE", "VOLUNTARY_RETIREMENT",
                       "INVOLUNTARY_OTHER", "INVOLUNTARY_DEATH", "INVOLUNTARY_DISABILITY",
                       "INVOLUNTARY_WITH_CAUSE")

# The files of a bundle: (manifest key, file name, file_type).
FILES = (
    ("stakeholders_files", "Stakeholders.ocf.json", "OCF_STAKEHOLDERS_FILE", "stakeholders"),
    ("stock_classes_files", "StockClasses.ocf.json", "OCF_STOCK_CLASSES_FILE", "stock_classes"),
    ("stock_legend_templates_files", "StockLegends.ocf.json", "OCF_STOCK_LEGEND_TEMPLATES_FILE",
     "stock_legend_templates"),
    ("stock_plans_files", "StockPlans.ocf.json", "OCF_STOCK_PLANS_FILE", "stock_plans"),
    ("vesting_terms_files", "VestingTerms.ocf.json", "OCF_VESTING_TERMS_FILE", "vesting_terms"),
    ("transactions_files", "Transactions.ocf.json", "OCF_TRANSACTIONS_FILE", "transactions"),
)


def relationship(group: str) -> str:
    """The OCF stakeholder relationship of a ledger group (any other group: OTHER)."""
    return RELATIONSHIP.get(group, "OTHER")


def numeric(value: Decimal | Fraction | int) -> str:
    """An OCF Numeric string (at most 10 decimals: finer values are floored, the exact value
    travels in a note where it matters)."""
    if isinstance(value, Fraction):
        whole = Decimal(value.numerator) / Decimal(value.denominator) if value.denominator != 1 else Decimal(value.numerator)
        value = whole
    d = Decimal(value)
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d.quantize(Decimal(1).scaleb(-10), rounding="ROUND_FLOOR"), "f").rstrip("0").rstrip(".")
    return text


def _iso(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    return value


def _meta(fact: Fact, **extra: Any) -> dict[str, Any]:
    return {"cmd": fact.command_id, "seq": fact.seq, "actor": fact.actor, "reason": fact.reason or None, **extra}


@dataclass
class _Grant:
    security_id: str
    issuance: str
    holder: str
    allotted_on: date
    seq: int
    remaining: int


@dataclass
class _Issuance:
    resolution: Fact
    terms: Fact | None = None
    adjustments: list[tuple[int, str]] = field(default_factory=list)
    expiry: Fact | None = None

    def in_force(self, day: date) -> tuple[Fraction, Decimal]:
        t = self.terms.fields
        steps = terms_in_force(t["shares_per_right"], t["exercise_price_per_share"], t["currency"],
                               sorted(self.adjustments, key=lambda a: a[0]))
        return in_force_on((Fraction(t["shares_per_right"]), t["exercise_price_per_share"]), steps,
                           day.toordinal())


@dataclass
class Bundle:
    """An OCF bundle in memory: the manifest's issuer and each file's items."""

    manifest: dict[str, Any]
    files: dict[str, list[dict[str, Any]]]


def build_bundle(facts: LedgerFacts, *, as_of: date | None = None, country: str = "JP",
                 formation_date: date | None = None, now: datetime | None = None) -> Bundle:
    """The OCF bundle that says `facts` (see the module's docstring for the mapping)."""
    issuances: dict[str, _Issuance] = {}
    holders: dict[str, dict[str, Any]] = {}  # holder -> latest name/group (by allotted_on, record order)
    departures: dict[str, Fact] = {}
    grants: dict[tuple[str, str], list[_Grant]] = defaultdict(list)
    classes: dict[str, str] = {}
    vesting_terms: list[dict[str, Any]] = []
    vesting_ids: dict[str, str] = {}
    txs: list[dict[str, Any]] = []
    lapse_commands = {f.command_id for f in facts.facts if f.kind == "Holder.Departed"}
    counters: dict[str, int] = defaultdict(int)

    def class_id(share_class: str) -> str:
        if share_class not in classes:
            classes[share_class] = f"class:{share_class}"
        return classes[share_class]

    def spread(key: tuple[str, str], rights: int, day: date) -> list[tuple[_Grant, int]]:
        """Take `rights` from the holder's grants: allotted on or before `day` first, oldest first."""
        pool = sorted(grants[key], key=lambda g: (g.allotted_on > day, g.allotted_on, g.seq))
        parts: list[tuple[_Grant, int]] = []
        left = rights
        for g in pool:
            if left == 0:
                break
            take = min(left, g.remaining)
            if take > 0:
                g.remaining -= take
                parts.append((g, take))
                left -= take
        if left > 0 and pool:  # not reachable for a history the rules accepted; never lose rights
            pool[-1].remaining -= left
            parts.append((pool[-1], left))
        return parts

    def shares_parts(parts: list[tuple[_Grant, int]], spr: Fraction, total: int | None) -> list[int]:
        out = [floor(r * spr) for _g, r in parts]
        if total is not None and out:
            out[-1] = total - sum(out[:-1])
        return out

    for fact in facts.facts:
        f = fact.fields
        name = fact.name
        if name == "ResolutionPassed":
            issuances[f["issuance"]] = _Issuance(fact)
        elif name == "TermsSet":
            iss = issuances[f["issuance"]]
            iss.terms = fact
            class_id(f.get("share_class") or "common")
            if f.get("vesting"):
                vid = f"vesting:{f['issuance']}"
                vesting_ids[f["issuance"]] = vid
                vesting_terms.append(ocf_vesting_terms(_vesting_json(f["vesting"]), vid,
                                                       iss.resolution.fields["title"]))
        elif name == "SharesAdjusted":
            iss = issuances[f["issuance"]]
            iss.adjustments.append((f["effective_on"].toordinal(), f["ratio"]))
            ratio = Fraction(f["ratio"])
            txs.append({
                "object_type": "TX_STOCK_CLASS_SPLIT", "id": f"split:{fact.command_id}",
                "date": f["effective_on"].isoformat(),
                "stock_class_id": class_id(iss.terms.fields.get("share_class") or "common"),
                "split_ratio": {"numerator": str(ratio.numerator), "denominator": str(ratio.denominator)},
                "comments": [f"split of issuance {f['issuance']} only",
                             note(_meta(fact, issuance=f["issuance"]))],
            })
        elif name == "RightsAllotted":
            iss = issuances[f["issuance"]]
            t = iss.terms.fields
            holder = f["holder"]
            prev = holders.get(holder)
            if prev is None or (f["allotted_on"], fact.seq) >= (prev["allotted_on"], prev["seq"]):
                holders[holder] = {"name": f["name"], "group": f["group"], "allotted_on": f["allotted_on"],
                                   "seq": fact.seq}
            spr, price = iss.in_force(f["allotted_on"])
            counters[f["issuance"]] += 1
            security = f"grant:{fact.command_id}"
            grants[(f["issuance"], holder)].append(
                _Grant(security, f["issuance"], holder, f["allotted_on"], fact.seq, f["rights"]))
            window = t.get("exercise_window_days_after_departure")
            extra = {"issuance": f["issuance"], "holder": holder, "name": f["name"], "group": f["group"],
                     "rights": f["rights"], "payment": f["payment"], "amount": str(f["amount"]),
                     "vesting_start": _iso(f.get("vesting_start"))}
            tx: dict[str, Any] = {
                "object_type": "TX_EQUITY_COMPENSATION_ISSUANCE", "id": f"allotment:{fact.command_id}",
                "security_id": security, "date": f["allotted_on"].isoformat(),
                "stakeholder_id": f"holder:{holder}",
                "custom_id": f"{f['issuance']}-{counters[f['issuance']]}",
                "board_approval_date": iss.resolution.fields["resolved_on"].isoformat(),
                "security_law_exemptions": [],
                "stock_plan_id": f"plan:{f['issuance']}",
                "stock_class_id": class_id(t.get("share_class") or "common"),
                "compensation_type": "OPTION",
                "quantity": numeric(f["rights"] * spr),
                "exercise_price": {"amount": numeric(price), "currency": t["currency"]},
                "expiration_date": t["exercise_to"].isoformat(),
                "termination_exercise_windows": [
                    {"reason": r, "period": window, "period_type": "DAYS"} for r in TERMINATION_REASONS
                ] if window is not None else [],
                "consideration_text": _consideration(f),
                "comments": [note(_meta(fact, **extra))],
            }
            if f["issuance"] in vesting_ids:
                tx["vesting_terms_id"] = vesting_ids[f["issuance"]]
            txs.append(tx)
            if f["issuance"] in vesting_ids:
                txs.append({
                    "object_type": "TX_VESTING_START", "id": f"vesting-start:{fact.command_id}",
                    "security_id": security,
                    "date": (f.get("vesting_start") or f["allotted_on"]).isoformat(),
                    "vesting_condition_id": f"{vesting_ids[f['issuance']]}:start",
                    "comments": [note({"cmd": fact.command_id, "part_of": "allotment"})],
                })
        elif name == "RightsExercised":
            iss = issuances[f["issuance"]]
            t = iss.terms.fields
            spr, _price = iss.in_force(f["exercised_on"])
            parts = spread((f["issuance"], f["holder"]), f["rights"], f["exercised_on"])
            shares = shares_parts(parts, spr, f["shares_delivered"])
            for k, ((g, r), n) in enumerate(zip(parts, shares), start=1):
                stock = f"stock:{fact.command_id}:{k}"
                extra = {"issuance": f["issuance"], "holder": f["holder"], "rights": r, "part": k,
                         "parts": len(parts), "delivery": f["delivery"],
                         "share_price": _iso(f.get("share_price"))}
                txs.append({
                    "object_type": "TX_EQUITY_COMPENSATION_EXERCISE", "id": f"exercise:{fact.command_id}:{k}",
                    "security_id": g.security_id, "date": f["exercised_on"].isoformat(),
                    "quantity": str(n), "resulting_security_ids": [stock],
                    "consideration_text": f"exercise price {f['exercise_price_per_share']} {f['currency']} "
                                          f"a share",
                    "comments": [note(_meta(fact, **extra))],
                })
                txs.append({
                    "object_type": "TX_STOCK_ISSUANCE", "id": f"stock-issuance:{fact.command_id}:{k}",
                    "security_id": stock, "date": f["exercised_on"].isoformat(),
                    "stakeholder_id": f"holder:{f['holder']}", "custom_id": f"{f['issuance']}-X{fact.seq}-{k}",
                    "security_law_exemptions": [],
                    "stock_class_id": class_id(t.get("share_class") or "common"),
                    "share_price": {"amount": numeric(f["exercise_price_per_share"]), "currency": f["currency"]},
                    "quantity": str(n), "stock_legend_ids": [],
                    "comments": [f"{'treasury' if f['delivery'] == 'treasury_shares' else 'new'} shares "
                                 "delivered on exercise",
                                 note({"cmd": fact.command_id, "part_of": "exercise"})],
                })
        elif name in ("RightsForfeited", "UnvestedLapsed"):
            iss = issuances[f["issuance"]]
            # The lapse of unvested rights that a departure records (vesting): it is the
            # departure's consequence, so the import does not count it twice.
            lapse = name == "UnvestedLapsed" or fact.command_id in lapse_commands
            on = f["lapsed_on"] if name == "UnvestedLapsed" else f["forfeited_on"]
            spr, _ = iss.in_force(on)
            parts = spread((f["issuance"], f["holder"]), f["rights"], on)
            for k, ((g, r), n) in enumerate(zip(parts, shares_parts(parts, spr, None)), start=1):
                extra = {"issuance": f["issuance"], "holder": f["holder"], "rights": r,
                         "all": True if f.get("all_outstanding") else None,
                         "lapse": True if lapse else None}
                txs.append({
                    "object_type": "TX_EQUITY_COMPENSATION_CANCELLATION",
                    "id": f"{'lapse' if lapse else 'forfeit'}:{fact.command_id}:{f['issuance']}:{k}",
                    "security_id": g.security_id, "date": on.isoformat(),
                    "quantity": str(n), "reason_text": fact.reason or ("lapsed" if lapse else "forfeited"),
                    "comments": [note(_meta(fact, **extra))],
                })
        elif name == "RightsExpired":
            iss = issuances[f["issuance"]]
            iss.expiry = fact
            spr, _ = iss.in_force(f["expired_on"])
            for holder, rights in sorted(f["expired"].items()):
                parts = spread((f["issuance"], holder), rights, f["expired_on"])
                for k, ((g, r), n) in enumerate(zip(parts, shares_parts(parts, spr, None)), start=1):
                    txs.append({
                        "object_type": "TX_EQUITY_COMPENSATION_CANCELLATION",
                        "id": f"expiry:{fact.command_id}:{holder}:{k}",
                        "security_id": g.security_id, "date": f["expired_on"].isoformat(),
                        "quantity": str(n), "reason_text": "expired: the exercise period ended",
                        "comments": [note({"cmd": fact.command_id, "part_of": "expiry", "rights": r})],
                    })
        elif name == "Departed":
            departures[f["holder"]] = fact
        elif "occurred_on" in f and "event" in f:  # a vesting event (record_vesting_event)
            iss = issuances[f["issuance"]]
            event = f["event"]
            cond = _event_condition(iss.terms.fields.get("vesting"), event, vesting_ids.get(f["issuance"]))
            covered = [g for (i, h), gs in grants.items() if i == f["issuance"]
                       and (f.get("holder") in (None, h)) for g in gs if g.allotted_on <= f["occurred_on"]]
            extra = {"issuance": f["issuance"], "event": event, "holder": f.get("holder"),
                     "portion_met": _iso(f.get("portion_met"))}
            for k, g in enumerate(sorted(covered, key=lambda g: g.seq), start=1):
                txs.append({
                    "object_type": "TX_VESTING_EVENT", "id": f"vesting-event:{fact.command_id}:{k}",
                    "security_id": g.security_id, "date": f["occurred_on"].isoformat(),
                    "vesting_condition_id": cond,
                    "comments": [note(_meta(fact, **extra))],
                })
            if not covered:  # nothing to attach it to in OCF: it still travels, on the plan
                iss.resolution.fields.setdefault("_vesting_events", []).append(_meta(fact, **extra, occurred_on=f["occurred_on"].isoformat()))

    plans = [_plan(iss, class_id) for iss in issuances.values()]
    stakeholders = [_stakeholder(h, v, departures.get(h)) for h, v in sorted(holders.items())]
    stock_classes = [{
        "object_type": "STOCK_CLASS", "id": cid, "name": name, "class_type": "COMMON",
        "default_id_prefix": "S-", "initial_shares_authorized": "UNLIMITED", "votes_per_share": "1",
        "seniority": "1",
    } for name, cid in sorted(classes.items())]
    first = min((i.resolution.fields["resolved_on"] for i in issuances.values()), default=None)
    issuer: dict[str, Any] = {
        "object_type": "ISSUER", "id": "issuer", "legal_name": facts.issuer or "unknown issuer",
        "formation_date": (formation_date or first or date.today()).isoformat(),
        "country_of_formation": country,
    }
    if formation_date is None:
        issuer["comments"] = ["formation_date is the first resolution's date: the ledger does not "
                              "record the company's formation (give --formation-date)"]
    latest = facts.latest
    bundle_as_of = as_of or max([d for d in (latest, date.today()) if d is not None])
    manifest = {
        "ocf_version": OCF_VERSION, "file_type": "OCF_MANIFEST_FILE", "issuer": issuer,
        "as_of": bundle_as_of.isoformat(),
        "generated_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "comments": ["written by equity-ledger export ocf; notes: comments starting with "
                     "'equity-ledger:' hold JSON (see its README, 'Moving a cap table in and out')"],
        "valuations_files": [],
    }
    return Bundle(manifest, {
        "stakeholders": stakeholders, "stock_classes": stock_classes, "stock_legend_templates": [],
        "stock_plans": plans, "vesting_terms": vesting_terms, "transactions": txs,
    })


def _vesting_json(value: Any) -> dict[str, Any]:
    """The terms' vesting as the contract's JSON (stored as a dict, or as its JSON text)."""
    if isinstance(value, str):
        import json

        return json.loads(value)
    if hasattr(value, "as_json"):
        return value.as_json()
    return dict(value)


def _event_condition(vesting: Any, event: str, terms_id: str | None) -> str:
    """The id of the condition an event's name vests: the name itself (see ocf_vesting_terms)."""
    return event


def _consideration(f: dict[str, Any]) -> str:
    if f["payment"] == "offset":
        return f"paid by offsetting a monetary remuneration claim of {f['amount']} {f['currency']}"
    if f["payment"] == "cash":
        return f"paid in cash: {f['amount']} {f['currency']}"
    return "gratis"


def _plan(iss: _Issuance, class_id: Any) -> dict[str, Any]:
    r = iss.resolution.fields
    t = iss.terms.fields if iss.terms else None
    plan: dict[str, Any] = {
        "object_type": "STOCK_PLAN", "id": f"plan:{r['issuance']}", "plan_name": r["title"],
        "initial_shares_reserved": str(t["rights"] * t["shares_per_right"]) if t else "0",
        "default_cancellation_behavior": "RETIRE",
    }
    if r["body"] == "shareholders_meeting":
        plan["stockholder_approval_date"] = r["resolved_on"].isoformat()
    else:
        plan["board_approval_date"] = r["resolved_on"].isoformat()
    if t:
        plan["stock_class_ids"] = [class_id(t.get("share_class") or "common")]
    values: dict[str, Any] = {
        "issuance": r["issuance"], "body": r["body"], "resolved_on": r["resolved_on"].isoformat(),
        "title": r["title"], "max_rights": r.get("max_rights"),
        "resolution": _meta(iss.resolution),
    }
    if t:
        values["terms"] = {**{k: _iso(v) for k, v in t.items() if k != "issuance" and v is not None},
                           **_meta(iss.terms)}
        if t.get("vesting") is not None:
            values["terms"]["vesting"] = _vesting_json(t["vesting"])
    if iss.expiry:
        values["expiry"] = _meta(iss.expiry, expired_on=iss.expiry.fields["expired_on"].isoformat())
    if r.get("_vesting_events"):
        values["vesting_events"] = r["_vesting_events"]
    plan["comments"] = [note(values)]
    return plan


def _stakeholder(holder: str, latest: dict[str, Any], departure: Fact | None) -> dict[str, Any]:
    values: dict[str, Any] = {"holder": holder}
    rel = relationship(latest["group"])
    if rel == "OTHER":
        values["group"] = latest["group"]
    if departure is not None:
        values["departure"] = _meta(departure, departed_on=departure.fields["departed_on"].isoformat())
    out = {
        "object_type": "STAKEHOLDER", "id": f"holder:{holder}", "name": {"legal_name": latest["name"]},
        "stakeholder_type": "INDIVIDUAL", "issuer_assigned_id": holder, "current_relationship": rel,
        "comments": [note(values)],
    }
    if departure is not None:
        out["comments"].insert(0, f"left office on {departure.fields['departed_on'].isoformat()}")
    return out
