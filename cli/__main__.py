"""`python -m equity_ledger.cli`: the same as the `equity-ledger` console script."""

from .main import run

run()
