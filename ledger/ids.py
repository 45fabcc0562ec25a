"""Deterministic aggregate ids: the same issuance or holder id always names the same stream."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

_NAMESPACE = UUID("6f1d7a52-3c57-4b43-9d0e-5b7f6c3a9e21")


def issuer_id() -> UUID:
    """One store holds the ledger of one issuer: a single, well-known stream."""
    return uuid5(_NAMESPACE, "issuer")


@lru_cache(maxsize=65536)
def issuance_id(issuance: str) -> UUID:
    return uuid5(_NAMESPACE, "issuance:" + issuance)


@lru_cache(maxsize=1 << 20)
def holder_id(holder: str) -> UUID:
    return uuid5(_NAMESPACE, "holder:" + holder)
