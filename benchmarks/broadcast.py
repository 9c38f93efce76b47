"""Broadcast benchmark: one announcement to N followers through the real delivery worker.

    python benchmarks/broadcast.py                       # 10,000 followers at Telegram's limits
    python benchmarks/broadcast.py --followers 100000 --scale 10 --rate 290

The worker (bot/broadcaster.py, python-telegram-bot's Bot, a SQLite file or PostgreSQL) sends
to a fake Bot API in another process that enforces Telegram's documented limits (about 30/s
overall, 1/s per chat) and answers 429 when they are exceeded; `--scale` runs those limits
faster. Prints the achieved rate (between the first and the last message the server
accepted), duplicates and gaps as the server saw them, 429s, the worker's CPU time per
message, and its memory (RSS) sampled during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PTB_TIMEDELTA", "1")

from scratch import scratch_postgres
from sqlalchemy import insert, select

from actions import broadcasts, migrate
from actions.city import load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from actions.domain import GroupKind
from actions.models import Area, AreaFollower, Resident, utcnow
from bot.broadcaster import Broadcaster
from bot.channels.telegram import CHANNEL, bot_sender
from bot.responses import Responses

TOKEN = "123456789:BENCH-broadcast-token"  # noqa: S105 - the fake server's, not a secret


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def start_fake(rate: float, scale: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "tests.support.fake_bot_api",
            "--rate",
            str(rate),
            "--scale",
            str(scale),
            "--token",
            TOKEN,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the fake Bot API did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def prepare(url: str, followers: int) -> int:
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        sync_city(s, city=load_city_file(ROOT / "data" / "cities" / "pekanbaru.yml"))
        group = broadcasts.add_group(
            s, code="pemko", name="Pemko Pekanbaru", kind=GroupKind.AGENCY, area_codes=["14.71"]
        )
        kota = s.scalar(select(Area).where(Area.code == "14.71"))
        now = utcnow()
        s.execute(
            insert(Resident),
            [
                {
                    "channel": CHANNEL,
                    "platform_user_id": str(10_000_000 + i),
                    "display_name": "",
                    "language": "id",
                    "created_at": now,
                }
                for i in range(followers)
            ],
        )
        ids = s.scalars(select(Resident.id).where(Resident.channel == CHANNEL)).all()
        s.execute(
            insert(AreaFollower),
            [{"resident_id": i, "area_id": kota.id, "created_at": now} for i in ids],
        )
        b = broadcasts.create_broadcast(
            s,
            group=group,
            author=None,
            text="Pemadaman listrik terjadwal Selasa 09.00–12.00 di seluruh kota.",
            area=kota,
        )
        broadcast_id = b.id
    engine.dispose()
    return broadcast_id


async def deliver(url: str, api: str, broadcast_id: int, rate: float) -> dict[str, float]:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    responses = Responses.load(ROOT / "data" / "responses")
    samples: list[float] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    async with bot_sender(TOKEN, responses, api_url=api) as sender:
        worker = Broadcaster(sessions, responses, {CHANNEL: sender}, rate=rate)
        last_sample = 0.0

        def finished() -> bool:
            nonlocal last_sample
            now = time.perf_counter()
            if now - last_sample > 5:
                samples.append(rss_mb())
                last_sample = now
            with sessions() as s:
                return broadcasts.get_broadcast(s, broadcast_id).state.value == "done"

        await worker.run(idle=0.05, until=finished)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    engine.dispose()
    return {"cpu": cpu, "wall": wall, "rss_first": samples[0], "rss_last": samples[-1]} | {
        "rss_max": max(samples),
        "samples": len(samples),
    }


def run(label: str, url: str, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    broadcast_id = prepare(url, args.followers)
    print(f"{label}: {args.followers} followers prepared in {time.perf_counter() - t:.1f} s")
    fake, api = start_fake(30, args.scale)
    try:
        figures = asyncio.run(deliver(url, api, broadcast_id, args.rate))
        stats = httpx.get(f"{api}/_fake/stats", timeout=30).json()
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    accepted = stats["accepted"]
    unique = len(stats["per_chat"])
    limit = 30 * args.scale
    print(
        f"{label}: {accepted} messages in {stats['last_at'] - stats['first_at']:.1f} s "
        f"(worker {figures['wall']:.1f} s): {stats['rate']:.2f} messages/s = "
        f"{100 * stats['rate'] / limit:.1f} % of the server's {limit:g}/s; "
        f"duplicates {accepted - unique}, gaps {args.followers - unique}, "
        f"429s {stats['too_many_requests']}"
    )
    print(
        f"{label}: worker CPU {1000 * figures['cpu'] / accepted:.2f} ms per message; RSS "
        f"{figures['rss_first']:.0f} MB at the start, {figures['rss_last']:.0f} MB at the end, "
        f"{figures['rss_max']:.0f} MB at most ({figures['samples']} samples); peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=1.0, help="the server's limits × this")
    parser.add_argument("--rate", type=float, default=29.5, help="the worker's messages/s")
    parser.add_argument(
        "--postgres",
        default="",
        help="also run on this PostgreSQL server (a scratch database is created and dropped)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL run")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite    ", f"sqlite:///{tmp}/bench.sqlite3", args)
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            run("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
