"""Schema migrations (Alembic), run from code so that `warga db upgrade` needs no ini file."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema up to `revision`."""
    cfg = _config()
    with engine.begin() as connection:
        _no_time_limits(connection)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = _config()
    with engine.begin() as connection:
        _no_time_limits(connection)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def _no_time_limits(connection: Connection) -> None:
    """A migration of a large table may take long: lift the per-statement limits (see
    actions/db.py) for its transaction only."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        connection.exec_driver_sql("SET LOCAL lock_timeout = 0")


def revision(engine: Engine, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    cfg = _config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)


def head() -> str:
    """Return the newest schema revision the code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def current(engine: Engine) -> tuple[str | None, str]:
    """Return the database's revision and the newest one the code knows."""
    with engine.connect() as connection:
        return current_revision(connection), head()


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision, read on an open connection."""
    return MigrationContext.configure(connection).get_current_revision()
