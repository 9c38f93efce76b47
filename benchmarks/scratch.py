"""A scratch PostgreSQL database for a benchmark run: created fresh, dropped afterwards.

The same helper the tests use; the benchmarks run as scripts, so the checkout's root is put
on the path for `tests.support`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from tests.support.databases import fresh_postgres_database as scratch_postgres  # noqa: E402

__all__ = ["scratch_postgres"]
