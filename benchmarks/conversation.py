"""Conversation benchmark: messages per second through the conversation core, in one process.

    python benchmarks/conversation.py [--residents 1000] [--postgres URL | --postgres '']

1,000 simulated residents each greet, report a problem through to its ticket number
(description with a place, skip the photo, privacy, send), check their reports and say
thanks: 7 messages each (8 when a similar report on the same street is offered: they send
their own anyway), interleaved at random. Everything is real: the NLU trained from
data/, the store (SQLite file, then a scratch PostgreSQL database), the FAQ and responses.
Prints messages/s and p50/p99 reply latency.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from scratch import scratch_postgres
from sqlalchemy import text

import nlu
from actions import migrate
from actions.city import load_city_file, sync_city
from actions.db import make_engine, make_session_factory
from bot.app import build_faq, nlu_extra
from bot.conversation import Assistant
from bot.messages import Incoming
from bot.responses import Responses

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
STREETS = [
    "Jl. Paus",
    "Jl. Durian",
    "Jl. Delima",
    "Jl. Garuda Sakti",
    "Jl. Kaharuddin Nasution",
    "Jl. Tuanku Tambusai",
    "Jl. Harapan Raya",
    "Jl. Arifin Ahmad",
]
PROBLEMS = [
    "jalan berlubang besar",
    "sampah numpuk ga diangkut",
    "lampu jalan mati",
    "drainase tersumbat, air meluap",
    "kabel menjuntai rendah",
]


def script(i: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """One resident's messages: (text, button payload)."""
    problem, street = rng.choice(PROBLEMS), rng.choice(STREETS)
    return [
        ("halo min", None),
        (f"{problem} di {street} no {rng.randint(1, 200)}, tolong min", None),
        ("", "photo:skip"),
        ("", "privacy:anonim"),
        ("", "confirm:send"),
        ("laporan saya", None),
        ("makasih min", None),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(url: str, label: str, residents: int, parser, city, responses, faq) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        sync_city(s, city=city)
    assistant = Assistant(city=city, nlu=parser, responses=responses, faq=faq, sessions=sessions)
    rng = random.Random(11)
    queues = {i: script(i, rng) for i in range(residents)}
    order = [i for i, msgs in queues.items() for _ in msgs]
    rng.shuffle(order)
    # Keep each resident's messages in their own order while interleaving residents.
    position = dict.fromkeys(queues, 0)
    latencies: list[float] = []
    by_step: dict[str, list[float]] = {}
    start = time.perf_counter()
    n = 0
    while n < len(order):
        i = order[n]
        step = position[i]
        msg, payload = queues[i][step]
        position[i] += 1
        incoming = Incoming(
            channel="bench", user_id=str(i), update_id=str(n), text=msg, payload=payload
        )
        t0 = time.perf_counter()
        replies = assistant.handle(incoming)
        n += 1
        latencies.append((time.perf_counter() - t0) * 1000)
        by_step.setdefault((msg or payload or "")[:12], []).append(latencies[-1])
        assert replies, (msg, payload)
        if any(b.payload == "similar:new" for r in replies for b in r.flat_buttons):
            # Offered someone's similar report (same street, same problem): a new one, later.
            queues[i].insert(position[i], ("", "similar:new"))
            order.insert(rng.randint(n + 1, len(order)), i)
    elapsed = time.perf_counter() - start
    with engine.connect() as conn:
        tickets = conn.execute(text("select count(*) from ticket")).scalar()
    engine.dispose()
    print(
        f"{label}: {len(order)} messages from {residents} residents in {elapsed:.1f} s: "
        f"{len(order) / elapsed:.0f} messages/s; reply latency p50 "
        f"{statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms; "
        f"{tickets} tickets"
    )
    steps = ", ".join(f"{k!r} {statistics.mean(v):.1f}" for k, v in by_step.items())
    print(f"  mean ms per step: {steps}")


def main() -> None:
    parser_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_.add_argument("--residents", type=int, default=1000)
    parser_.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser_.parse_args()
    city = load_city_file(DATA / "cities" / "pekanbaru.yml")
    responses = Responses.load(DATA / "responses")
    faq = build_faq(DATA, city)
    with tempfile.TemporaryDirectory() as tmp:
        parser = nlu.load(
            DATA / "nlu.yml",
            extra=nlu_extra(DATA),
            places=city.places(),
            ticket_prefix="PKU",
            cache_dir=Path(tmp) / "nlu",
            lexicon_dir=DATA / "lexicon",
        )
        run(
            f"sqlite:///{tmp}/bench.sqlite3",
            "SQLite    ",
            args.residents,
            parser,
            city,
            responses,
            faq,
        )
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            run(url, "PostgreSQL", args.residents, parser, city, responses, faq)


if __name__ == "__main__":
    main()
