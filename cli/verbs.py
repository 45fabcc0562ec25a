"""One verb per command type, for people at a terminal.

Each verb builds the same JSON object a command-file line would hold (options named after the
fields) and applies it through the same service as `apply`; only the options given are put in
the object, so its content digest (idempotency) is the same as the equivalent file line.
Without `--id` the id is derived from the command's type and fields (not its actor or reason),
so running the same verb twice records it once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

import typer

from ..ledger.commands import parse_command
from . import render
from .app import app, db_url, handled
from ..bootstrap import open_books

resolution_app = typer.Typer(no_args_is_help=True, help="Resolutions authorising an issuance.")
terms_app = typer.Typer(no_args_is_help=True, help="The terms of an issuance.")
rights_app = typer.Typer(no_args_is_help=True, help="Allot, exercise, forfeit, vest and expire rights.")
holder_app = typer.Typer(no_args_is_help=True, help="Holders: departures from office, personal details.")
shares_app = typer.Typer(no_args_is_help=True, help="Share adjustments: splits and consolidations.")
app.add_typer(resolution_app, name="resolution")
app.add_typer(terms_app, name="terms")
app.add_typer(rights_app, name="rights")
app.add_typer(holder_app, name="holder")
app.add_typer(shares_app, name="shares")

ID = typer.Option(None, "--id", help="Command id (default: derived from the type and fields). "
                                     "Re-running the same id with the same content is a no-op.")
ACTOR = typer.Option(None, "--actor", help="Who asks for it (default: the OS user).")
REASON = typer.Option(None, "--reason", help="Free text kept on the event.")


def submit(ctype: str, fields: dict[str, Any], cid: Optional[str], actor: Optional[str], reason: Optional[str]) -> None:
    """Apply one command built from options, exactly as a line of a command file."""
    _require_utf8(dict(fields, id=cid, actor=actor, reason=reason))
    given = {k: v for k, v in fields.items() if v is not None}
    obj: dict[str, Any] = {"id": cid or content_id(ctype, given), "type": ctype}
    obj.update(given)
    if actor is not None:
        obj["actor"] = actor
    if reason is not None:
        obj["reason"] = reason
    # Through JSON and back: the verb's command is exactly what the same line of a file would be.
    cmd = parse_command(json.loads(json.dumps(obj)))
    with open_books(db_url()) as books:
        report = books.apply([cmd])
    if report.skipped:
        render.out(f"already applied: {ctype} (id {obj['id']}); nothing changed")
    else:
        render.out(f"applied {ctype} (id {obj['id']}), {report.events} events")


def _require_utf8(options: dict[str, Any]) -> None:
    # Bytes that are not UTF-8 reach Python as lone surrogates: no store can keep them.
    for name, value in options.items():
        if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            raise typer.BadParameter("not valid UTF-8", param_hint="--" + name.replace("_", "-"))


def content_id(ctype: str, fields: dict[str, Any]) -> str:
    """The id of a verb's command given without `--id`: its type and a digest of its fields."""
    canonical = json.dumps({"type": ctype, **fields}, sort_keys=True, separators=(",", ":"))
    return f"{ctype}-{hashlib.sha256(canonical.encode('ascii')).hexdigest()[:20]}"


