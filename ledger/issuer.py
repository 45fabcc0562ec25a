"""The issuer: the one company whose rights this store records."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from . import ids
from .errors import OtherIssuer


class Issuer(Aggregate):
    """Created by the first resolution; every later resolution must name the same company."""

    @staticmethod
    def create_id(**_: object) -> UUID:
        return ids.issuer_id()

    @event("Registered")
    def __init__(
        self, issuer: str, registered_on: date, command_id: str, actor: str, reason: str,
        command_digest: str = "",
    ) -> None:
        self.name = issuer

    def check_same_issuer(self, issuer: str) -> None:
        if issuer.strip() != self.name.strip():
            raise OtherIssuer(
                f"this store holds the ledger of {self.name!r}; a resolution of {issuer!r} "
                "belongs in another store"
            )
