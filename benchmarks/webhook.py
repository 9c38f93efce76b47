"""Webhook benchmark: updates through the real Telegram webhook of `warga serve` into the real
store, answered through the fake Bot API with Telegram's limits (30/s, 1/s per chat, 429).

    python benchmarks/webhook.py                                  # SQLite, 1 and 2 processes
    python benchmarks/webhook.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Every run starts fresh `warga serve` processes (one, then two behind a round-robin "load
balancer": this script, posting as Telegram would) and the fake Bot API in its own process:

(a) a burst: `--burst` updates from `--residents` residents, posted as fast as the servers
    take them (each resident's in order). Prints the acknowledgement time p50/p99, the
    processing rate (updates handled per second, from the first acknowledgement to the last
    update handled), the replies queued, the reply send rate during the burst as a share of
    Telegram's 30/s, and how long the worst-served resident waited for its first reply.
(b) steady: `--rate` updates/s from the same number of residents for `--seconds`: the lag from
    an update's acknowledgement to its reply reaching the fake Bot API, p50 and p99.

Each message gets exactly one reply (a greeting, a proposal that becomes a ticket at once,
thanks, "laporan saya"), so replies are matched to updates in order, per chat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # tests.support: the fake Bot API and the process harness
os.environ.setdefault("PTB_TIMEDELTA", "1")

from scratch import scratch_postgres
from sqlalchemy import func, select

from actions.db import make_engine, make_session_factory
from actions.domain import InboxState
from actions.models import InboxUpdate
from actions.settings import Settings
from bot.app import Runtime
from tests.support.bot_process import (
    SCRIPT,
    SECRET,
    SECRET_HEADER,
    FakeBotProcess,
    WargaServe,
)
from tests.support.fake_bot_updates import text_update

LIMIT = 30.0  # Telegram's messages/s, as the fake enforces it


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Connection:
    """A keep-alive HTTP/1.1 connection that only POSTs JSON: a fraction of a general client's
    CPU, so that the load we make does not take the server's share of the machine."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        assert self.reader is not None
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Driver:
    """Telegram, through a load balancer: posts updates round robin over the servers."""

    def __init__(self, bots: list[WargaServe]) -> None:
        self.bots = bots
        self.next_id = 0
        self.acks: dict[int, list[tuple[float, float]]] = defaultdict(list)  # chat: (sent, ack)
        self.failures = 0
        self.connections: dict[tuple[int, int], Connection] = {}

    def update(self, chat: int, text: str) -> dict:
        self.next_id += 1
        update = text_update(chat, text, first_name=f"Warga {chat}")
        message = {**update["message"], "message_id": self.next_id}
        return {**update, "update_id": self.next_id, "message": message}

    async def post(self, chat: int, text: str) -> None:
        update = self.update(chat, text)
        index = update["update_id"] % len(self.bots)
        key = (chat, index)  # one connection per resident and server, as a proxy keeps them
        if key not in self.connections:
            self.connections[key] = Connection(self.bots[index].url)
        body = json.dumps(update).encode()
        sent = time.monotonic()
        while True:  # Telegram retries what did not get a 200
            try:
                status = await self.connections[key].post(
                    "/telegram/webhook", body, {SECRET_HEADER: SECRET}
                )
                if status == 200:
                    break
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection: a new one, at once.
                self.connections[key].close()
                self.connections[key] = Connection(self.bots[index].url)
                continue
            self.failures += 1
            await asyncio.sleep(0.5)
        self.acks[chat].append((sent, time.monotonic()))

    async def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def handled(url: str) -> int:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            done = InboxUpdate.state == InboxState.DONE
            return s.scalar(select(func.count()).select_from(InboxUpdate).where(done)) or 0
    finally:
        engine.dispose()


async def burst(driver: Driver, url: str, residents: list[int], count: int) -> dict:
    per_resident = count // len(residents)
    started = time.monotonic()

    async def resident(chat: int) -> None:
        for i in range(per_resident):
            await driver.post(chat, SCRIPT[i % len(SCRIPT)])

    posting = asyncio.gather(*(resident(c) for c in residents))
    done_at = None
    total = per_resident * len(residents)
    while done_at is None:
        await asyncio.sleep(0.2)
        if posting.done():
            posting.result()  # a driver's failure ends the run, loudly
        if await asyncio.to_thread(handled, url) >= total:
            done_at = time.monotonic()
    await posting
    return {"started": started, "handled_at": done_at, "total": total}


async def steady(driver: Driver, residents: list[int], rate: float, seconds: float) -> int:
    count = int(rate * seconds)
    start = time.monotonic()
    tasks = []
    for n in range(count):
        at = start + n / rate
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        chat = residents[n % len(residents)]
        turn = n // len(residents)
        tasks.append(asyncio.create_task(driver.post(chat, SCRIPT[turn % len(SCRIPT)])))
    await asyncio.gather(*tasks)
    return count


