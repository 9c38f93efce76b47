"""A scratch PostgreSQL database for a benchmark run: created fresh, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from actions.db import make_engine


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """Create a database on the server at `server_url`; yield its URL; drop it at the end."""
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"warga_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
