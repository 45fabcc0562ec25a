"""What a late entry costs, against the common case (dated after everything recorded).

    python -m bench.late_entries [HOLDERS] [EVENTS_PER_HOLDER]

Builds one issuance with HOLDERS holders, each with EVENTS_PER_HOLDER allotments spread over
the years, then applies one exercise per holder twice over: dated after everything (the common
case) and dated in the middle of each holder's history (a late entry: the domain re-walks the
holder's timeline, the projection rewrites the holder's later rows). Prints commands/s for the
domain (apply) and for the projection catch-up, median of 3.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from equity_ledger.bootstrap import Books
from equity_ledger.ledger.commands import parse_command


def base(holders: int, per_holder: int) -> list[dict]:
    cmds = [
        {"id": "r", "type": "pass_resolution", "issuance": "s", "issuer": "Bench K.K.",
         "body": "board_of_directors", "resolved_on": "2000-01-01", "title": "bench"},
        {"id": "t", "type": "set_terms", "issuance": "s", "decided_on": "2000-01-02",
         "rights": holders * per_holder * 10, "shares_per_right": 100, "price_per_right": "1000",
         "currency": "JPY", "exercise_price_per_share": "1", "allotment_date": "2000-01-03",
         "exercise_from": "2000-01-03", "exercise_to": "2099-01-01"},
    ]
    for k in range(per_holder):
        day = (date(2000, 1, 3) + timedelta(days=30 * k)).isoformat()
        for h in range(holders):
            cmds.append({"id": f"a{k}-{h}", "type": "allot_rights", "issuance": "s", "holder": f"h{h}",
                         "name": f"Holder {h}", "group": "employee", "rights": 5, "allotted_on": day,
                         "payment": "offset"})
    return cmds


def exercises(holders: int, day: str, tag: str) -> list[dict]:
    return [{"id": f"x{tag}-{h}", "type": "exercise_rights", "issuance": "s", "holder": f"h{h}", "rights": 1,
             "exercised_on": day} for h in range(holders)]


def measure(holders: int, per_holder: int, late: bool, folder: Path) -> tuple[float, float]:
    books = Books(f"sqlite:///{folder}/late-{late}-{time.monotonic_ns()}.sqlite")
    ledger, projector = books.service, books.projector
    ledger.apply(parse_command(c) for c in base(holders, per_holder))
    projector.catch_up()
    middle = (date(2000, 1, 3) + timedelta(days=30 * (per_holder // 2))).isoformat()
    day = middle if late else "2098-01-01"
    cmds = [parse_command(c) for c in exercises(holders, day, "late" if late else "now")]
    t0 = time.perf_counter()
    ledger.apply(cmds)
    t1 = time.perf_counter()
    projector.catch_up()
    t2 = time.perf_counter()
    books.close()
    return holders / (t1 - t0), holders / (t2 - t1)


def main() -> None:
    holders = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    per_holder = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{holders:,} holders x {per_holder} allotments each; one exercise per holder; median of 3")
        print(f"{'case':<34} {'apply cmds/s':>14} {'catch-up cmds/s':>16}")
        for late in (False, True):
            runs = [measure(holders, per_holder, late, Path(tmp)) for _ in range(3)]
            label = "late (middle of each history)" if late else "common (after everything)"
            print(f"{label:<34} {statistics.median(r[0] for r in runs):>14,.0f} "
                  f"{statistics.median(r[1] for r in runs):>16,.0f}")


if __name__ == "__main__":
    main()
