"""The two stores a run measures, with their raw baselines.

Each backend gives fresh stores (a new SQLite file; a new PostgreSQL database created through
psycopg on the given server) and the raw floors the ledger is compared with, on the same
database engine:

* apply floor: read the command file, ``json.loads`` every line, ``executemany`` one row per
  command (unique command-id column) into a plain table, one transaction;
* raw read: ``SELECT rowid, state FROM stored_events`` (PostgreSQL: ``notification_id, state``
  of ``equityledger_events``, in order, through a server-side cursor) + ``json.loads`` of each
  state, on the store the ledger wrote;
* raw copy: the rows a rebuild writes (``proj_holdings`` and ``proj_allotments``, the two
  tables that grow with the log; ``proj_holding_keys``, one row per holding, ~5% as many, is
  left out), read back and ``executemany``'d through the bare driver into
  empty tables of the same definition and indexes, 5,000 rows per transaction like the
  projector's pages. Raw read + raw copy is the floor of a rebuild's own work: it must read
  every event *and* write those rows;
* raw holdings: the same SQL the query runs (each holding of ``proj_holding_keys`` and its
  latest row on or before the date), through the bare driver.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Iterator

COPIED_TABLES = ("proj_holdings", "proj_allotments")
COPY_PAGE = 5000

# The SQL `projections.queries.latest_rows` runs for one issuance (each holding's newest row
# on or before the date, one seek per holding listed in proj_holding_keys), written for the
# bare driver: rowid on SQLite, LATERAL on PostgreSQL, the columns the report reads.
_RAW_COLUMNS = ("h.issuance, h.holder, h.name, h.grp, h.last_allot_on, h.last_allot_pos, h.allotted, "
                "h.exercised, h.forfeited, h.expired, h.shares_delivered, h.amount_offset, "
                "h.exercise_price_paid, h.currency")
RAW_HOLDINGS_SQLITE = (
    f"SELECT {_RAW_COLUMNS} FROM proj_holding_keys k JOIN proj_holdings h ON h.rowid ="
    " (SELECT x.rowid FROM proj_holdings x WHERE x.issuance = k.issuance AND x.holder = k.holder"
    " AND x.effective_on <= ? ORDER BY x.effective_on DESC LIMIT 1)"
    " WHERE k.issuance = ?"
)
RAW_HOLDINGS_POSTGRES = (
    f"SELECT {_RAW_COLUMNS} FROM proj_holding_keys k CROSS JOIN LATERAL"
    " (SELECT * FROM proj_holdings x WHERE x.issuance = k.issuance AND x.holder = k.holder"
    " AND x.effective_on <= %s ORDER BY x.effective_on DESC LIMIT 1) h"
    " WHERE k.issuance = %s"
)


def raw_holdings_params(issuance: str, as_of: object) -> tuple[object, ...]:
    return (as_of, issuance)


def _command_rows(path: Path) -> Iterator[tuple[str, str, str]]:
    with path.open("rb") as f:
        for raw in f:
            line = raw.decode("utf-8").rstrip("\r\n")
            obj = json.loads(line)
            yield obj["id"], obj["type"], line


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._n = itertools.count(1)

    def version(self) -> str:
        return sqlite3.sqlite_version

    def fresh(self, tag: str) -> str:
        path = self.folder / f"store-{tag}-{os.getpid()}-{next(self._n)}.sqlite"
        self._remove(path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        self._remove(Path(url.removeprefix("sqlite:///")))

    @staticmethod
    def _remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    def size_bytes(self, url: str) -> int:
        path = url.removeprefix("sqlite:///")
        return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))

    def apply_floor(self, plan: Path) -> float:
        """Seconds to read + decode + insert every command in one transaction (fresh file)."""
        path = self.folder / f"floor-{os.getpid()}.sqlite"
        self._remove(path)
        start = time.perf_counter()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")  # as eventsourcing's recorder sets it
        conn.execute("CREATE TABLE raw_commands (command_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, "
                     "body TEXT NOT NULL)")
        with conn:
            conn.executemany("INSERT INTO raw_commands VALUES (?, ?, ?)", _command_rows(plan))
        conn.close()
        took = time.perf_counter() - start
        self._remove(path)
        return took

    def raw_read(self, url: str) -> tuple[float, int]:
        """(seconds, events): every stored event read and its state decoded."""
        path = url.removeprefix("sqlite:///")
        start = time.perf_counter()
        conn = sqlite3.connect(path)
        n = 0
        loads = json.loads
        for _rowid, state in conn.execute("SELECT rowid, state FROM stored_events"):
            loads(state)
            n += 1
        conn.close()
        return time.perf_counter() - start, n

    def raw_copy(self, url: str) -> tuple[float, int]:
        """(seconds, rows): the read model's growing tables copied row by row into a new file."""
        src = sqlite3.connect(url.removeprefix("sqlite:///"))
        path = self.folder / f"copy-{os.getpid()}.sqlite"
        self._remove(path)
        dst = sqlite3.connect(path, isolation_level=None)
        dst.execute("PRAGMA journal_mode=WAL")
        dst.execute("PRAGMA synchronous=NORMAL")  # as the projector's connection
        n = 0
        start = time.perf_counter()
        for table in COPIED_TABLES:
            for (ddl,) in src.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                                      "ORDER BY type DESC", (table,)):  # the table, then its indexes
                dst.execute(ddl)
        cursors = [src.execute(f"SELECT * FROM {t} ORDER BY rowid") for t in COPIED_TABLES]
        while True:
            pages = [c.fetchmany(COPY_PAGE) for c in cursors]
            if not any(pages):
                break
            dst.execute("BEGIN")
            for table, rows in zip(COPIED_TABLES, pages):
                if rows:
                    dst.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
                    n += len(rows)
            dst.execute("COMMIT")
        took = time.perf_counter() - start
        src.close()
        dst.close()
        self._remove(path)
        return took, n

    def raw_holdings_session(self, url: str):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        sql = RAW_HOLDINGS_SQLITE

        def query(issuance: str, as_of: date) -> int:
            return len(conn.execute(sql, raw_holdings_params(issuance, as_of.isoformat())).fetchall())

        return query, conn.close

    def raw_query_script(self, url: str, issuance: str) -> str:
        """A `python -c` program: the raw form of a small CLI query (open, query, print JSON)."""
        path = url.removeprefix("sqlite:///")
        sql = RAW_HOLDINGS_SQLITE
        return (f"import sqlite3, json; c = sqlite3.connect({path!r}); "
                f"print(json.dumps(c.execute({sql!r}, {raw_holdings_params(issuance, '9999-12-31')!r}).fetchall()))")

    def close(self) -> None:
        pass