def wait_for_replies(fake: FakeBotProcess, driver: Driver, timeout: float) -> list[dict]:
    expected = sum(len(v) for v in driver.acks.values())
    deadline = time.monotonic() + timeout
    while True:
        sent = fake.messages()
        if len(sent) >= expected or time.monotonic() > deadline:
            return sent
        time.sleep(0.5)


def lags(driver: Driver, sent: list[dict]) -> tuple[list[float], dict[int, float]]:
    """Ack-to-reply lag of every update (matched in order per chat), and each resident's wait
    for its first reply."""
    replies: dict[int, list[float]] = defaultdict(list)
    for message in sent:
        replies[message["chat_id"]].append(message["at"])
    out, first = [], {}
    for chat, acks in driver.acks.items():
        got = replies.get(chat, [])
        for (_sent, acked), at in zip(acks, got, strict=False):
            out.append(at - acked)
        if got:
            first[chat] = got[0] - acks[0][1]
    return out, first


def run(label: str, url: str, processes: int, args: argparse.Namespace, model: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeBotProcess(scale=1) as fake:
        log = open(Path(tmp) / "serve.log", "ab")  # noqa: SIM115 - closed below
        bots = []
        try:
            for _ in range(processes):
                var = Path(tmp) / f"var{len(bots)}"
                (var / "nlu").mkdir(parents=True)
                for f in model.iterdir():
                    (var / "nlu" / f.name).write_bytes(f.read_bytes())
                bots.append(WargaServe(url, fake, var, log=log, workers=args.workers).start())
            asyncio.run(measure(label, url, processes, args, fake, bots))
        finally:
            for bot in bots:
                bot.stop()
            log.close()


async def measure(
    label: str,
    url: str,
    processes: int,
    args: argparse.Namespace,
    fake: FakeBotProcess,
    bots: list[WargaServe],
) -> None:
    name = f"{label}, {processes} process{'es' if processes > 1 else ''}"
    residents = list(range(100_000, 100_000 + args.residents))
    driver = Driver(bots)
    b = await burst(driver, url, residents, args.burst)
    sent = await asyncio.to_thread(wait_for_replies, fake, driver, 600)
    acked = [ack - s for v in driver.acks.values() for s, ack in v]
    all_lags, first = lags(driver, sent)
    times = sorted(m["at"] for m in sent)
    window = times[-1] - times[0] if len(times) > 1 else float("nan")
    stats = fake.stats()
    print(
        f"{name}: burst of {b['total']} updates from {len(residents)} residents: "
        f"ack p50 {1000 * pct(acked, 50):.1f} ms, p99 {1000 * pct(acked, 99):.1f} ms; "
        f"handled {b['total'] / (b['handled_at'] - b['started']):.0f} updates/s; "
        f"{len(sent)} replies at {len(sent) / window:.2f}/s = "
        f"{100 * len(sent) / window / LIMIT:.1f} % of {LIMIT:g}/s; "
        f"first reply p50 {statistics.median(first.values()):.1f} s, "
        f"worst resident {max(first.values()):.1f} s; "
        f"ack-to-reply max {max(all_lags):.1f} s; 429s {stats['too_many_requests']}; "
        f"retried posts {driver.failures}",
        flush=True,
    )
    if args.seconds <= 0:
        await driver.close()
        return
    fake.http.post("/_fake/reset")
    driver.acks.clear()
    count = await steady(driver, residents, args.rate, args.seconds)
    sent = await asyncio.to_thread(wait_for_replies, fake, driver, 120)
    steady_lags, _ = lags(driver, sent)
    stats = fake.stats()
    print(
        f"{name}: steady {args.rate:g} updates/s for {args.seconds:g} s ({count} updates): "
        f"ack-to-reply p50 {1000 * pct(steady_lags, 50):.0f} ms, "
        f"p99 {1000 * pct(steady_lags, 99):.0f} ms, max {1000 * max(steady_lags):.0f} ms; "
        f"{len(sent)} replies; 429s {stats['too_many_requests']}",
        flush=True,
    )
    await driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="steady updates/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady phase (0: none)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=None, help="warga serve --workers")
    parser.add_argument(
        "--postgres",
        default="",
        help="also run on this PostgreSQL server (a scratch database per run)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        t = time.perf_counter()
        Runtime(Settings(warga_var_dir=var)).nlu  # noqa: B018 - train once for every process
        print(f"NLU model ready in {time.perf_counter() - t:.1f} s", flush=True)
        for processes in args.processes:
            if not args.no_sqlite:
                with tempfile.TemporaryDirectory() as db:
                    run("SQLite", f"sqlite:///{db}/bench.sqlite3", processes, args, var / "nlu")
            if args.postgres:
                with scratch_postgres(args.postgres) as url:
                    run("PostgreSQL", url, processes, args, var / "nlu")


if __name__ == "__main__":
    main()
