"""equity-ledger: an event-sourced ledger of equity awards.

The code lives in three top-level folders of the repository, installed under this namespace:
``ledger/`` (domain and application service), ``projections/`` (read models and queries) and
``cli/`` (the typer app).
"""

__version__ = "0.1.0"
