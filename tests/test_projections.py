"""The projections' structure and trust: pure plans, read-only consistent reads, layout versions,
rebuilds that never leave empty read models, one-line failures, and an edited tracking position."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import factories as f
import helpers
from equity_ledger.bootstrap import Books
from equity_ledger.ledger.service import LedgerService as Ledger
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.errors import LedgerError
from equity_ledger.projections import queries
from equity_ledger.projections.errors import ProjectionFailed, ProjectionsAhead, ProjectionsOutdated
from equity_ledger.projections.fold import HoldingDelta, effects_of
from equity_ledger.projections.plan import Backdate, InsertHoldings, plan
from equity_ledger.projections.projector import Projector
from equity_ledger.projections.reader import ReadModels
from equity_ledger.projections.replay import compare_with_projections
from equity_ledger.projections.verify import verify_projections

HISTORY = f.setup() + [
    f.allot("h1", 10), f.allot("h2", 5, payment="cash"), f.allot("h3", 3, group="employee"),
    f.exercise("h1", 2, on="2021-01-01"), f.adjust("2", on="2022-01-01"),
    f.forfeit("h2", "all", on="2022-06-01"),
    f.allot("h3", 1, allotted_on="2020-03-01", group="employee"),  # a late entry
]


def _apply(ledger: Ledger, cmds: list[dict[str, Any]]) -> None:
    report = ledger.apply(parse_command(d, line=i) for i, d in enumerate(cmds, 1))


@pytest.fixture
def book(store_url: str):
    ledger = Books(store_url).service
    projector = Projector(ledger.uow.log, ledger.uow.config)
    _apply(ledger, HISTORY)
    projector.catch_up()
    yield SimpleNamespace(url=store_url, ledger=ledger, log=ledger.uow.log, projector=projector,
                          config=ledger.uow.config)
    projector.close()
    ledger.close()


def _answers(config: Any) -> Any:
    models = ReadModels(config)
    try:
        with models.snapshot() as conn:
            return (
                [queries.holdings(conn, by, None, day) for by in ("person", "group") for day in (None, date(2021, 1, 1))],
                queries.register(conn, "s1", None)[1],
                models.status(conn),
            )
    finally:
        models.close()


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


# --------------------------------------------------------------------------- plan (pure)

def test_a_late_entry_plans_a_backdate_after_the_rows_before_it_as_they_were() -> None:
    d = lambda s: date.fromisoformat(s)  # noqa: E731
    fields = dict(issuance="s1", holder="h1", name="N", group="g", currency="JPY", payment="offset", amount=0)
    batch = [
        (1, "RightsAllotted", SimpleNamespace(**fields, rights=10, allotted_on=d("2020-02-01"))),
        (2, "RightsAllotted", SimpleNamespace(**fields, rights=1, allotted_on=d("2020-03-01"))),
        (3, "RightsAllotted", SimpleNamespace(**fields, rights=5, allotted_on=d("2020-02-15"))),
    ]
    latest: dict = {}
    p = plan([(pos, k, effects_of(pos, k, e)) for pos, k, e in batch], latest)
    inserted, backdate = p.steps
    assert isinstance(inserted, InsertHoldings) and isinstance(backdate, Backdate)
    # The rows planned before the late entry do not include it (the writer adds it in SQL) ...
    assert [r["allotted"] for r in inserted.rows] == [10, 11]
    assert isinstance(backdate.delta, HoldingDelta) and backdate.delta.allotted == 5
    # ... and the cache is the state after the plan.
    assert latest[("s1", "h1")]["allotted"] == 16
    assert p.new_keys == [("s1", "h1")] and len(p.allotments) == 3


# --------------------------------------------------------------------------- reads

def test_reads_leave_the_sqlite_file_byte_for_byte_unchanged(book) -> None:
    if not book.url.startswith("sqlite"):
        pytest.skip("SQLite only (PostgreSQL: the SELECT-only role below)")
    path = Path(book.config.display)
    book.projector.close()
    book.ledger.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    first = _answers(book.config)
    assert first[2].lag == 0 and first[0][0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    path.chmod(0o444)  # a read-only file can still be queried
    try:
        assert _answers(book.config) == first
    finally:
        path.chmod(0o644)


def test_opening_the_read_side_creates_nothing(tmp_path: Path) -> None:
    from equity_ledger.ledger.store import store_config

    path = tmp_path / "other.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (x)"))
    engine.dispose()
    before = path.read_bytes()
    models = ReadModels(store_config(f"sqlite:///{path}"))
    with pytest.raises(ProjectionsOutdated, match="no projections: run `equity-ledger projections rebuild`"):
        with models.snapshot():
            pass
    models.close()
    assert path.read_bytes() == before


def test_a_select_only_postgresql_role_can_read(book) -> None:
    if not book.url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    import psycopg

    from equity_ledger.ledger.store import store_config

    role = "ro_" + uuid.uuid4().hex[:12]
    dsn = book.url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    try:
        expected = _answers(book.config)
        head, rest = book.url.split("://", 1)
        as_role = f"{head}://{role}@{rest.split('@', 1)[1]}"
        assert _answers(store_config(as_role)) == expected
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


# --------------------------------------------------------------------------- layout versions

def _as_older_layout(url: str) -> None:
    """Make the store look as the previous version left it: no layout number in proj_tracking
    (and, as before that, no holding keys)."""
    _sql(
        url,
        "CREATE TABLE old_tracking AS SELECT name, position FROM proj_tracking",
        "DROP TABLE proj_tracking",
        "CREATE TABLE proj_tracking (name VARCHAR(64) PRIMARY KEY, position BIGINT NOT NULL)",
        "INSERT INTO proj_tracking SELECT name, position FROM old_tracking",
        "DROP TABLE old_tracking",
        "DELETE FROM proj_holding_keys",
    )


def test_an_older_layout_is_refused_by_readers_and_refolded_by_writers(book) -> None:
    expected = _answers(book.config)
    _as_older_layout(book.url)
    with pytest.raises(ProjectionsOutdated) as e:
        _answers(book.config)
    assert "older version" in str(e.value) and "projections rebuild" in str(e.value)
    assert "\n" not in str(e.value)
    fresh = Projector(book.log, book.config)  # a new process: nothing known yet
    try:
        assert fresh.catch_up() == 0  # the refold happened at install, in one transaction
    finally:
        fresh.close()
    assert _answers(book.config) == expected
    with ReadModels(book.config).snapshot() as conn:
        assert verify_projections(book.log, conn, expected[2].position) is None


# --------------------------------------------------------------------------- rebuild

class _Log:
    """The ledger as the projector sees it, with a hook called on every page read."""

    def __init__(self, ledger: Ledger, hook: Any) -> None:
        self.ledger, self.hook = ledger, hook

    def stored_fields(self, start: int, limit: int) -> Any:
        self.hook(start)
        return self.ledger.uow.log.stored_fields(start, limit)

    def head_position(self) -> int:
        return self.ledger.uow.log.head_position()


def test_readers_see_the_old_read_models_during_a_rebuild_and_after_a_failed_one(book) -> None:
    expected = _answers(book.config)
    seen = []

    def look(start: int) -> None:
        seen.append(_answers(book.config))  # another connection, mid-rebuild

    p = Projector(_Log(book.ledger, look), book.config)
    try:
        assert p.rebuild() == expected[2].head
    finally:
        p.close()
    assert seen and all(s == expected for s in seen)

    def fail(start: int) -> None:
        if start > 1:
            raise RuntimeError("disk on fire")

    p = Projector(_Log(book.ledger, fail), book.config)
    try:
        with pytest.raises(LedgerError) as e:
            _rebuild_in_pages(p)
        assert "disk on fire" in str(e.value) and "\n" not in str(e.value)
    finally:
        p.close()
    assert _answers(book.config) == expected


def _rebuild_in_pages(p: Projector) -> None:
    import equity_ledger.projections.projector as module

    old, module.PAGE = module.PAGE, 3
    try:
        p.rebuild()
    finally:
        module.PAGE = old


# --------------------------------------------------------------------------- failures

def test_a_fold_failure_names_the_event_and_the_store_can_catch_up_later(book) -> None:
    _sql(book.url, "INSERT INTO proj_departures (holder, departed_on) VALUES ('h1', '2020-01-01')")
    _apply(book.ledger, [f.depart("h1", on="2022-07-01"), f.allot("h9", 1)])
    before = book.projector.status()
    with pytest.raises(ProjectionFailed) as e:
        book.projector.catch_up()
    msg = str(e.value)
    assert "\n" not in msg and "(Departed)" in msg and f"position {before.position + 1}" in msg
    assert book.projector.status().position == before.position  # nothing of the page kept
    _sql(book.url, "DELETE FROM proj_departures")
    assert book.projector.catch_up() == book.log.head_position() - before.position
    with ReadModels(book.config).snapshot() as conn:
        assert verify_projections(book.log, conn, book.projector.status().position) is None


def test_an_unexpected_error_in_an_event_is_one_line_naming_it(book) -> None:
    class Broken(_Log):
        def stored_fields(self, start: int, limit: int) -> Any:
            rows = self.ledger.uow.log.stored_fields(start, limit)
            return [(p, k, SimpleNamespace()) if k == "RightsExercised" else (p, k, e) for p, k, e in rows]

    p = Projector(Broken(book.ledger, None), book.config)
    try:
        with pytest.raises(ProjectionFailed, match=r"position \d+ \(RightsExercised\)") as e:
            p.rebuild()
        assert "\n" not in str(e.value)
    finally:
        p.close()
    assert _answers(book.config)[2].lag == 0  # the old read models still serve


# --------------------------------------------------------------------------- tracking edits

def test_a_tracking_position_past_the_head_is_refused_and_named(book) -> None:
    head = book.log.head_position()
    _sql(book.url, f"UPDATE proj_tracking SET position = {head + 5}")
    with pytest.raises(ProjectionsAhead, match="past the head of the log.*projections rebuild"):
        book.projector.catch_up()
    with ReadModels(book.config).snapshot() as conn:
        finding = verify_projections(book.log, conn, head + 5)
    assert finding is not None and "proj_tracking" in str(finding) and "projections rebuild" in str(finding)
    assert book.projector.rebuild() == head
    assert book.projector.status().position == head


def test_a_tracking_position_moved_back_is_caught_by_verify(book) -> None:
    head = book.log.head_position()
    _sql(book.url, f"UPDATE proj_tracking SET position = {head - 3}")
    with ReadModels(book.config).snapshot() as conn:
        assert verify_projections(book.log, conn, head - 3) is not None


# --------------------------------------------------------------------------- replay and sizes

def test_replay_comparison_names_the_first_difference(book) -> None:
    with ReadModels(book.config).snapshot() as conn:
        assert compare_with_projections(book.log, conn, None).difference is None
    _sql(book.url, "UPDATE proj_holdings SET allotted = allotted + 1 WHERE holder = 'h2'")
    with ReadModels(book.config).snapshot() as conn:
        result = compare_with_projections(book.log, conn, None)
    assert "h2" in result.difference and "rights_allotted" in result.difference
    assert [r["holder"] for r in result.replayed["person"]] == ["h1", "h2", "h3"]


def test_counts_beyond_32_bits_and_long_amounts(store_url: str) -> None:
    big = 3_000_000_000
    ledger = Books(store_url).service
    projector = Projector(ledger.uow.log, ledger.uow.config)
    try:
        _apply(ledger, [
            f.resolution(max_rights=2 * big),
            # The largest figures the domain's 64-bit bounds allow for these rights (see
            # tests/test_limits.py): amounts counted in units of 10^-3.
            f.terms(rights=2 * big, shares_per_right=1000, price_per_right="1234567.891",
                    exercise_price_per_share="0.001"),
            f.allot("h1", big),
        ])
        projector.catch_up()
        [row] = _answers(ledger.uow.config)[0][0]
        assert row["rights_allotted"] == big and row["shares_underlying"] == big * 1000
        assert row["amount_offset"] == str(big * __import__("decimal").Decimal("1234567.891"))
    finally:
        projector.close()
        ledger.close()


# --------------------------------------------------------------------------- bounded cache

def _read_models(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table's rows (but the tracking row), sorted."""
    from equity_ledger.projections import schema as t

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted((tuple(r) for r in conn.execute(table.select())), key=repr)
                for table in t.READ_MODELS
            }
    finally:
        engine.dispose()