class PostgresBackend:
    """A PostgreSQL server: a fresh database (CREATE DATABASE through psycopg) per measurement."""

    name = "postgresql"

    def __init__(self, url: str, admin_url: str | None = None) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(url).set(drivername="postgresql+psycopg")
        admin = make_url(admin_url) if admin_url else self.url.set(database="postgres")
        self.admin = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        self._n = itertools.count(1)
        self.display = self.url.render_as_string(hide_password=True)

    def _admin(self):
        import psycopg

        return psycopg.connect(self.admin, autocommit=True, connect_timeout=10)

    def _libpq(self, url: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def version(self) -> str:
        with self._admin() as c:
            return str(c.execute("SHOW server_version").fetchone()[0])

    def fresh(self, tag: str) -> str:
        name = f"bench_{tag}_{os.getpid()}_{next(self._n)}".lower()
        with self._admin() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        with self._admin() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def size_bytes(self, url: str) -> int:
        import psycopg

        with psycopg.connect(self._libpq(url)) as c:
            return int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def apply_floor(self, plan: Path) -> float:
        import psycopg

        url = self.fresh("floor")
        try:
            start = time.perf_counter()
            with psycopg.connect(self._libpq(url)) as conn:
                with conn.cursor() as cur:
                    cur.execute("CREATE TABLE raw_commands (command_id TEXT NOT NULL UNIQUE, "
                                "type TEXT NOT NULL, body TEXT NOT NULL)")
                    cur.executemany("INSERT INTO raw_commands VALUES (%s, %s, %s)", _command_rows(plan))
                conn.commit()
            return time.perf_counter() - start
        finally:
            self.drop(url)

    def raw_read(self, url: str) -> tuple[float, int]:
        import psycopg

        start = time.perf_counter()
        n = 0
        loads = json.loads
        with psycopg.connect(self._libpq(url)) as conn:
            with conn.cursor(name="bench_raw_read") as cur:
                cur.itersize = 5000
                cur.execute("SELECT notification_id, state FROM equityledger_events ORDER BY notification_id")
                for _id, state in cur:
                    loads(state)
                    n += 1
        return time.perf_counter() - start, n

    def raw_copy(self, url: str) -> tuple[float, int]:
        """(seconds, rows): the read model's growing tables copied row by row into empty copies."""
        import psycopg

        n = 0
        with psycopg.connect(self._libpq(url)) as src, psycopg.connect(self._libpq(url)) as dst:
            for table in COPIED_TABLES:
                dst.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
                dst.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING ALL)")
            dst.commit()
            start = time.perf_counter()
            cursors = []
            for table in COPIED_TABLES:
                cur = src.cursor(name=f"bench_copy_{table}")
                cur.execute(f"SELECT * FROM {table}")
                cursors.append(cur)
            while True:
                pages = [c.fetchmany(COPY_PAGE) for c in cursors]
                if not any(pages):
                    break
                with dst.cursor() as w:
                    for table, rows in zip(COPIED_TABLES, pages):
                        if rows:
                            w.executemany(f"INSERT INTO bench_copy_{table} VALUES "
                                          f"({','.join(['%s'] * len(rows[0]))})", rows)
                            n += len(rows)
                dst.commit()
            took = time.perf_counter() - start
            for c in cursors:
                c.close()
            src.rollback()
            for table in COPIED_TABLES:
                dst.execute(f"DROP TABLE bench_copy_{table}")
            dst.commit()
        return took, n

    def raw_holdings_session(self, url: str):
        import psycopg

        conn = psycopg.connect(self._libpq(url), autocommit=True)
        sql = RAW_HOLDINGS_POSTGRES

        def query(issuance: str, as_of: date) -> int:
            return len(conn.execute(sql, raw_holdings_params(issuance, as_of)).fetchall())

        return query, conn.close

    def raw_query_script(self, url: str, issuance: str) -> str:
        sql = RAW_HOLDINGS_POSTGRES
        return (f"import psycopg, json; c = psycopg.connect({self._libpq(url)!r}); "
                f"print(json.dumps(c.execute({sql!r}, {raw_holdings_params(issuance, '9999-12-31')!r}).fetchall(), "
                f"default=str))")

    def close(self) -> None:
        pass
