"""Announcements delivered through python-telegram-bot to a fake Bot API that enforces
Telegram's documented limits and errors (the emulator has none): pacing, 429, 403, escaping,
and a worker process stopped or killed mid-broadcast."""

from __future__ import annotations

import asyncio
import html
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy import select

from actions import broadcasts
from actions.domain import BroadcastState, DeliveryState, GroupKind
from actions.models import Broadcast, BroadcastDelivery, CivicGroup, Resident, utcnow
from actions.people import get_or_create_resident
from bot.broadcaster import Broadcaster
from bot.channels.telegram import CHANNEL, bot_sender
from tests.support.fake_bot_api import running

ROOT = Path(__file__).resolve().parents[2]


def setup_followers(assistant, n: int, *, first_chat: int = 1000) -> int:
    """n Telegram residents following kelurahan Delima; a group that may address it."""
    with assistant.sessions.begin() as s:
        group = broadcasts.add_group(
            s, code="pemko", name="Pemko Pekanbaru", kind=GroupKind.AGENCY, area_codes=["14.71"]
        )
        delima = broadcasts.find_area(s, "kelurahan Delima")
        for chat in range(first_chat, first_chat + n):
            r = get_or_create_resident(s, channel="telegram", platform_user_id=str(chat))
            broadcasts.follow_area(s, resident_id=r.id, area=delima)
        return group.id


def announce(assistant, group_id: int, text: str, **kwargs) -> int:
    with assistant.sessions.begin() as s:
        group = s.get(CivicGroup, group_id)
        b = broadcasts.create_broadcast(
            s,
            group=group,
            author=None,
            text=text,
            area=broadcasts.find_area(s, "kelurahan Delima"),
            **kwargs,
        )
        return b.id


def deliveries(assistant, broadcast_id: int) -> Counter[str]:
    with assistant.sessions() as s:
        return Counter(
            str(state)
            for state in s.scalars(
                select(BroadcastDelivery.state).where(
                    BroadcastDelivery.broadcast_id == broadcast_id
                )
            )
        )


async def deliver(assistant, fake, *, rate: float, seconds: float = 60, **kwargs) -> None:
    """Run one worker until every due announcement is sent (or `seconds` have passed)."""
    deadline = time.monotonic() + seconds
    async with bot_sender(fake.token, assistant.responses, api_url=fake.url) as sender:
        worker = Broadcaster(
            assistant.sessions, assistant.responses, {CHANNEL: sender}, rate=rate, **kwargs
        )
        while time.monotonic() < deadline:
            await worker.run_once()
            with assistant.sessions() as s:  # every announcement due is sent or cancelled
                left = s.scalar(
                    select(Broadcast.id).where(
                        Broadcast.state.in_([BroadcastState.SCHEDULED, BroadcastState.SENDING]),
                        Broadcast.scheduled_at <= utcnow(),
                    )
                )
            if left is None:
                return
            await asyncio.sleep(0.01)


def test_an_announcement_reaches_every_follower_once_escaped_with_its_link_and_poll(assistant):
    group_id = setup_followers(assistant, 12)
    text = 'https://bpbd.id Awas <b>banjir</b> & <a href="http://evil">klik</a> *tebal* [x](y)'
    broadcast_id = announce(assistant, group_id, text, poll_options=["Aman", "Tergenang"])
    with running(rate=30, scale=10) as fake:
        asyncio.run(deliver(assistant, fake, rate=290))
        sent = fake.state.messages
    assert sorted(m.chat_id for m in sent) == list(range(1000, 1012))  # each once
    header = assistant.responses.get("id", "umumkan.header", group="Pemko Pekanbaru")
    for m in sent:
        assert m.parse_mode == "HTML"
        # Our header is the only markup; the author's text arrives as they typed it.
        assert m.text == f"<b>{html.escape(header)}</b>\n{html.escape(text)}"
        keyboard = m.reply_markup["inline_keyboard"]
        assert keyboard[0][0]["url"] == "https://bpbd.id"
        assert [row[0]["callback_data"] for row in keyboard[1:]] == [
            f"poll:{broadcast_id}:0",
            f"poll:{broadcast_id}:1",
        ]
    assert deliveries(assistant, broadcast_id) == {"sent": 12}
    with assistant.sessions() as s:
        b = broadcasts.get_broadcast(s, broadcast_id)
        assert b.state.value == "done" and b.recipients == 12


def test_too_many_requests_holds_every_send_for_retry_after_and_nothing_is_lost(assistant):
    group_id = setup_followers(assistant, 120)
    broadcast_id = announce(assistant, group_id, "Uji batas")
    # The worker is told 200/s; the server allows 30/s after a burst of 30: it will hear 429.
    with running(rate=30) as fake:
        asyncio.run(deliver(assistant, fake, rate=200))
        sent, refused = fake.state.messages, fake.state.refused
    assert refused[429] >= 1
    # After a 429 the worker sent nothing until the announced time had passed.
    times = [m.at for m in sent]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.9
    assert Counter(m.chat_id for m in sent) == Counter(range(1000, 1120))  # none twice, none lost
    assert deliveries(assistant, broadcast_id) == {"sent": 120}


