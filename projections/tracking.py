"""The projections' tracking row: the log position folded so far, its lock, and the layout
(schema version) of the read models that position describes.

Readers only look (:func:`read`, :func:`check_readable`); writers lock the position for the
length of their transaction (:func:`lock`) and move it (:func:`advance`), and a writer that
finds no read models, or read models of another layout, recreates them (:func:`recreate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import inspect, insert, select, text, update
from sqlalchemy.engine import Connection

from . import schema as t
from .errors import REBUILD, ProjectionsOutdated

NAME = "holdings"


@dataclass(frozen=True)
class Status:
    """Where the projections are against the log: their tracking position and the head."""

    position: int  # the log position the projections describe
    head: int  # the log position of the last stored event

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    @property
    def ahead(self) -> bool:
        """The projections claim events the log does not have (an edited tracking row)."""
        return self.position > self.head


@dataclass(frozen=True)
class TrackingState:
    position: int  # the log position folded so far
    schema_version: int  # the layout of the read models (1: before the version was kept)


def read(conn: Connection) -> TrackingState | None:
    """The tracking row as stored, whatever layout made it; None without one. Reads only."""
    if not inspect(conn).has_table(t.tracking.name):
        return None
    # SELECT * rather than naming schema_version: an older table lacks it, and a failed
    # statement would abort a PostgreSQL transaction.
    row = conn.execute(
        text(f"SELECT * FROM {t.tracking.name} WHERE name = :name"), {"name": NAME}
    ).mappings().first()
    if row is None:
        return None
    return TrackingState(int(row["position"]), int(row.get("schema_version", 1)))


def check_readable(conn: Connection) -> TrackingState:
    """The tracking state, when the read models have the layout this code reads; otherwise a
    one-line :class:`ProjectionsOutdated` naming what to run."""
    state = read(conn)
    if state is None:
        raise ProjectionsOutdated(f"this store has no projections: run {REBUILD}")
    if state.schema_version < t.SCHEMA_VERSION:
        raise ProjectionsOutdated(
            f"the projections were made by an older version of equity-ledger (layout "
            f"{state.schema_version}, this version reads {t.SCHEMA_VERSION}): run {REBUILD}"
        )
    if state.schema_version > t.SCHEMA_VERSION:
        raise ProjectionsOutdated(
            f"the projections were made by a newer version of equity-ledger (layout "
            f"{state.schema_version}, this version reads {t.SCHEMA_VERSION}): upgrade equity-ledger"
        )
    return state


def lock(conn: Connection) -> int:
    """The position, locked until this transaction ends (SQLite: the writer's BEGIN IMMEDIATE
    already holds the database; PostgreSQL: FOR UPDATE on the tracking row)."""
    q = select(t.tracking.c.position).where(t.tracking.c.name == NAME)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return int(conn.execute(q).scalar_one())


def advance(conn: Connection, position: int) -> None:
    """Record that the read models now describe the log up to `position`."""
    conn.execute(update(t.tracking).where(t.tracking.c.name == NAME).values(position=position))


def recreate(conn: Connection) -> None:
    """Drop every read model and the tracking table (whatever layout made them), create them
    anew, empty, at position 0 and this code's layout. In the caller's transaction: on SQLite
    and PostgreSQL the DDL commits or rolls back with it."""
    t.metadata.drop_all(conn, checkfirst=True)
    t.metadata.create_all(conn)
    conn.execute(insert(t.tracking).values(name=NAME, position=0, schema_version=t.SCHEMA_VERSION))
