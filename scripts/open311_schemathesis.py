"""Schemathesis against our Open311 API's /openapi.json, with the fuzz test's properties.

    .venv/bin/python scripts/open311_schemathesis.py [--postgres URL] [--max-time 120]

Run as a program it fills a scratch store (SQLite, or a scratch PostgreSQL database created and
dropped on the server at URL) with the city, a client key and two tickets (one rahasia), serves
the whole web app on a loopback port, and runs the schemathesis CLI against it. Imported by that
CLI (SCHEMATHESIS_HOOKS) it adds one check, `open311_answer` (tests/support/open311_answers.py),
and gives about half of the POSTed forms the real api_key, so that tickets are really created.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "WARGA_FUZZ_API_KEY"
RAHASIA_ENV = "WARGA_FUZZ_RAHASIA"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.open311_answers import MARKER, check_answer  # noqa: E402


def _register() -> None:
    """What the schemathesis CLI loads: the check and the key."""
    import schemathesis
    from hypothesis import strategies as st

    rahasia = set(filter(None, os.environ.get(RAHASIA_ENV, "").split(",")))

    @schemathesis.check
    def open311_answer(ctx: Any, response: Any, case: Any) -> None:
        """Never a 5xx; errors in the spec's form and the URL's format; XML well-formed;
        nothing rahasia."""
        request = response.request  # as sent: the path still percent-encoded
        path = urlsplit(request.url).path
        ctype = (response.headers.get("content-type") or [""])[0]  # lower-case keys, lists
        check_answer(request.method, path, response.status_code, ctype, response.content, rahasia)

    @schemathesis.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        if isinstance(body, dict) and "api_key" in body:
            return st.sampled_from([body, {**body, "api_key": os.environ.get(KEY_ENV, "")}])
        return st.just(body)


if os.environ.get("SCHEMATHESIS_HOOKS") == Path(__file__).stem:
    _register()


def _store(postgres: str | None, tmp: Path) -> tuple[str, Any]:
    """A migrated scratch store's URL, and how to drop it."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from actions.db import make_engine

    if not postgres:
        return f"sqlite:///{tmp / 'fuzz.sqlite3'}", lambda: None
    admin = make_engine(postgres, isolation_level="AUTOCOMMIT", pool_size=1)
    name = f"warga_fuzz_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(postgres).set(database=name).render_as_string(hide_password=False), drop


def _fill(url: str) -> tuple[Any, Any, str, set[str]]:
    """The store's sessions, the city, a client key and the numbers of the rahasia tickets."""
    from actions import migrate
    from actions.city import load_city_file, sync_city
    from actions.db import make_engine, make_session_factory
    from actions.domain import Privacy, TicketKind
    from actions.open311 import add_client
    from actions.people import get_or_create_resident
    from actions.tickets import create_ticket

    now = datetime.now(UTC)
    engine = make_engine(url)
    migrate.upgrade(engine)
    city = load_city_file(ROOT / "data" / "cities" / "pekanbaru.yml")
    sessions = make_session_factory(engine)
    rahasia = set()
    with sessions.begin() as s:
        sync_city(s, city=city)
        key = add_client(s, name="schemathesis", now=now)
        siti = get_or_create_resident(
            s, channel="telegram", platform_user_id="1", display_name="S"
        )
        for privacy, description in [(Privacy.RAHASIA, MARKER), (Privacy.BIASA, "jalan rusak")]:
            ticket = create_ticket(
                s,
                city=city.config,
                reporter=siti,
                kind=TicketKind.LAPOR,
                category_code="jalan",
                description=description,
                privacy=privacy,
                now=now - timedelta(days=1),
            )
            if privacy is Privacy.RAHASIA:
                rahasia.add(ticket.number)
    return sessions, city, key, rahasia


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """Serve the app with uvicorn in a thread on a free loopback port."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--max-time", type=int, default=120, help="seconds of fuzzing")
    args = parser.parse_args()

    from bot.open311 import Open311Context
    from bot.responses import Responses
    from bot.web import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url, drop = _store(args.postgres, Path(tmp))
        sessions = None
        try:
            sessions, city, key, rahasia = _fill(url)
            responses = Responses.load(ROOT / "data" / "responses")
            app = create_app(None, open311=Open311Context(sessions, city, responses))
            with _serving(app) as base:
                env = {
                    **os.environ,
                    "SCHEMATHESIS_HOOKS": Path(__file__).stem,
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT)]),
                    KEY_ENV: key,
                    RAHASIA_ENV: ",".join(rahasia),
                }
                command = [
                    str(Path(sys.executable).parent / "schemathesis"),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    "not_a_server_error,open311_answer",
                    "--max-time",
                    str(args.max_time),
                    "--workers",
                    "1",
                    "--suppress-health-check",
                    "all",
                ]
                print("$", " ".join(command[1:]), flush=True)
                # In the scratch folder: schemathesis keeps a cache where it runs.
                run = subprocess.run(command, env=env, cwd=tmp, check=False)  # noqa: S603
                return run.returncode
        finally:
            if sessions is not None:
                sessions.kw["bind"].dispose()
            drop()


if __name__ == "__main__":
    sys.exit(main())