def test_a_bounded_cache_of_latest_rows_folds_the_rows_of_an_unbounded_one(store_url: str, monkeypatch) -> None:
    """Far more holdings than the projector keeps in memory, touched in random order, with late
    entries: the holdings it dropped are read back from the table, and every read model equals
    what a fold that kept every holding writes (and what verify replays)."""
    import random
    from datetime import timedelta

    from equity_ledger.projections import projector as projector_module

    rng = random.Random(20261204)
    cmds = f.setup("s1", rights=100_000) + f.setup("s2", rights=100_000)
    allotted: dict[tuple[str, str], int] = {}
    exercised: dict[tuple[str, str], int] = {}
    for _ in range(400):
        key = (rng.choice(["s1", "s2"]), f"h{rng.randrange(60)}")
        if allotted.get(key, 0) > exercised.get(key, 0) + 1 and rng.random() < 0.3:
            # Dated after every allotment: never more exercised than allotted on any date.
            on = date(2022, 1, 1) + timedelta(days=rng.randrange(700))
            cmds.append(f.exercise(key[1], 1, on=on.isoformat(), issuance=key[0]))
            exercised[key] = exercised.get(key, 0) + 1
        else:
            # Random dates: most allotments are late entries before rows already folded.
            on = date(2020, 2, 1) + timedelta(days=rng.randrange(700))
            rights = rng.randrange(1, 6)
            cmds.append(f.allot(key[1], rights, issuance=key[0], allotted_on=on.isoformat()))
            allotted[key] = allotted.get(key, 0) + rights
    assert len(allotted) > 60  # holdings, against a cache of 4

    monkeypatch.setattr(projector_module, "LATEST_CACHE", 4)
    books = Books(store_url)
    try:
        books.service.apply((parse_command(d, line=i) for i, d in enumerate(cmds, 1)),
                            projections=books.projector, batch_size=7)
        assert books.projector.cache_limit == 4 and len(books.projector._latest) <= 4
    finally:
        books.close()
    folded_in_batches = _read_models(store_url)

    monkeypatch.setattr(projector_module, "PAGE", 9)
    books = Books(store_url)
    try:
        books.upkeep.rebuild()  # bounded too: a rebuild folds pages of the whole log
    finally:
        books.close()
    assert _read_models(store_url) == folded_in_batches

    monkeypatch.setattr(projector_module, "LATEST_CACHE", 1_000_000)
    books = Books(store_url)
    try:
        books.upkeep.rebuild()
        with books.reading() as view:
            assert verify_projections(view.log, view.conn, view.status.position) is None
    finally:
        books.close()
    assert _read_models(store_url) == folded_in_batches
