"""Store benchmark: tickets created per second, and an agency's queue with 100,000 tickets.

    python benchmarks/store.py [--postgres URL] [--tickets 100000] [--create 2000]

Creation goes through `create_ticket` (number, due dates, routing, events, outbox), one
transaction per ticket, as the bot does. The rest of the 100,000 are bulk-inserted rows of
the same shape, then "an agency's open tickets, oldest first" (`list_tickets`, a page of
50) is timed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scratch import scratch_postgres
from sqlalchemy import Engine, insert, select, text

from actions import migrate
from actions.city import load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import OPEN_STATUSES, TicketKind, TicketStatus
from actions.models import Agency, Area, Category, Resident, Ticket
from actions.people import get_or_create_resident
from actions.tickets import create_ticket, list_tickets

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(engine: Engine, label: str, total: int, created: int) -> None:
    city = load_city_file(ROOT / "data" / "cities" / "pekanbaru.yml")
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        sync_city(s, city=city)
        categories = {c.code: c.id for c in s.scalars(select(Category))}
        kelurahan = [a.id for a in s.scalars(select(Area).where(Area.level == "kelurahan"))]
        agencies = {a.code: a.id for a in s.scalars(select(Agency))}
        reporter_ids = [
            get_or_create_resident(s, channel="telegram", platform_user_id=str(i)).id
            for i in range(1000)
        ]
    rng = random.Random(7)
    codes = list(categories)

    start = time.perf_counter()
    for i in range(created):
        with factory.begin() as s:
            create_ticket(
                s,
                city=city.config,
                reporter=s.get_one(Resident, reporter_ids[i % 1000]),
                kind=TicketKind.LAPOR,
                category_code=rng.choice(codes),
                description="jalan berlubang dekat sekolah",
                location_text="Jl. Paus",
                area=s.get(Area, rng.choice(kelurahan)),
            )
    elapsed = time.perf_counter() - start
    print(
        f"{label}: create_ticket  {created / elapsed:8.0f} tickets/s "
        f"({created} tickets, one transaction each)"
    )

    # Fill up to `total` with rows of the same shape, spread over a year.
    statuses = [
        TicketStatus.ROUTED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.RESOLVED,
        TicketStatus.CLOSED,
        TicketStatus.REJECTED,
    ]
    weights = [20, 15, 15, 45, 5]
    base = datetime(2025, 12, 1, tzinfo=UTC)
    batch: list[dict] = []
    start = time.perf_counter()
    for n in range(created + 1, total + 1):
        batch.append(
            {
                "number": f"BEN-2026-{n:06d}",
                "kind": "lapor",
                "category_id": categories[rng.choice(codes)],
                "agency_id": rng.choice(list(agencies.values())),
                "reporter_id": reporter_ids[n % 1000],
                "description": "bench",
                "location_text": "",
                "privacy": "biasa",
                "status": rng.choices(statuses, weights)[0].value,
                "created_at": base + timedelta(minutes=5 * n),
                "updated_at": base + timedelta(minutes=5 * n),
                "version": 1,
            }
        )
        if len(batch) == 5000 or n == total:
            with engine.begin() as conn:
                conn.execute(insert(Ticket), batch)
            batch.clear()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"{label}: bulk insert to {total} tickets in {time.perf_counter() - start:.1f} s")

    busiest = "PUPR"
    with factory() as s:
        open_count = s.scalar(
            select(text("count(*)"))
            .select_from(Ticket)
            .where(Ticket.agency_id == agencies[busiest], Ticket.status.in_(list(OPEN_STATUSES)))
        )
        timings = []
        for i in range(600):
            t0 = time.perf_counter()
            page = list_tickets(s, agency_code=busiest, limit=50, offset=50 * (i % 5))
            timings.append((time.perf_counter() - t0) * 1000)
            s.expunge_all()
        assert len(page) == 50
    timings = timings[100:]  # warm-up
    print(
        f"{label}: queue of {busiest} ({open_count} open of {total}), page of 50, oldest first: "
        f"p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--create", type=int, default=2000)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="server to create a scratch database on ('' to skip)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        run(engine, "SQLite    ", args.tickets, args.create)
        engine.dispose()

    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            engine = make_engine(url)
            run(engine, "PostgreSQL", args.tickets, args.create)
            engine.dispose()


if __name__ == "__main__":
    main()
