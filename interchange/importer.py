"""Import: an OCF bundle as the command file's objects (pure: bundle in, commands out).

Option grants and what happened to them become commands with ids derived from the OCF ids
(``ocf:<object id>``), so a second import skips them. A bundle written by this tool
(its stock plans carry an ``issuance`` note) maps back to the commands that made it, in their
record order; any other bundle is mapped from OCF's own objects, each grant its own issuance,
in date order. Transactions the ledger cannot hold are counted by type in ``skipped``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from .bundle import ReadBundle
from .notes import read_note
from .vesting import VestingMappingError, ledger_vesting

GRANT = ("TX_EQUITY_COMPENSATION_ISSUANCE", "TX_PLAN_SECURITY_ISSUANCE")
EXERCISE = ("TX_EQUITY_COMPENSATION_EXERCISE", "TX_PLAN_SECURITY_EXERCISE")
CANCELLATION = ("TX_EQUITY_COMPENSATION_CANCELLATION", "TX_PLAN_SECURITY_CANCELLATION")
OPTIONS = ("OPTION", "OPTION_ISO", "OPTION_NSO")
GROUP = {"BOARD_MEMBER": "director", "OFFICER": "executive_officer", "EMPLOYEE": "employee"}
FAR_FUTURE = "9999-12-31"


class ImportRefused(ValueError):
    """The bundle says something the ledger's commands cannot (the message names the object)."""


@dataclass
class Imported:
    """The commands a bundle maps to, what was skipped, and notes for the user."""

    commands: list[dict[str, Any]]
    # command id -> the OCF object it comes from ("TX_... <id>"), for refusals
    sources: dict[str, str]
    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def group_of(stakeholder: dict[str, Any]) -> str:
    """The ledger group of a stakeholder: its note's group, else from its relationship."""
    own = read_note(stakeholder.get("comments")).get("group")
    if own:
        return own
    rel = stakeholder.get("current_relationship")
    return GROUP.get(rel, (rel or "other").lower())


def _int(text: Any, what: str) -> int:
    try:
        value = Fraction(Decimal(str(text)))
    except (InvalidOperation, ValueError):
        raise ImportRefused(f"{what}: {text!r} is not a number") from None
    if value.denominator != 1:
        raise ImportRefused(f"{what}: {text} is not a whole number of rights")
    return int(value)


def _money(amount: Any) -> str:
    """An OCF Numeric amount as the command file's money: kept as written ("0.10")."""
    text = str(amount).lstrip("+")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        raise ImportRefused(f"{amount!r} is not a non-negative amount")
    return text


