"""A holder: a person who holds rights, possibly in several issuances, and may leave office."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Iterable
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from . import ids
from .errors import AddressTooLong, AlreadyDeparted, AlreadyErased, DetailsErased
from .personal import MAX_ADDRESS_BYTES, SealedAddress

if TYPE_CHECKING:
    from .issuance import Issuance


class Holder(Aggregate):
    """Known from the first allotment; records the issuances held in, the departure and the
    holder's personal details (sealed: see :mod:`.personal`)."""

    # Set by an erasure; a class default, so that holders stored before it existed read False.
    erased = False

    @staticmethod
    def create_id(holder: str, **_: object) -> UUID:
        return ids.holder_id(holder)

    @event("Registered")
    def __init__(
        self,
        holder: str,
        name: str,
        issuance: str,
        joined_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        self.holder = holder
        self.name = name
        self.issuances: list[str] = [issuance]
        self.departed_on: date | None = None

    def join(
        self, issuance: str, joined_on: date, command_id: str, actor: str, reason: str,
        command_digest: str = "",
    ) -> None:
        """Note that the holder now has rights in `issuance` (once per issuance)."""
        if issuance not in self.issuances:
            self._joined(
                holder=self.holder,
                issuance=issuance,
                joined_on=joined_on,
                command_id=command_id,
                actor=actor,
                reason=reason,
                command_digest=command_digest,
            )

    @event("JoinedIssuance")
    def _joined(
        self,
        holder: str,
        issuance: str,
        joined_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        self.issuances.append(issuance)

    def check_not_departed(self) -> None:
        if self.departed_on is not None:
            raise AlreadyDeparted(
                f"holder {self.holder} already left office on {self.departed_on.isoformat()}"
            )

    def depart(
        self,
        departed_on: date,
        issuances: Iterable[Issuance],
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        """Record that the holder left office: once, and consistent with what is recorded."""
        self.check_not_departed()
        for issuance in issuances:
            issuance.check_departure(self.holder, departed_on)
        self._departed(
            holder=self.holder, departed_on=departed_on, command_id=command_id, actor=actor,
            reason=reason, command_digest=command_digest,
        )

    @event("Departed")
    def _departed(
        self, holder: str, departed_on: date, command_id: str, actor: str, reason: str,
        command_digest: str = "",
    ) -> None:
        self.departed_on = departed_on

    # ------------------------------------------------------------------ personal details
    def check_not_erased(self) -> None:
        if self.erased:
            raise DetailsErased(f"holder {self.holder}'s personal details were erased; nothing more "
                                "is recorded for them")

    def check_address_size(self, sealed: SealedAddress) -> None:
        try:
            size = sealed.plaintext_bytes
        except (ValueError, TypeError, AttributeError):  # not base64 text: no sealed address
            size = -1
        if not 0 < size <= MAX_ADDRESS_BYTES:
            raise AddressTooLong(f"an address must be 1 to {MAX_ADDRESS_BYTES} bytes of UTF-8")

    def record_details(
        self, effective_on: date, sealed: SealedAddress, command_id: str, actor: str, reason: str,
        command_digest: str = "",
    ) -> None:
        """Record the holder's address (already sealed with the holder's key) from a date; a
        later record replaces it from its own date."""
        self.check_not_erased()
        self.check_address_size(sealed)
        self._details_recorded(
            holder=self.holder, effective_on=effective_on, address_nonce=sealed.nonce,
            address_ciphertext=sealed.ciphertext, command_id=command_id, actor=actor,
            reason=reason, command_digest=command_digest,
        )

    @event("DetailsRecorded")
    def _details_recorded(
        self, holder: str, effective_on: date, address_nonce: str, address_ciphertext: str,
        command_id: str, actor: str, reason: str, command_digest: str = "",
    ) -> None:
        pass  # the address is sealed: the aggregate keeps nothing of it

    def erase_details(self, command_id: str, actor: str, reason: str, command_digest: str = "") -> None:
        """Make the holder's personal details unreadable for good (once): the unit of work
        deletes the holder's key with this event."""
        if self.erased:
            raise AlreadyErased(f"holder {self.holder}'s personal details were already erased")
        self._details_erased(
            holder=self.holder, command_id=command_id, actor=actor, reason=reason,
            command_digest=command_digest,
        )

    @event("DetailsErased")
    def _details_erased(self, holder: str, command_id: str, actor: str, reason: str,
                        command_digest: str = "") -> None:
        self.erased = True
