"""Read-model tables (SQLAlchemy Core), in the same database as the events.

``proj_holdings`` is the heart: one row per (issuance, holder, effective date) holding the
*cumulative* figures at the end of that date. "As at D" is then the latest row on or before D
per holding: an index seek per holder, never a replay or a sum over the log.

Every count is a 64-bit integer (PostgreSQL's INTEGER is 32-bit) and every amount is exact
decimal text of any length: the read models hold whatever the domain accepts. A store whose
tables were made by an older layout carries an older :data:`SCHEMA_VERSION` in
``proj_tracking``: writers refold it, readers refuse it (see :mod:`.tracking`).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

from .fold import COUNTS, MONEY

# The layout of the proj_* tables. Raise it whenever a table or a column changes, or what
# the fold writes into them: stores projected with an older layout are refolded by writers.
# 1: the layout before this number was kept (32-bit counts, money as String(64)).
# 2: 64-bit counts, money as text.
# 3: holders' sealed details and erasures (proj_holder_details, proj_holder_erasures).
# 4: vesting (the terms' vesting and fair value; vested rights of holdings).
# 5: vested rights of holdings (proj_vesting_moves, proj_vesting_events, proj_vesting).
# 6: exercises with their share price, for the filing reports (proj_exercises).
# 7: the history index (proj_history_holders, proj_history_issuances, proj_history_departures).
SCHEMA_VERSION = 7


class Money(TypeDecorator):
    """Exact decimal money stored as text: SQLite has no exact decimal type, so no float ever."""

    impl = Text  # any amount the domain accepts, however many digits
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else format(Decimal(value), "f")

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)

    def result_processor(self, dialect, coltype):
        # Where the driver hands the text over as it is (SQLite, psycopg), one call per value
        # instead of the decorator's two, on answers of thousands of rows; where the text type
        # has a processor of its own, the decorator's chain, so that it is never skipped.
        if self.impl_instance.result_processor(dialect, coltype) is not None:
            return super().result_processor(dialect, coltype)

        def process(value):
            return None if value is None else Decimal(value)

        return process


metadata = MetaData()

tracking = Table(
    "proj_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("schema_version", BigInteger, nullable=False),
)

issuances = Table(
    "proj_issuances",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("issuer", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", String(32), nullable=False),
    Column("resolved_on", Date, nullable=False),
    Column("max_rights", BigInteger),
    Column("decided_on", Date),
    Column("rights", BigInteger),
    Column("shares_per_right", BigInteger),
    Column("share_class", Text),
    Column("price_per_right", Money),
    Column("currency", String(3)),
    Column("exercise_price_per_share", Money),
    Column("allotment_date", Date),
    Column("exercise_from", Date),
    Column("exercise_to", Date),
    Column("exercisable_only_after_departure", Boolean),
    Column("exercise_window_days_after_departure", BigInteger),
    Column("expired_on", Date),
    Column("fair_value_per_right", Money),
    Column("vesting", Text),  # the terms' vesting object as canonical JSON (NULL: vests on allotment)
)

adjustments = Table(
    "proj_adjustments",
    metadata,
    Column("position", BigInteger, primary_key=True),
    Column("issuance", Text, nullable=False),
    Column("effective_on", Date, nullable=False),
    Column("ratio", Text, nullable=False),
    Index("ix_proj_adjustments_issuance", "issuance", "effective_on"),
)

# Terms in force from `effective_on` (after every adjustment of that date).
share_terms = Table(
    "proj_share_terms",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("effective_on", Date, primary_key=True),
    Column("spr_num", BigInteger, nullable=False),
    Column("spr_den", BigInteger, nullable=False),
    Column("exercise_price", Money, nullable=False),
)

holdings = Table(
    "proj_holdings",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("holder", Text, primary_key=True),
    Column("effective_on", Date, primary_key=True),
    Column("name", Text, nullable=False),
    Column("grp", Text, nullable=False),
    Column("last_allot_on", Date, nullable=False),
    Column("last_allot_pos", BigInteger, nullable=False),
    *(Column(f, BigInteger, nullable=False) for f in COUNTS),
    *(Column(f, Money, nullable=False) for f in MONEY),
    Column("currency", String(3), nullable=False),
    Index("ix_proj_holdings_date", "effective_on"),
)

# Every holding (issuance, holder) with a row in proj_holdings: an as-of query of one issuance
# walks this short list and seeks each holding's latest row, instead of skipping through
# proj_holdings to find the holders (bench: 67 -> 27 ms on PostgreSQL for 4,186 holders).
holding_keys = Table(
    "proj_holding_keys",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("holder", Text, primary_key=True),
    sqlite_with_rowid=False,  # the key is the whole row: no separate rowid table
)

allotments = Table(
    "proj_allotments",
    metadata,
    Column("position", BigInteger, primary_key=True),
    Column("issuance", Text, nullable=False),
    Column("holder", Text, nullable=False),
    Column("allotted_on", Date, nullable=False),
    Column("rights", BigInteger, nullable=False),
    Column("payment", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Index("ix_proj_allotments_holding", "issuance", "holder", "allotted_on"),
)

departures = Table(
    "proj_departures",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("departed_on", Date, nullable=False),
)

# A holder's address from each date, as sealed in its event (the register opens it at query
# time with the holder's key from ledger_holder_keys); a holder's rows go when erased.
holder_details = Table(
    "proj_holder_details",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("effective_on", Date, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("nonce", Text, nullable=False),
    Column("ciphertext", Text, nullable=False),
)

holder_erasures = Table(
    "proj_holder_erasures",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# Vesting (only for issuances whose terms have it: see projections/vesting.py). The movements
# of each holding and the vesting events of each issuance, as the walk needs them, and the walk's
# result: unvested and vested rights at the end of every date where either changes.
vesting_moves = Table(
    "proj_vesting_moves",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("holder", Text, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("effective_on", Date, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rights", BigInteger, nullable=False),
    Column("start", Date),  # allotments: the vesting start (NULL: the allotment date)
)

vesting_events = Table(
    "proj_vesting_events",
    metadata,
    Column("position", BigInteger, primary_key=True),
    Column("issuance", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("holder", Text),  # NULL: every holder
    Column("portion_met", Text, nullable=False),
    Index("ix_proj_vesting_events_issuance", "issuance"),
)

vesting = Table(
    "proj_vesting",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("holder", Text, primary_key=True),
    Column("effective_on", Date, primary_key=True),
    Column("unvested", BigInteger, nullable=False),
    Column("vested", BigInteger, nullable=False),
)

# Every exercise with the market price of a share on its date (NULL: none given), for the
# average share price at exercise of `report movements`.
exercises = Table(
    "proj_exercises",
    metadata,
    Column("position", BigInteger, primary_key=True),
    Column("issuance", Text, nullable=False),
    Column("holder", Text, nullable=False),
    Column("exercised_on", Date, nullable=False),
    Column("rights", BigInteger, nullable=False),
    Column("shares_delivered", BigInteger, nullable=False),
    Column("share_price", Money),
    Index("ix_proj_exercises_issuance", "issuance", "exercised_on"),
)

# The history index (see projections/history_index.py): which events `history --holder` and
# `history --issuance` show, by log position, so that they read only those events. Keyed by
# what they filter on, so each answer is one range of the primary key.
history_holders = Table(
    "proj_history_holders",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

history_issuances = Table(
    "proj_history_issuances",
    metadata,
    Column("issuance", Text, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("joined", Text),  # the holder an event makes join the issuance (NULL: none)
    sqlite_with_rowid=False,
)

history_departures = Table(
    "proj_history_departures",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

# Tables a rebuild empties and refills (tracking is reset, not dropped).
READ_MODELS = (issuances, adjustments, share_terms, holdings, holding_keys, allotments, departures,
               holder_details, holder_erasures, vesting_moves, vesting_events, vesting, exercises,
               history_holders, history_issuances, history_departures)