def test_a_resident_who_blocked_the_bot_is_marked_and_never_retried(assistant):
    group_id = setup_followers(assistant, 10)
    broadcast_id = announce(assistant, group_id, "Info")
    blocked = {1003, 1007}
    with running(rate=30, scale=10, blocked=blocked) as fake:
        asyncio.run(deliver(assistant, fake, rate=290))
        first_refusals = fake.state.refused[403]
        # A later announcement does not even try them: they are out of the audience.
        second = announce(assistant, group_id, "Info lagi")
        asyncio.run(deliver(assistant, fake, rate=290))
        assert fake.state.refused[403] == first_refusals == len(blocked)
    assert deliveries(assistant, broadcast_id) == {"sent": 8, "blocked": 2}
    assert deliveries(assistant, second) == {"sent": 8}
    with assistant.sessions() as s:
        marked = s.scalars(
            select(Resident.platform_user_id).where(Resident.blocked_at.is_not(None))
        ).all()
    assert sorted(marked) == ["1003", "1007"]


def test_server_errors_are_retried_with_backoff(assistant, clock):
    group_id = setup_followers(assistant, 3)
    broadcast_id = announce(assistant, group_id, "Info")
    with running(rate=30, scale=10, fail_chats={1001: 1}) as fake:
        asyncio.run(deliver(assistant, fake, rate=290, seconds=3))  # 1001 waits 15 s
        assert deliveries(assistant, broadcast_id) == {"sent": 2, "pending": 1}  # backing off
        with assistant.sessions() as s:
            d = s.scalars(
                select(BroadcastDelivery).where(BroadcastDelivery.state == DeliveryState.PENDING)
            ).one()
            assert d.attempts == 1 and "Bad Gateway" in d.last_error
        with assistant.sessions.begin() as s:  # the backoff has passed
            s.get_one(BroadcastDelivery, d.id).next_attempt_at = d.next_attempt_at.replace(
                year=2000
            )
        asyncio.run(deliver(assistant, fake, rate=290))
        assert Counter(m.chat_id for m in fake.state.messages) == Counter([1000, 1001, 1002])


def test_two_workers_together_keep_to_one_rate(assistant):
    n = 900  # several batches of 200: both workers take part
    group_id = setup_followers(assistant, n)
    broadcast_id = announce(assistant, group_id, "Dua pekerja")

    async def both(fake) -> None:
        await asyncio.gather(
            deliver(assistant, fake, rate=290), deliver(assistant, fake, rate=290)
        )

    with running(rate=30, scale=10) as fake:
        asyncio.run(both(fake))
        sent, refused = fake.state.messages, fake.state.refused
    assert Counter(m.chat_id for m in sent) == Counter(range(1000, 1000 + n))
    assert refused[429] == 0  # shared slots: together they kept to 290/s, under 300/s
    assert deliveries(assistant, broadcast_id) == {"sent": n}
    with assistant.sessions() as s:
        workers = set(s.scalars(select(BroadcastDelivery.claimed_by)))
    assert len(workers) == 2


# -- a worker process stopped or killed mid-broadcast ---------------------------------------


def worker(engine_url: str, fake, rate: float, log: BinaryIO) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": engine_url,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.url,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "broadcast", "worker"]
        + ["--rate", str(rate)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def wait_for(fake, count: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(fake.state.messages) < count:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_worker_stopped_mid_broadcast_and_restarted_skips_nobody(
    assistant, loaded, sig, tmp_path
):
    """SIGTERM: the message in hand is finished and recorded, so nobody gets it twice.
    SIGKILL: a message sent but not yet recorded goes again: at most one per kill."""
    n = 240
    group_id = setup_followers(assistant, n)
    broadcast_id = announce(assistant, group_id, "Pemadaman listrik Selasa 09:00-12:00")
    url = loaded.url.render_as_string(hide_password=False)
    kills, log = 0, tmp_path / "worker.log"
    with running(rate=30, scale=5) as fake, log.open("ab") as sink:  # 150/s
        for stop_at in (40, 120):
            proc = worker(url, fake, rate=140, log=sink)
            wait_for(fake, stop_at, log)
            proc.send_signal(sig)
            proc.wait(timeout=30)
            kills += 1
            assert len(fake.state.messages) < n, "the kill came after the end: test too slow"
        proc = worker(url, fake, rate=140, log=sink)
        try:
            deadline = time.monotonic() + 90
            while deliveries(assistant, broadcast_id).get("sent", 0) < n:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        counts = Counter(m.chat_id for m in fake.state.messages)
    assert set(counts) == set(range(1000, 1000 + n))  # no gap
    twice = sum(c - 1 for c in counts.values())
    if sig is signal.SIGTERM:
        assert twice == 0
    else:
        assert twice <= kills
    assert deliveries(assistant, broadcast_id) == {"sent": n}


def test_an_announcement_with_a_photo_goes_as_one_photo_with_its_caption(assistant):
    group_id = setup_followers(assistant, 2)
    announce(assistant, group_id, "Foto banjir <hari ini>", photo="AgACAgUAAxkBAAIBQ2Zm")
    with running(rate=30, scale=10) as fake:
        asyncio.run(deliver(assistant, fake, rate=290))
        sent = fake.state.messages
    assert [m.method.lower() for m in sent] == ["sendphoto", "sendphoto"]
    assert all(m.photo == "AgACAgUAAxkBAAIBQ2Zm" for m in sent)
    assert all(m.text.endswith(html.escape("Foto banjir <hari ini>")) for m in sent)
