"""Shared fixtures: a real SQLite file and a real PostgreSQL database for each store test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from actions import migrate
from actions.city import LoadedCity, load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import Privacy, TicketKind
from actions.models import Area, Base, Resident, Ticket
from actions.people import get_or_create_resident
from tests.support.databases import fresh_postgres_database

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
PG_URL = os.environ.get(
    "WARGA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("WARGA_REQUIRE_POSTGRES") == "1"
# As `warga` runs: python-telegram-bot's durations as timedeltas (see bot/cli.py main).
os.environ.setdefault("PTB_TIMEDELTA", "1")
_pg_problem: list[str] = []


def _postgres_admin() -> Engine | None:
    engine = make_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        engine.dispose()
        _pg_problem.append(str(exc).splitlines()[0])
        return None
    return engine


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database for this run, migrated, and drop it at the end."""
    admin = _postgres_admin()
    if admin is None:
        reason = f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}"
        if REQUIRE_PG:
            pytest.fail(f"{reason} and WARGA_REQUIRE_POSTGRES=1: {_pg_problem[-1]}")
        pytest.skip(reason)
    name = f"warga_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, not even migrated: SQLite, then one on the run's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite file per run (an engine per run keeps SQL compilation warm)."""
    path = tmp_path_factory.mktemp("sqlite") / "warga.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=25, max_overflow=0)
    yield engine
    engine.dispose()


def _empty(engine: Engine) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:  # DELETE beats TRUNCATE on a few rows
        for table in tables:
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database, emptied after each test: SQLite, then the run's PostgreSQL."""
    eng: Engine = request.getfixturevalue(f"{request.param}_engine")
    try:
        yield eng
    finally:
        _empty(eng)


@pytest.fixture(scope="session")
def city() -> LoadedCity:
    return load_city_file(DATA / "cities" / "pekanbaru.yml")


@pytest.fixture
def loaded(engine: Engine, city: LoadedCity) -> Engine:
    """A database with Pekanbaru's areas, agencies, categories and routing loaded."""
    with make_session_factory(engine).begin() as session:
        sync_city(session, city=city)
    return engine


@pytest.fixture
def session(loaded: Engine) -> Iterator[Session]:
    with make_session_factory(loaded)() as s:
        yield s


# A Monday in WIB working hours, with no holiday near.
MONDAY = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def resident(session: Session) -> Resident:
    return get_or_create_resident(
        session, channel="telegram", platform_user_id="5001", display_name="Siti"
    )


@pytest.fixture
def make_ticket(session: Session, city: LoadedCity, resident: Resident) -> Callable[..., Ticket]:
    from actions.tickets import create_ticket

    def make(
        category: str = "jalan",
        kelurahan: str | None = None,
        kind: TicketKind = TicketKind.LAPOR,
        reporter: Resident | None = None,
        now: datetime = MONDAY,
    ) -> Ticket:
        area = None
        if kelurahan is not None:
            area = session.scalar(select(Area).where(Area.name == kelurahan))
            assert area is not None, kelurahan
        return create_ticket(
            session,
            city=city.config,
            reporter=reporter or resident,
            kind=kind,
            category_code=category,
            description="jalan berlubang besar, hati-hati 0812-3456-7890",
            location_text="Jl. Garuda Sakti km 2",
            area=area,
            privacy=Privacy.BIASA,
            now=now,
        )

    return make


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if any("PostgreSQL not reachable" in str(r.longrepr) for r in skipped):
        terminalreporter.write_line(
            "NOTE: the PostgreSQL tests were SKIPPED (no server answered at "
            f"{make_url(PG_URL).render_as_string()}); SQLite tests ran. "
            "Set WARGA_TEST_POSTGRES_URL, or WARGA_REQUIRE_POSTGRES=1 to make this an error.",
            yellow=True,
            bold=True,
        )
