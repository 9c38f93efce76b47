"""Open311 benchmark: a full page of GET requests.json (1,000 requests), JSON and XML.

    python benchmarks/open311.py [--postgres URL] [--tickets 3000]

The tickets are created through `create_ticket` over the last 60 days, half of them started
with a note (so each request has its status_notes to find); the calls go through the whole
web app (FastAPI inside the Starlette app, in process), privacy and redaction included.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from scratch import scratch_postgres
from sqlalchemy import Engine, select

from actions import migrate
from actions.city import load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import Privacy, TicketKind
from actions.models import Area, Category
from actions.people import get_or_create_resident
from actions.tickets import Action, create_ticket, transition
from bot.open311 import Open311Context
from bot.responses import Responses
from bot.web import create_app

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def run(engine: Engine, label: str, tickets: int) -> None:
    city = load_city_file(ROOT / "data" / "cities" / "pekanbaru.yml")
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    rng = random.Random(7)
    with sessions.begin() as s:
        sync_city(s, city=city)
        codes = list(s.scalars(select(Category.code)))
        kelurahan = list(s.scalars(select(Area).where(Area.level == "kelurahan")))
        siti = get_or_create_resident(s, channel="telegram", platform_user_id="1")
        for i in range(tickets):
            when = NOW - timedelta(minutes=rng.randrange(60 * 24 * 60))
            ticket = create_ticket(
                s,
                city=city.config,
                reporter=siti,
                kind=TicketKind.LAPOR,
                category_code=rng.choice(codes),
                description="jalan berlubang dekat sekolah, hubungi 0812-3456-7890",
                location_text="Jl. Paus",
                latitude=0.5 + rng.random() / 10,
                longitude=101.4 + rng.random() / 10,
                area=rng.choice(kelurahan),
                privacy=rng.choice(list(Privacy)),
                now=when,
            )
            if i % 2:
                transition(s, ticket, Action.START, actor=None, note="tim menuju lokasi", now=when)
    responses = Responses.load(ROOT / "data" / "responses")
    ctx = Open311Context(sessions, city, responses, clock=lambda: NOW)
    app = create_app(None, open311=ctx, open311_interval=None)
    for fmt in ("json", "xml"):
        timings, size = asyncio.run(_time(app, f"/open311/v2/requests.{fmt}", 20))
        print(
            f"{label}: GET requests.{fmt:<4} p50 {statistics.median(timings):6.1f} ms, "
            f"max {max(timings):6.1f} ms ({size / 1024:.0f} KiB, "
            f"{tickets} tickets, a third rahasia)"
        )


async def _time(app: object, path: str, times: int) -> tuple[list[float], int]:
    """Call the app in process `times` times; return the timings in ms and the answer's size."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    timings, size = [], 0
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(times):
            start = time.perf_counter()
            response = await client.get(path)
            timings.append((time.perf_counter() - start) * 1000)
            size = len(response.content)
    return timings, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="server to create a scratch database on ('' to skip)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        run(engine, "SQLite    ", args.tickets)
        engine.dispose()

    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            engine = make_engine(url)
            run(engine, "PostgreSQL", args.tickets)
            engine.dispose()


if __name__ == "__main__":
    main()
