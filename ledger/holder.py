"""A holder: a person who holds rights, possibly in several issuances, and may leave office."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Iterable
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from . import ids
from .errors import AlreadyDeparted

if TYPE_CHECKING:
    from .issuance import Issuance


class Holder(Aggregate):
    """Known from the first allotment; records the issuances held in and the departure."""

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
