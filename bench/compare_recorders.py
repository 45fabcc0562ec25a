"""Which eventsourcing recorder on the apply path? Same commands, same service, three recorders.

    python -m bench.compare_recorders [N]

Applies N allotment commands (default 100,000; 1 issuance, 1,000 holders) through the real
application service (`LedgerService`) (parsing, domain checks, batches of 2,000 commands per transaction) into a
fresh SQLite file with:

* eventsourcing's own `sqlite` recorder with our chain and command tables (what ships);
* eventsourcing's own `sqlite` recorder, plain (the chain's cost);
* `eventsourcing-sqlalchemy`, plain (needs `pip install -e .[bench]`).

The plain variants skip the command-id lookup (they have no command table), so they are upper
bounds for their recorder. Prints commands/s and events/s per variant, median of 3.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from equity_ledger.ledger.service import LedgerService
from equity_ledger.ledger.unit_of_work import StoredUnitOfWork
from equity_ledger.ledger.commands import parse_line
from equity_ledger.ledger.store import StoreConfig, store_config


def commands(n: int) -> list[bytes]:
    lines = [
        {"id": "r", "type": "pass_resolution", "issuance": "s1", "issuer": "Bench K.K.",
         "body": "board_of_directors", "resolved_on": "2020-01-01", "title": "bench"},
        {"id": "t", "type": "set_terms", "issuance": "s1", "decided_on": "2020-01-02", "rights": 10 * n,
         "shares_per_right": 100, "price_per_right": "1000", "currency": "JPY",
         "exercise_price_per_share": "1", "allotment_date": "2020-01-03", "exercise_from": "2020-01-04",
         "exercise_to": "2040-01-01"},
    ]
    for i in range(n - 2):
        lines.append({"id": f"a{i}", "type": "allot_rights", "issuance": "s1", "holder": f"h{i % 1000}",
                      "name": f"Holder {i % 1000}", "group": "employee", "rights": 1 + i % 5,
                      "allotted_on": "2020-01-03", "payment": "offset"})
    return [json.dumps(c).encode() for c in lines]


def run(variant: str, lines: list[bytes], folder: Path) -> tuple[float, int]:
    path = folder / f"{variant}-{time.monotonic_ns()}.sqlite"
    cfg = store_config(f"sqlite:///{path}")
    env = dict(cfg.env)
    if variant == "sqlite-plain":
        env.pop("APPLICATION_RECORDER_TOPIC")
    elif variant == "sqlalchemy-plain":
        env = {"PERSISTENCE_MODULE": "eventsourcing_sqlalchemy", "SQLALCHEMY_URL": f"sqlite:///{path}"}
    ledger = LedgerService(StoredUnitOfWork(StoreConfig(cfg.url, cfg.kind, cfg.display, env)))
    if variant != "sqlite-chained":
        ledger.uow.known_digests = lambda ids: {}
    start = time.perf_counter()
    report = ledger.apply(parse_line(raw, i + 1) for i, raw in enumerate(lines))
    took = time.perf_counter() - start
    ledger.close()
    return took, report.events


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    lines = commands(n)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{n:,} commands through LedgerService.apply, median of 3 runs")
        print(f"{'recorder':<18} {'commands/s':>12} {'events/s':>12}")
        for variant in ("sqlite-chained", "sqlite-plain", "sqlalchemy-plain"):
            try:
                runs = [run(variant, lines, Path(tmp)) for _ in range(3)]
            except Exception as e:  # eventsourcing-sqlalchemy not installed
                print(f"{variant:<18} skipped: {type(e).__name__}: {e}")
                continue
            took = statistics.median(r[0] for r in runs)
            events = runs[0][1]
            print(f"{variant:<18} {n / took:>12,.0f} {events / took:>12,.0f}")


if __name__ == "__main__":
    main()
