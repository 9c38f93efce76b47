"""Similar reports: the same place written alike, or the same words, without kelurahan or pin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from actions.domain import AreaLevel, Privacy, TicketKind
from actions.models import Area
from actions.people import get_or_create_resident
from actions.tickets import (
    SIMILAR_CANDIDATES,
    create_ticket,
    find_similar,
    place_words,
    same_place,
)
from nlu import lokasi_key
from tests.conftest import MONDAY

FIRST = "jalan berlubang besar di depan sekolah, sudah dua motor jatuh minggu ini"


@pytest.fixture
def report(session, city, resident):
    def make(
        location_text="Jl. Paus depan SD 12",
        description=FIRST,
        category="jalan",
        privacy=Privacy.BIASA,
        kelurahan=None,
        pin=None,
        now=MONDAY,
    ):
        area = None
        if kelurahan:
            area = session.scalar(select(Area).where(Area.name == kelurahan))
        return create_ticket(
            session,
            city=city.config,
            reporter=resident,
            kind=TicketKind.LAPOR,
            category_code=category,
            description=description,
            location_text=location_text,
            latitude=pin[0] if pin else None,
            longitude=pin[1] if pin else None,
            area=area,
            privacy=privacy,
            now=now,
        )

    return make


@pytest.fixture
def other(session):
    return get_or_create_resident(
        session, channel="telegram", platform_user_id="5002", display_name="Rudi"
    )


def similar(
    session,
    other,
    *,
    category="jalan",
    place="",
    words="",
    area=None,
    pin=None,
    now=MONDAY + timedelta(hours=2),
):
    return find_similar(
        session,
        category_code=category,
        area=area,
        latitude=pin[0] if pin else None,
        longitude=pin[1] if pin else None,
        now=now,
        exclude_reporter=other.id,
        location_text=place,
        description=words,
    )


@pytest.mark.parametrize(
    "place",
    ["Jl. Paus depan SD 12", "jalan paus depan sd 12", "JLN PAUS, depan SD 12!", "jl paus"],
)
def test_the_same_street_written_differently_is_offered(session, report, other, place):
    first = report()
    assert similar(session, other, place=place, words="jalannya hancur tolong") == first


def test_the_same_words_without_any_place_are_offered(session, report, other):
    first = report(location_text="")
    forwarded = FIRST.upper() + "!!"
    assert similar(session, other, words=forwarded) == first
    # A few words in common are not the same report.
    assert similar(session, other, words="jalan berlubang besar di depan pasar") is None


def test_the_same_street_in_another_category_is_not_offered(session, report, other):
    report()
    assert similar(session, other, category="sampah", place="Jl. Paus depan SD 12") is None
    assert similar(session, other, category="sampah", words=FIRST) is None


@pytest.mark.parametrize("place", ["Jl. Sudirman depan SD 12", "Jl. Pausi", "gg. Paus", "Paus"])
def test_another_street_is_not_offered(session, report, other, place):
    report()
    assert similar(session, other, place=place, words="jalan rusak") is None


def test_a_rahasia_report_is_never_offered(session, report, other):
    report(privacy=Privacy.RAHASIA)
    assert similar(session, other, place="Jl. Paus depan SD 12", words=FIRST) is None
    # Once a non-rahasia one exists, that one is offered.
    public = report(privacy=Privacy.ANONIM)
    assert similar(session, other, place="jalan paus", words=FIRST) == public


def test_only_open_recent_tickets_of_others_are_offered(session, report, other, resident):
    report(now=MONDAY - timedelta(days=40))
    assert similar(session, other, place="Jl. Paus") is None
    first = report()
    assert similar(session, other, place="Jl. Paus") == first
    # The reporter is not offered his own ticket.
    assert similar(session, resident, place="Jl. Paus") is None


def test_a_street_of_the_same_name_elsewhere_is_not_offered(session, report, other):
    # Jl. Melati in Tampan is not Jl. Melati in Sukajadi, nor 5 km away.
    report(location_text="Jl. Melati no 3", kelurahan="Tampan")
    sukajadi = session.scalar(
        select(Area).where(Area.name == "Sukajadi", Area.level == AreaLevel.KELURAHAN)
    )
    assert similar(session, other, place="jl melati no 3", area=sukajadi) is None
    assert similar(session, other, place="jl melati no 3") is not None
    report(location_text="Jl. Mawar", pin=(0.5074, 101.4478))
    assert similar(session, other, place="Jl. Mawar", pin=(0.55, 101.44)) is None
    assert similar(session, other, place="Jl. Mawar", pin=(0.509, 101.448)) is not None


def test_without_place_pin_or_enough_words_nothing_is_looked_up(session, report, other):
    report()
    assert similar(session, other) is None
    assert similar(session, other, words="jalan rusak") is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Jl. Paus", "jalan paus", True),
        ("JLN. PAUS!", "jl paus", True),
        ("gg mawar", "Gang Mawar", True),
        ("RT 04 RW 02", "rt 4 rw 2", True),
        ("Jl. Paus", "Jl. Paus ujung", True),
        ("Jl. Paus", "Jl. Pausa", False),
        ("gg 4", "gg 14", False),
        ("Paus", "Jl. Paus", False),
    ],
)
def test_place_texts_compare_as_the_nlu_keys_them(a, b, same):
    assert same_place(a, b) is same
    # One normalisation: the store's and the NLU's agree.
    assert " ".join(place_words(a)) == lokasi_key(a)


def test_the_same_place_is_found_behind_many_newer_reports_elsewhere(session, report, other):
    first = report(location_text="Gg. Ikhlas Jl. Durian", description="parit tersumbat")
    streets = ["Sudirman", "Arifin Ahmad", "Tuanku Tambusai", "Soekarno Hatta", "Riau"]
    for n in range(SIMILAR_CANDIDATES + 5):
        report(
            location_text=f"Jl. {streets[n % 5]} no {n}",
            description=f"lubang nomor {n} di jalan",
            now=MONDAY + timedelta(minutes=n + 1),
        )
    later = MONDAY + timedelta(hours=6)
    assert similar(session, other, place="gang ikhlas jalan durian", now=later) == first
    assert similar(session, other, place="Jl. Durian", now=later) == first
    assert similar(session, other, place="Jl. Duku", now=later) is None
