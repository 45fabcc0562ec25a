"""Holders' personal details: sealed with a key per holder, so that erasure is deleting a key.

An address is encrypted (AES-256-GCM) with its holder's own random key before any event is
made: the chained event keeps only the nonce and the ciphertext, the key lives in
``ledger_holder_keys``, outside the chain. Erasing the holder's details deletes that row in
the same transaction as the chained ``DetailsErased`` event: the ciphertext stays in the
history (the chain, ``audit verify`` and every figure are untouched) but nobody can read it
any more. Keys are random, never derived from the ledger key: a derived key could be derived
again after its row is gone.

The associated data binds a ciphertext to its holder and effective date, so a sealed address
copied onto another event does not open. The content digest of a details command (stored in
``ledger_commands`` and chained in its event) covers the address only through an HMAC keyed
with the holder's key: a plain hash of the command would let whoever guesses an address
confirm it long after erasure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

# The longest address kept, in UTF-8 bytes (over 300 Japanese characters): a register line, not
# a document. The domain checks it on the ciphertext, so the audit replay checks it too.
MAX_ADDRESS_BYTES = 1024
NONCE_BYTES = 12
TAG_BYTES = 16  # AES-GCM appends a 16-byte tag: ciphertext = plaintext + 16 bytes


@dataclass(frozen=True)
class SealedAddress:
    """An address as the events keep it: nonce and ciphertext, base64 text."""

    nonce: str
    ciphertext: str

    @property
    def plaintext_bytes(self) -> int:
        """How long the sealed address is, in UTF-8 bytes (read from the ciphertext's length)."""
        return len(_unb64(self.ciphertext)) - TAG_BYTES


def new_key() -> bytes:
    """A fresh random 256-bit key for one holder."""
    return os.urandom(32)


def key_text(key: bytes) -> str:
    """A key as the key table stores it."""
    return base64.b64encode(key).decode("ascii")


def key_bytes(text: str) -> bytes:
    return base64.b64decode(text)


def _aad(holder: str, effective_on: date) -> bytes:
    return f"equity-ledger address\x1f{holder}\x1f{effective_on.isoformat()}".encode("utf-8")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def seal(key: bytes, holder: str, effective_on: date, address: str) -> SealedAddress:
    """Encrypt `address` for `holder` from `effective_on` with the holder's key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(key).encrypt(nonce, address.encode("utf-8"), _aad(holder, effective_on))
    return SealedAddress(base64.b64encode(nonce).decode("ascii"), base64.b64encode(ct).decode("ascii"))


def unseal(key: bytes, holder: str, effective_on: date, sealed: SealedAddress) -> str | None:
    """The address, or None when it does not open with this key for this holder and date."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plain = AESGCM(key).decrypt(_unb64(sealed.nonce), _unb64(sealed.ciphertext), _aad(holder, effective_on))
    except (InvalidTag, ValueError):
        return None
    return plain.decode("utf-8")


def keyed_digest(raw: dict[str, Any], key: bytes) -> str:
    """The content digest of a details command: the command's JSON object with its address
    replaced by an HMAC under the holder's key (same content, same digest, while the key
    exists; no way to test a guessed address once it is deleted)."""
    obj = dict(raw)
    mac = hmac.new(key, str(obj.get("address", "")).encode("utf-8"), hashlib.sha256).hexdigest()
    obj["address"] = "hmac-sha256:" + mac
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class HolderKeys:
    """The holders' keys a unit of work sees: read through from the store, with the keys
    made and erased by the commands not yet committed. `load(holder)` reads one stored key
    (text) or None; None for a unit of work without a store (the audit replay, which never
    needs a key: it re-applies addresses already sealed)."""

    def __init__(self, load: Callable[[str], str | None] | None = None) -> None:
        self._load = load
        self._known: dict[str, bytes | None] = {}
        self.made: dict[str, bytes] = {}  # holder -> key to insert with the batch

    def get(self, holder: str) -> bytes | None:
        if holder not in self._known:
            text = self._load(holder) if self._load is not None else None
            self._known[holder] = key_bytes(text) if text else None
        return self._known[holder]

    def get_or_make(self, holder: str) -> bytes:
        key = self.get(holder)
        if key is None:
            key = self.made[holder] = new_key()
            self._known[holder] = key
        return key

    def erase(self, holder: str) -> None:
        self._known[holder] = None
        self.made.pop(holder, None)

    def take(self, details: set[str], erasures: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """(key rows to insert, holders whose key row to delete) for a batch whose events record
        details of `details` and erase those of `erasures`: keys made for commands that were
        then refused are dropped, never stored."""
        inserts = [(h, key_text(k)) for h, k in sorted(self.made.items()) if h in details and h not in erasures]
        deletes = sorted(erasures)
        for h in set(self.made) - details:
            self._known.pop(h, None)
        self.made.clear()
        return inserts, deletes

    def forget(self) -> None:
        self._known.clear()
        self.made.clear()