def _json_option(value: Optional[str], option: str) -> Any:
    """An option holding a JSON value (None stays None); anything else is a usage error."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON ({e.msg})", param_hint=option) from None


def _rights_or_all(value: str) -> Any:
    if value == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an integer or 'all'", param_hint="--rights") from None


@resolution_app.command("pass")
@handled
def resolution_pass(
    issuance: str = typer.Argument(..., help="Issuance id, e.g. iij-2013-sar."),
    issuer: str = typer.Option(..., "--issuer"),
    body: str = typer.Option(..., "--body", help="board_of_directors or shareholders_meeting"),
    resolved_on: str = typer.Option(..., "--resolved-on"),
    title: str = typer.Option(..., "--title"),
    max_rights: Optional[int] = typer.Option(None, "--max-rights"),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """pass_resolution: the decision that authorises an issuance."""
    submit("pass_resolution", dict(issuance=issuance, issuer=issuer, body=body, resolved_on=resolved_on,
                                   title=title, max_rights=max_rights), id, actor, reason)


@terms_app.command("set")
@handled
def terms_set(
    issuance: str = typer.Argument(...),
    decided_on: str = typer.Option(..., "--decided-on"),
    rights: int = typer.Option(..., "--rights"),
    shares_per_right: int = typer.Option(..., "--shares-per-right"),
    share_class: Optional[str] = typer.Option(None, "--share-class"),
    price_per_right: str = typer.Option(..., "--price-per-right"),
    currency: str = typer.Option(..., "--currency"),
    exercise_price_per_share: str = typer.Option(..., "--exercise-price-per-share"),
    allotment_date: str = typer.Option(..., "--allotment-date"),
    exercise_from: str = typer.Option(..., "--exercise-from"),
    exercise_to: str = typer.Option(..., "--exercise-to"),
    exercisable_only_after_departure: Optional[bool] = typer.Option(
        None, "--exercisable-only-after-departure/--exercisable-before-departure"),
    exercise_window_days_after_departure: Optional[int] = typer.Option(None, "--exercise-window-days-after-departure"),
    fair_value_per_right: Optional[str] = typer.Option(None, "--fair-value-per-right",
                                                       help="Fair value of one right at grant (default: the price)."),
    vesting: Optional[str] = typer.Option(None, "--vesting", metavar="JSON",
                                          help='The vesting schedule as JSON, e.g. \'{"tranches": [...]}\'.'),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """set_terms: total rights, shares per right, prices, allotment date, exercise period, vesting."""
    submit("set_terms", dict(
        issuance=issuance, decided_on=decided_on, rights=rights, shares_per_right=shares_per_right,
        share_class=share_class, price_per_right=price_per_right, currency=currency,
        exercise_price_per_share=exercise_price_per_share, allotment_date=allotment_date,
        exercise_from=exercise_from, exercise_to=exercise_to,
        exercisable_only_after_departure=exercisable_only_after_departure,
        exercise_window_days_after_departure=exercise_window_days_after_departure,
        fair_value_per_right=fair_value_per_right, vesting=_json_option(vesting, "--vesting"),
    ), id, actor, reason)


@rights_app.command("allot")
@handled
def rights_allot(
    issuance: str = typer.Argument(...),
    holder: str = typer.Option(..., "--holder"),
    name: str = typer.Option(..., "--name"),
    group: str = typer.Option(..., "--group"),
    rights: int = typer.Option(..., "--rights"),
    allotted_on: str = typer.Option(..., "--allotted-on"),
    payment: str = typer.Option(..., "--payment", help="offset, cash or gratis"),
    vesting_start: Optional[str] = typer.Option(None, "--vesting-start",
                                                help="The date the vesting schedule runs from (default: --allotted-on)."),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """allot_rights: rights to one holder (payment by offset, cash or gratis)."""
    submit("allot_rights", dict(issuance=issuance, holder=holder, name=name, group=group, rights=rights,
                                allotted_on=allotted_on, payment=payment, vesting_start=vesting_start),
           id, actor, reason)


@rights_app.command("exercise")
@handled
def rights_exercise(
    issuance: str = typer.Argument(...),
    holder: str = typer.Option(..., "--holder"),
    rights: int = typer.Option(..., "--rights"),
    exercised_on: str = typer.Option(..., "--exercised-on"),
    delivery: Optional[str] = typer.Option(None, "--delivery", help="new_shares (default) or treasury_shares"),
    share_price: Optional[str] = typer.Option(None, "--share-price",
                                              help="Market price of one share on the exercise date (filings)."),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """exercise_rights: turn rights into shares."""
    submit("exercise_rights", dict(issuance=issuance, holder=holder, rights=rights, exercised_on=exercised_on,
                                   delivery=delivery, share_price=share_price), id, actor, reason)


@rights_app.command("vest")
@handled
def rights_vest(
    issuance: str = typer.Argument(...),
    event: str = typer.Option(..., "--event", help="The name an on_event tranche of the terms uses."),
    occurred_on: str = typer.Option(..., "--occurred-on"),
    holder: Optional[str] = typer.Option(None, "--holder", help="Only this holder (default: every holder)."),
    portion_met: Optional[str] = typer.Option(None, "--portion-met", help='The part met, "1" (default) or e.g. "1/2".'),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """record_vesting_event: a performance condition met, in full or in part."""
    submit("record_vesting_event", dict(issuance=issuance, event=event, occurred_on=occurred_on,
                                        holder=holder, portion_met=portion_met), id, actor, reason)


@rights_app.command("forfeit")
@handled
def rights_forfeit(
    issuance: str = typer.Argument(...),
    holder: str = typer.Option(..., "--holder"),
    rights: str = typer.Option(..., "--rights", help="A number of rights, or 'all' outstanding."),
    forfeited_on: str = typer.Option(..., "--forfeited-on"),
    reason: str = typer.Option(..., "--reason", help="Why the rights lapse."),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR,
) -> None:
    """forfeit_rights: rights lapse unexercised."""
    submit("forfeit_rights", dict(issuance=issuance, holder=holder, rights=_rights_or_all(rights),
                                  forfeited_on=forfeited_on), id, actor, reason)


@rights_app.command("expire")
@handled
def rights_expire(
    issuance: str = typer.Argument(...),
    expired_on: str = typer.Option(..., "--expired-on"),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """expire_rights: every right still outstanding lapses after the exercise period."""
    submit("expire_rights", dict(issuance=issuance, expired_on=expired_on), id, actor, reason)


@holder_app.command("depart")
@handled
def holder_depart(
    holder: str = typer.Argument(...),
    departed_on: str = typer.Option(..., "--departed-on"),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """record_departure: the holder left office (starts any exercise window)."""
    submit("record_departure", dict(holder=holder, departed_on=departed_on), id, actor, reason)


@shares_app.command("adjust")
@handled
def shares_adjust(
    issuance: str = typer.Argument(...),
    ratio: str = typer.Option(..., "--ratio", help='"2" for a 1:2 split, "0.5" or "1/2" for a 2:1 consolidation.'),
    effective_on: str = typer.Option(..., "--effective-on"),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """adjust_shares: a split or consolidation from its effective date."""
    submit("adjust_shares", dict(issuance=issuance, ratio=ratio, effective_on=effective_on), id, actor, reason)


@holder_app.command("details")
@handled
def holder_details(
    holder: str = typer.Argument(...),
    address: str = typer.Option(..., "--address", help="The holder's address for the register."),
    effective_on: str = typer.Option(..., "--effective-on", help="From this date (a later record replaces it)."),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR, reason: Optional[str] = REASON,
) -> None:
    """record_holder_details: the holder's address for the register, from a date."""
    # The derived id leaves the address out: ids are kept in clear for good, also after an
    # erasure, and must not fingerprint it. Another address for the same date needs --id.
    cid = id or content_id("record_holder_details", dict(holder=holder, effective_on=effective_on))
    submit("record_holder_details", dict(holder=holder, address=address, effective_on=effective_on),
           cid, actor, reason)


@holder_app.command("erase")
@handled
def holder_erase(
    holder: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why (kept on the event)."),
    id: Optional[str] = ID, actor: Optional[str] = ACTOR,
) -> None:
    """erase_holder_details: the holder's personal details become unreadable for good."""
    submit("erase_holder_details", dict(holder=holder), id, actor, reason)