def map_bundle(bundle: ReadBundle) -> Imported:
    """The commands of a bundle (see the module docstring)."""
    p = bundle.parts
    issuer = (bundle.manifest.get("issuer") or {}).get("legal_name") or "unknown issuer"
    stakeholders = {s["id"]: s for s in p.get("stakeholders", [])}
    classes = {c["id"]: c for c in p.get("stock_classes", [])}
    plans = {pl["id"]: pl for pl in p.get("stock_plans", [])}
    vterms = {v["id"]: v for v in p.get("vesting_terms", [])}
    txs = p.get("transactions", [])
    out = Imported([], {})
    keyed: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # (sort key, command)
    order = 0

    def add(key: tuple[Any, ...], source: str, cmd: dict[str, Any]) -> None:
        nonlocal order
        order += 1
        out.sources[cmd["id"]] = source
        keyed.append(((*key, order), {k: v for k, v in cmd.items() if v is not None}))

    def holder_of(stakeholder_id: str, what: str) -> tuple[str, str, str]:
        s = stakeholders.get(stakeholder_id)
        if s is None:
            raise ImportRefused(f"{what}: stakeholder {stakeholder_id} is not in the bundle")
        n = read_note(s.get("comments"))
        holder = n.get("holder") or s.get("issuer_assigned_id") or s["id"]
        return holder, (s.get("name") or {}).get("legal_name") or holder, group_of(s)

    own_plans = {pid: read_note(pl.get("comments")) for pid, pl in plans.items()}
    own_plans = {pid: n for pid, n in own_plans.items() if n.get("issuance")}

    # ------------------------------------------------------------------ this tool's bundles
    for pid, n in own_plans.items():
        iss = n["issuance"]
        r = n.get("resolution", {})
        add((r.get("seq", 0),), f"STOCK_PLAN {pid}", {
            "id": f"ocf:{pid}:resolution", "type": "pass_resolution", "issuance": iss, "issuer": issuer,
            "body": n["body"], "resolved_on": n["resolved_on"], "title": n["title"],
            "max_rights": n.get("max_rights"), "actor": r.get("actor"), "reason": r.get("reason"),
        })
        t = n.get("terms")
        if t:
            fields = {k: v for k, v in t.items() if k not in ("cmd", "seq", "actor", "reason")}
            add((t.get("seq", 0),), f"STOCK_PLAN {pid}", {
                "id": f"ocf:{pid}:terms", "type": "set_terms", "issuance": iss, **fields,
                "actor": t.get("actor"), "reason": t.get("reason"),
            })
        e = n.get("expiry")
        if e:
            add((e.get("seq", 0),), f"STOCK_PLAN {pid}", {
                "id": f"ocf:{pid}:expiry", "type": "expire_rights", "issuance": iss,
                "expired_on": e["expired_on"], "actor": e.get("actor"), "reason": e.get("reason"),
            })
        for k, v in enumerate(n.get("vesting_events", []), start=1):
            add((v.get("seq", 0),), f"STOCK_PLAN {pid}", _vesting_event_cmd(f"ocf:{pid}:vesting-event:{k}", iss, v, v["occurred_on"]))
    for sid, s in stakeholders.items():
        d = read_note(s.get("comments")).get("departure")
        if d:
            holder, _name, _group = holder_of(sid, f"STAKEHOLDER {sid}")
            add((d.get("seq", 0),), f"STAKEHOLDER {sid}", {
                "id": f"ocf:{sid}:departure", "type": "record_departure", "holder": holder,
                "departed_on": d["departed_on"], "actor": d.get("actor"), "reason": d.get("reason"),
            })

    # ------------------------------------------------------------------ grants
    grants: dict[str, dict[str, Any]] = {}  # security id -> {issuance, holder, own, spr steps...}
    starts = {t["security_id"]: t for t in txs if t.get("object_type") == "TX_VESTING_START"}
    for tx in txs:
        if tx.get("object_type") not in GRANT:
            continue
        what = f"{tx['object_type']} {tx['id']}"
        if tx.get("compensation_type") not in OPTIONS:
            out.skipped[f"{tx['object_type']} ({tx.get('compensation_type')})"] += 1
            continue
        n = read_note(tx.get("comments"))
        plan_note = own_plans.get(tx.get("stock_plan_id", ""))
        holder, name, group = holder_of(tx["stakeholder_id"], what)
        start = starts.get(tx["security_id"])
        if plan_note is not None:
            iss = plan_note["issuance"]
            grants[tx["security_id"]] = {"issuance": iss, "holder": n.get("holder", holder), "own": True}
            add((n.get("seq", 0),), what, {
                "id": f"ocf:{tx['id']}", "type": "allot_rights", "issuance": iss,
                "holder": n.get("holder", holder), "name": n.get("name", name), "group": n.get("group", group),
                "rights": n["rights"], "allotted_on": tx["date"], "payment": n.get("payment", "gratis"),
                "vesting_start": n.get("vesting_start"), "actor": n.get("actor"), "reason": n.get("reason"),
            })
            continue
        iss = f"ocf-{tx['security_id']}"
        quantity = _int(tx["quantity"], what)
        resolved_on = tx.get("board_approval_date") or tx.get("stockholder_approval_date") or tx["date"]
        body = ("shareholders_meeting" if not tx.get("board_approval_date") and tx.get("stockholder_approval_date")
                else "board_of_directors")
        plan = plans.get(tx.get("stock_plan_id", "")) or {}
        cls_id = tx.get("stock_class_id") or plan.get("stock_class_id") or (plan.get("stock_class_ids") or [None])[0]
        share_class = (classes.get(cls_id) or {}).get("name") or "common"
        price = tx.get("exercise_price") or tx.get("base_price")
        if not price:
            raise ImportRefused(f"{what}: an option grant without an exercise price")
        try:
            exercise_price = _money(price["amount"])
        except (InvalidOperation, ImportRefused) as e:
            raise ImportRefused(f"{what}: exercise price: {e}") from None
        terms: dict[str, Any] = {
            "id": f"ocf:{tx['id']}:terms", "type": "set_terms", "issuance": iss, "decided_on": tx["date"],
            "rights": quantity, "shares_per_right": 1, "share_class": share_class, "price_per_right": "0",
            "currency": price["currency"], "exercise_price_per_share": exercise_price,
            "allotment_date": tx["date"], "exercise_from": tx["date"],
            "exercise_to": tx.get("expiration_date") or FAR_FUTURE,
            "exercise_window_days_after_departure": _window(tx.get("termination_exercise_windows") or []),
        }
        dated: list[tuple[str, date]] = []
        vt = vterms.get(tx.get("vesting_terms_id", "")) if not tx.get("vestings") else None
        try:
            if vt is not None:
                got = ledger_vesting(vt, Fraction(quantity))
                terms["vesting"] = got.vesting
                dated = got.dated_events
                out.notes.extend(got.warnings)
            elif tx.get("vestings"):
                terms["vesting"], dated = _explicit_vestings(tx["vestings"], quantity, what)
        except VestingMappingError as e:
            raise ImportRefused(f"{what}: {e}") from None
        title = f"{plan.get('plan_name') or 'Option grant'} {tx.get('custom_id') or tx['security_id']}".strip()
        grants[tx["security_id"]] = {"issuance": iss, "holder": holder, "own": False, "date": tx["date"],
                                     "class": cls_id, "ratios": []}
        day = tx["date"]
        add((resolved_on, 0), what, {"id": f"ocf:{tx['id']}:resolution", "type": "pass_resolution",
                                     "issuance": iss, "issuer": issuer, "body": body,
                                     "resolved_on": resolved_on, "title": title})
        add((day, 1), what, terms)
        add((day, 3), what, {
            "id": f"ocf:{tx['id']}", "type": "allot_rights", "issuance": iss, "holder": holder, "name": name,
            "group": group, "rights": quantity, "allotted_on": day, "payment": "gratis",
            "vesting_start": start["date"] if start and start["date"] != day and "vesting" in terms else None,
        })
        for k, (event, when) in enumerate(dated, start=1):
            add((when.isoformat(), 4), what, {"id": f"ocf:{tx['id']}:vests:{k}", "type": "record_vesting_event",
                                              "issuance": iss, "event": event, "occurred_on": when.isoformat()})
        if (tx.get("expiration_date") or FAR_FUTURE) < date.today().isoformat():
            out.notes.append(f"{what}: expired on {tx['expiration_date']} per OCF; not recorded as an "
                             "expiry (record it with expire_rights)")

    # ------------------------------------------------------------------ what happened to them
    belongs = {sid for tx in txs if tx.get("object_type") in EXERCISE for sid in tx.get("resulting_security_ids") or []}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    splits = sorted((tx for tx in txs if tx.get("object_type") == "TX_STOCK_CLASS_SPLIT"), key=lambda t: t["date"])
    for tx in splits:  # foreign grants: the ratios in force, for shares -> rights
        ratio = Fraction(Decimal(str(tx["split_ratio"]["numerator"]))) / Fraction(Decimal(str(tx["split_ratio"]["denominator"])))
        if read_note(tx.get("comments")).get("issuance"):
            continue
        for g in grants.values():
            if not g["own"] and g["class"] == tx.get("stock_class_id") and g["date"] < tx["date"]:
                g["ratios"].append((tx["date"], ratio))

    def spr(g: dict[str, Any], day: str) -> Fraction:
        out_ = Fraction(1)
        for when, ratio in g["ratios"]:
            if when <= day:
                out_ *= ratio
        return out_

    for tx in txs:
        kind = tx.get("object_type")
        what = f"{kind} {tx.get('id')}"
        n = read_note(tx.get("comments"))
        if kind in GRANT or kind == "TX_VESTING_START" and tx.get("security_id") in grants:
            continue
        if kind == "TX_STOCK_ISSUANCE" and tx.get("security_id") in belongs:
            continue
        if kind == "TX_STOCK_CLASS_SPLIT":
            ratio = Fraction(Decimal(str(tx["split_ratio"]["numerator"]))) / Fraction(Decimal(str(tx["split_ratio"]["denominator"])))
            if n.get("issuance"):
                add((n.get("seq", 0),), what, {"id": f"ocf:{tx['id']}", "type": "adjust_shares",
                                               "issuance": n["issuance"], "ratio": str(ratio),
                                               "effective_on": tx["date"], "actor": n.get("actor"),
                                               "reason": n.get("reason")})
                continue
            hit = [g for g in grants.values() if not g["own"] and g["class"] == tx.get("stock_class_id")
                   and g["date"] < tx["date"]]
            for g in hit:
                add((tx["date"], 2), what, {"id": f"ocf:{tx['id']}:{g['issuance']}", "type": "adjust_shares",
                                            "issuance": g["issuance"], "ratio": str(ratio), "effective_on": tx["date"]})
            if not hit:
                out.skipped[f"{kind} (no option grant of its class before it)"] += 1
            continue
        g = grants.get(tx.get("security_id", ""))
        if kind in EXERCISE + CANCELLATION + ("TX_VESTING_EVENT",) and g is None:
            out.skipped[kind] += 1
            continue
        if kind in EXERCISE + CANCELLATION + ("TX_VESTING_EVENT",) and g["own"]:
            if n.get("lapse") or n.get("part_of") in ("expiry",):
                continue  # the departure's lapse, the plan's expiry: recorded once, by them
            grouped[n.get("cmd") or tx["id"]].append(tx)
            continue
        if kind in EXERCISE:
            rights = _rights(tx["quantity"], spr(g, tx["date"]), what)
            add((tx["date"], 5), what, {"id": f"ocf:{tx['id']}", "type": "exercise_rights",
                                        "issuance": g["issuance"], "holder": g["holder"], "rights": rights,
                                        "exercised_on": tx["date"]})
        elif kind in CANCELLATION:
            rights = _rights(tx["quantity"], spr(g, tx["date"]), what)
            add((tx["date"], 5), what, {"id": f"ocf:{tx['id']}", "type": "forfeit_rights",
                                        "issuance": g["issuance"], "holder": g["holder"], "rights": rights,
                                        "forfeited_on": tx["date"],
                                        "reason": tx.get("reason_text") or "cancelled (OCF)"})
        elif kind == "TX_VESTING_EVENT":
            add((tx["date"], 4), what, {"id": f"ocf:{tx['id']}", "type": "record_vesting_event",
                                        "issuance": g["issuance"], "holder": g["holder"],
                                        "event": tx["vesting_condition_id"], "occurred_on": tx["date"]})
        else:
            out.skipped[kind] += 1
    for cmd_id, parts in grouped.items():
        first = parts[0]
        kind = first["object_type"]
        n = read_note(first.get("comments"))
        what = f"{kind} {first['id']}"
        rights = sum(int(read_note(t.get("comments"))["rights"]) for t in parts) if kind != "TX_VESTING_EVENT" else 0
        base = {"id": f"ocf:{first['id']}", "actor": n.get("actor"), "reason": n.get("reason")}
        if kind in EXERCISE:
            add((n.get("seq", 0),), what, {**base, "type": "exercise_rights", "issuance": n["issuance"],
                                           "holder": n["holder"], "rights": rights, "exercised_on": first["date"],
                                           "delivery": n.get("delivery"), "share_price": n.get("share_price")})
        elif kind in CANCELLATION:
            add((n.get("seq", 0),), what, {**base, "type": "forfeit_rights", "issuance": n["issuance"],
                                           "holder": n["holder"], "rights": "all" if n.get("all") else rights,
                                           "forfeited_on": first["date"],
                                           "reason": n.get("reason") or first.get("reason_text")})
        else:
            add((n.get("seq", 0),), what, _vesting_event_cmd(base["id"], n["issuance"], n, first["date"]))
    own = bool(own_plans)
    keyed.sort(key=lambda kc: (0, kc[0][0], kc[0][1:]) if own and isinstance(kc[0][0], int)
               else (1, str(kc[0][0]), kc[0][1:]))
    out.commands = [c for _k, c in keyed]
    return out


