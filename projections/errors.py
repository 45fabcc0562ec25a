"""The projections' errors: each one line for the user, exit 1 (all are LedgerErrors)."""

from __future__ import annotations

from ..ledger.errors import LedgerError

REBUILD = "`equity-ledger projections rebuild`"


class ProjectionError(LedgerError):
    rule = "projections"


class ProjectionFailed(ProjectionError):
    """Folding one stored event failed: names its log position and type. Nothing of the
    failed page is kept; the tracking position stays before it, so a later catch-up (after the
    cause is fixed) resumes there."""

    def __init__(self, position: int, kind: str, cause: BaseException) -> None:
        self.position, self.kind = position, kind
        super().__init__(
            f"cannot project the event at position {position} ({kind}): {one_line(cause)}; "
            "the projections stay before it"
        )


class ProjectionsOutdated(ProjectionError):
    """The read models were made by an older layout (or never made): a reader cannot use them."""


class ProjectionsAhead(ProjectionError):
    """The tracking position claims events past the head of the log (edited by hand)."""

    def __init__(self, position: int, head: int) -> None:
        self.position, self.head = position, head
        super().__init__(
            f"the projections claim position {position}, past the head of the log ({head}): "
            f"they cannot be trusted; run {REBUILD}"
        )


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
