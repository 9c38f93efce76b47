"""Groups, followers and announcements in the store: audience, permissions, queue states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import broadcasts
from actions.domain import BroadcastState, DeliveryState, GroupKind, NotFound
from actions.models import Area, BroadcastDelivery, Resident
from actions.people import get_or_create_resident
from bot.responses import Responses

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
RESPONSES = Responses.load(Path(__file__).resolve().parents[2] / "data" / "responses")


def area(session: Session, code_or_name: str) -> Area:
    return broadcasts.find_area(session, code_or_name)


def person(session: Session, user: str) -> Resident:
    return get_or_create_resident(session, channel="telegram", platform_user_id=user)


def recipients(session: Session, group_id: int, area_id: int | None) -> set[str]:
    ids = session.scalars(broadcasts.audience(session, group_id=group_id, area_id=area_id))
    return {session.get_one(Resident, i).platform_user_id for i in ids}


@pytest.fixture
def city_group(session: Session):
    return broadcasts.add_group(
        session, code="pemko", name="Pemko Pekanbaru", kind=GroupKind.AGENCY, area_codes=["14.71"]
    )


@pytest.fixture
def rw_group(session: Session):
    return broadcasts.add_group(
        session,
        code="rw05-delima",
        name="RW 05 Delima",
        kind=GroupKind.RT_RW,
        area_codes=["kelurahan Delima"],
    )


def test_an_area_announcement_reaches_followers_of_the_area_and_the_areas_inside_it_once(
    session, city_group
):
    kota, binawidya = area(session, "14.71"), area(session, "kecamatan Binawidya")
    delima, tampan = area(session, "Delima"), area(session, "Tampan")  # Tampan: Payung Sekaki
    follows = {
        "city-only": [kota],
        "kec": [binawidya],
        "kel": [delima],
        "kec-and-kel": [binawidya, delima],
        "elsewhere": [tampan],
    }
    for user, areas in follows.items():
        for a in areas:
            assert broadcasts.follow_area(session, resident_id=person(session, user).id, area=a)
    fan = person(session, "group-fan")
    broadcasts.follow_group(session, resident_id=fan.id, group=city_group)
    blocked = person(session, "blocked")
    broadcasts.follow_area(session, resident_id=blocked.id, area=delima)
    blocked.blocked_at = NOW
    session.flush()

    assert recipients(session, city_group.id, binawidya.id) == {"kec", "kel", "kec-and-kel"}
    assert recipients(session, city_group.id, delima.id) == {"kel", "kec-and-kel"}
    assert recipients(session, city_group.id, kota.id) == set(follows)
    assert recipients(session, city_group.id, None) == {"group-fan"}
    assert broadcasts.count_audience(session, group_id=city_group.id, area_id=binawidya.id) == 3
    # Following twice is one follow.
    assert not broadcasts.follow_area(session, resident_id=person(session, "kel").id, area=delima)


def test_a_group_addresses_only_its_own_areas_and_only_its_managers_announce(
    session, rw_group, city_group
):
    manager, stranger = person(session, "ketua-rw"), person(session, "orang-lain")
    broadcasts.add_manager(session, group=rw_group, resident=manager)
    delima = area(session, "Delima")
    ok = broadcasts.create_broadcast(
        session, group=rw_group, author=manager, text="Kerja bakti Minggu", area=delima, now=NOW
    )
    assert ok.area_id == delima.id
    for wider in ("kecamatan Binawidya", "14.71", "Tampan"):
        with pytest.raises(broadcasts.BroadcastError) as err:
            broadcasts.create_broadcast(
                session,
                group=rw_group,
                author=manager,
                text="x",
                area=area(session, wider),
                now=NOW,
            )
        assert err.value.key == "umumkan.error_area"
    with pytest.raises(broadcasts.NotAllowed):
        broadcasts.create_broadcast(session, group=rw_group, author=stranger, text="x", now=NOW)
    with pytest.raises(broadcasts.NotAllowed):  # managing one group gives nothing on another
        broadcasts.create_broadcast(session, group=city_group, author=manager, text="x", now=NOW)
    # Cancelling: the group's manager or an admin; nobody else.
    with pytest.raises(broadcasts.NotAllowed):
        broadcasts.cancel_broadcast(session, ok, by=stranger, admin=False, now=NOW)
    assert ok.state is BroadcastState.SCHEDULED
    broadcasts.cancel_broadcast(session, ok, by=stranger, admin=True, now=NOW)
    assert ok.state is BroadcastState.CANCELLED


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"text": "   "}, "umumkan.error_empty"),
        ({"text": "x" * (broadcasts.MAX_TEXT + 1)}, "umumkan.error_too_long"),
        ({"text": "x" * 1100, "photo": "file-1"}, "umumkan.error_too_long"),
        ({"text": "x", "poll_options": ["ya"]}, "umumkan.error_poll"),
        ({"text": "x", "poll_options": ["a", "b", "c", "d", "e"]}, "umumkan.error_poll"),
        ({"text": "x", "link": "javascript:alert(1)"}, "umumkan.error_link"),
        ({"text": "x", "scheduled_at": NOW - timedelta(hours=1)}, "umumkan.error_past"),
    ],
)
def test_bad_announcements_are_refused_with_a_reason_and_nothing_queued(
    session, rw_group, kwargs, key
):
    with pytest.raises(broadcasts.BroadcastError) as err:
        broadcasts.create_broadcast(session, group=rw_group, author=None, now=NOW, **kwargs)
    assert err.value.key == key
    assert broadcasts.recent_broadcasts(session) == []
    # The reason can be told: the sentence exists and takes the error's details.
    assert RESPONSES.get("id", err.value.key, **err.value.params)


def test_the_link_in_the_text_becomes_the_link_and_areas_by_ambiguous_name_ask_for_a_code(
    session, rw_group
):
    b = broadcasts.create_broadcast(
        session,
        group=rw_group,
        author=None,
        text="Info lengkap: https://pekanbaru.go.id/info?a=1. Terima kasih",
        now=NOW,
    )
    assert b.link == "https://pekanbaru.go.id/info?a=1"
    with pytest.raises(broadcasts.BroadcastError) as ambiguous:  # kecamatan and kelurahan
        broadcasts.find_area(session, "Binawidya")
    assert ambiguous.value.key == "grup.error_area_ambiguous"
    assert "14.71.08" in ambiguous.value.params["choices"]
    with pytest.raises(broadcasts.BroadcastError) as unknown:
        broadcasts.find_area(session, "Atlantis")
    assert unknown.value.key == "grup.error_area_unknown"


def test_due_announcements_get_their_recipients_at_once_and_cancel_stops_the_rest(
    session, city_group
):
    delima = area(session, "Delima")
    for i in range(5):
        broadcasts.follow_area(session, resident_id=person(session, f"r{i}").id, area=delima)
    now_b = broadcasts.create_broadcast(
        session, group=city_group, author=None, text="Pemadaman", area=delima, now=NOW
    )
    later = broadcasts.create_broadcast(
        session,
        group=city_group,
        author=None,
        text="Besok",
        area=delima,
        scheduled_at=NOW + timedelta(days=1),
        now=NOW,
    )
    assert broadcasts.start_due(session, now=NOW) == [now_b.id]
    assert now_b.state is BroadcastState.SENDING and now_b.recipients == 5
    assert later.state is BroadcastState.SCHEDULED
    assert broadcasts.start_due(session, now=NOW) == []  # started once only

    claimed = broadcasts.claim(
        session,
        worker="w1",
        channels=["telegram"],
        limit=2,
        lease=timedelta(minutes=1),
        now=NOW,
    )
    assert len(claimed) == 2
    again = broadcasts.claim(
        session,
        worker="w2",
        channels=["telegram"],
        limit=10,
        lease=timedelta(minutes=1),
        now=NOW,
    )
    assert len(again) == 3 and not {c.delivery_id for c in claimed} & {
        c.delivery_id for c in again
    }
    broadcasts.mark(session, claimed[0].delivery_id, state=DeliveryState.SENT.value, sent_at=NOW)
    assert broadcasts.cancel_broadcast(session, now_b, by=None, admin=True, now=NOW) == 4
    progress = broadcasts.progress(session, now_b)
    assert progress.counts["sent"] == 1 and progress.counts["cancelled"] == 4
    assert broadcasts.finish(session, now=NOW) == []  # cancelled is not "done"
    states = session.scalars(
        select(BroadcastDelivery.state).where(BroadcastDelivery.broadcast_id == now_b.id)
    ).all()
    assert sorted(states) == ["cancelled"] * 4 + ["sent"]


def test_only_recipients_vote_and_a_new_tap_replaces_the_old(session, city_group):
    delima = area(session, "Delima")
    voter, outsider = person(session, "voter"), person(session, "outsider")
    broadcasts.follow_area(session, resident_id=voter.id, area=delima)
    b = broadcasts.create_broadcast(
        session,
        group=city_group,
        author=None,
        text="Jadwal posyandu?",
        area=delima,
        poll_options=["Pagi", "Sore"],
        now=NOW,
    )
    broadcasts.start_due(session, now=NOW)
    assert broadcasts.vote(session, broadcast_id=b.id, resident_id=voter.id, option=0) == "Pagi"
    assert broadcasts.vote(session, broadcast_id=b.id, resident_id=voter.id, option=1) == "Sore"
    with pytest.raises(broadcasts.NotAllowed):
        broadcasts.vote(session, broadcast_id=b.id, resident_id=outsider.id, option=0)
    with pytest.raises(NotFound):
        broadcasts.vote(session, broadcast_id=b.id, resident_id=voter.id, option=2)
    assert broadcasts.progress(session, b).poll == [("Pagi", 0), ("Sore", 1)]