def _vesting_event_cmd(cid: str, issuance: str, n: dict[str, Any], occurred_on: str) -> dict[str, Any]:
    return {"id": cid, "type": "record_vesting_event", "issuance": issuance, "event": n["event"],
            "occurred_on": occurred_on, "holder": n.get("holder"), "portion_met": n.get("portion_met"),
            "actor": n.get("actor"), "reason": n.get("reason")}


def _rights(quantity: Any, spr: Fraction, what: str) -> int:
    shares = Fraction(Decimal(str(quantity)))
    rights = shares / spr
    if rights.denominator != 1 or rights < 1:
        raise ImportRefused(f"{what}: {quantity} shares is not a whole number of rights "
                            f"({spr} shares per right at its date)")
    return int(rights)


def _window(windows: list[dict[str, Any]]) -> int | None:
    """The longest termination window, in days (months count 31 days, years 366: never shorter)."""
    per = {"DAYS": 1, "MONTHS": 31, "YEARS": 366}
    days = [int(w["period"]) * per.get(w.get("period_type"), 1) for w in windows]
    return max(days) if days else None


def _explicit_vestings(vestings: list[dict[str, Any]], quantity: int, what: str) -> tuple[dict[str, Any], list[tuple[str, date]]]:
    """OCF's explicit `vestings` (date, amount) as on_event tranches vested on their dates."""
    tranches, dated = [], []
    for k, v in enumerate(vestings, start=1):
        part = Fraction(Decimal(str(v["amount"]))) / quantity
        if part <= 0:
            continue
        event = f"vesting-{k}-{v['date']}"
        tranches.append({"portion": str(part), "on_event": event})
        dated.append((event, date.fromisoformat(v["date"])))
    return {"tranches": tranches}, dated
