"""Engines and sessions. Built by the entry point, never at import."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# PostgreSQL: no call may hang for ever. A server that accepts and never answers fails the
# connection after `connect_timeout`; a statement waiting on a lock fails after lock_timeout
# (and is tried again by its caller), any statement after statement_timeout; a peer gone
# silent is noticed by TCP within about half a minute; and a call that still has no answer
# well after the statement timeout (a link that swallows everything) has its connection cut
# here (`CallWatch`). Migrations lift the statement limits.
DB_TIMEOUT = 30.0  # seconds: WARGA_DB_TIMEOUT
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}
POOL = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 10}

log = logging.getLogger(__name__)


def make_engine(url: str, *, timeout: float = DB_TIMEOUT, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, make the file's folder and set it up for concurrent use;
    for PostgreSQL, with a time limit on every call (`timeout` seconds a statement)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3, not psycopg2
    ms = round(timeout * 1000)
    limits = (
        f"-c statement_timeout={ms} -c lock_timeout={min(ms // 3, 10000)} "
        f"-c idle_in_transaction_session_timeout={2 * ms}"
    )
    connect_args = {**POSTGRES_CONNECT_ARGS, "options": limits, **kwargs.pop("connect_args", {})}
    options = kwargs if "poolclass" in kwargs else {**POOL, **kwargs}
    # No ping before each use (a round trip per transaction): a connection found dead fails its
    # transaction, SQLAlchemy then drops the whole pool, and the caller tries again.
    engine = create_engine(url, connect_args=connect_args, **options)
    CallWatch(engine, limit=1.5 * timeout + 5)
    return engine


class CallWatch:
    """Cut the connection of a PostgreSQL call that has waited over `limit` seconds for its
    answer: its thread then gets an error instead of waiting for ever (the server was given a
    statement_timeout, so a live server has answered long before)."""

    def __init__(self, engine: Engine, *, limit: float) -> None:
        self.limit = limit
        self._calls: dict[int, tuple[float, int]] = {}  # connection -> (since, socket)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        event.listen(engine, "before_cursor_execute", self._started_execute)
        event.listen(engine, "after_cursor_execute", self._ended_execute)
        event.listen(engine, "handle_error", self._failed)
        dialect = engine.dialect  # COMMIT and ROLLBACK are calls too
        dialect.do_commit = self._watched(dialect.do_commit)  # type: ignore[method-assign]
        dialect.do_rollback = self._watched(dialect.do_rollback)  # type: ignore[method-assign]

    def _watched(self, call: Callable[[Any], None]) -> Callable[[Any], None]:
        def watched(dbapi_connection: Any) -> None:
            self._start(dbapi_connection)
            try:
                call(dbapi_connection)
            finally:
                self._end(dbapi_connection)

        return watched

    def _start(self, dbapi_connection: Any) -> None:
        try:
            fd = dbapi_connection.pgconn.socket
        except Exception:  # noqa: BLE001 - closed already: nothing to watch
            return
        with self._lock:
            self._calls[id(dbapi_connection)] = (time.monotonic(), fd)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True, name="dbwatch")
                self._thread.start()

    def _end(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._calls.pop(id(dbapi_connection), None)

    def _started_execute(self, connection: Any, *_args: Any) -> None:
        self._start(connection.connection.dbapi_connection)

    def _ended_execute(self, connection: Any, *_args: Any) -> None:
        self._end(connection.connection.dbapi_connection)

    def _failed(self, context: Any) -> None:
        if context.connection is not None and not context.connection.closed:
            with contextlib.suppress(Exception):
                self._end(context.connection.connection.dbapi_connection)

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                late = [k for k, (since, _) in self._calls.items() if now - since > self.limit]
                sockets = [self._calls.pop(k)[1] for k in late]
            for fd in sockets:
                log.warning(
                    "a database call got no answer in %.0f s: its connection is cut", self.limit
                )
                # Shut the socket down (not close: its owner still holds the descriptor); the
                # blocked call then fails as a lost connection.
                with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as cut:
                    cut.shutdown(socket.SHUT_RDWR)


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
