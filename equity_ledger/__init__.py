"""equity-ledger: an event-sourced ledger of equity awards.

The code lives in top-level folders of the repository, installed under this namespace:
``ledger/`` (domain and application service), ``projections/`` (read models and queries),
``interchange/`` (the Open Cap Table Format, in and out) and ``cli/`` (the typer app); this
package itself holds ``bootstrap`` (opening a store: the one place that wires them).
"""

__version__ = "0.1.0"
