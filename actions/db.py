"""Engines and sessions. Built by the entry point, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# PostgreSQL: no call may hang for ever. A server that accepts and never answers fails the
# connection after `connect_timeout`; a statement waiting on a lock fails after lock_timeout
# (and is tried again by its caller), any statement after statement_timeout; a peer gone
# silent is noticed by TCP within about half a minute. Migrations lift the statement limits.
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "options": (
        "-c statement_timeout=30000 -c lock_timeout=10000 "
        "-c idle_in_transaction_session_timeout=60000"
    ),
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}
POOL = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 10}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, make the file's folder and set it up for concurrent use;
    for PostgreSQL, with timeouts on every call (`POSTGRES_CONNECT_ARGS`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3, not psycopg2
    connect_args = {**POSTGRES_CONNECT_ARGS, **kwargs.pop("connect_args", {})}
    options = kwargs if "poolclass" in kwargs else {**POOL, **kwargs}
    # No ping before each use (a round trip per transaction): a connection found dead fails its
    # transaction, SQLAlchemy then drops the whole pool, and the caller tries again.
    return create_engine(url, connect_args=connect_args, **options)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open transactions (the driver's own would be deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue on busy_timeout instead
        # of one failing when its read lock cannot be upgraded.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
