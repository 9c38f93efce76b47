"""Databases for tests that need one of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from actions.db import make_engine


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """An empty database on the run's PostgreSQL server, dropped at the end."""
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"warga_empty_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
