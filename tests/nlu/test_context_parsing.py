"""Short answers understood as residents mean them: a bare ticket number is a status check."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.parser import load

TICKET_4 = "PKU-2026-000004"

BARE_TICKETS = [
    ("PKU-2026-000004", TICKET_4),
    ("pku-2026-000004", TICKET_4),
    ("pku 2026 4", TICKET_4),
    ("pku2026000004", TICKET_4),
    ("PKU/2026/000004", TICKET_4),
    ("PKU-2026-4", TICKET_4),
    ("#4", TICKET_4),
    ("# 4", TICKET_4),
    ("tiket 4", TICKET_4),
    ("Tiket #4", TICKET_4),
    ("laporan #12", "PKU-2026-000012"),
    ("no 4", TICKET_4),
    ("Nomor 12.", "PKU-2026-000012"),
    ("  PKU-2026-000004  ", TICKET_4),
    ("PKU-2026-000004?", TICKET_4),
    ('"PKU-2026-000004"', TICKET_4),
    ("PKU-2026-000004 ??", TICKET_4),
    ("cek PKU-2026-000004", TICKET_4),
    ("gmn pku-2026-000004?", TICKET_4),
    ("PKU-2026-000004 gmn", TICKET_4),
    ("cek tiket 4 min", TICKET_4),
    ("laporan sy #12 udh sampe mana min", "PKU-2026-000012"),
    ("status #4 dong", TICKET_4),
    ("PKU-2025-000130 gimana kak", "PKU-2025-000130"),
]


@pytest.mark.parametrize(("text", "number"), BARE_TICKETS)
def test_a_message_that_is_only_a_ticket_number_checks_its_status(parser, text, number):
    p = parser.parse(text)
    assert p.intent == "cek_status", p
    assert p.confidence >= 0.9
    assert not p.fallback
    assert [e.value for e in p.entities if e.type == "nomor_tiket"] == [number]


def test_two_bare_ticket_numbers_are_both_kept(parser):
    p = parser.parse("#4 #12")
    assert p.intent == "cek_status" and not p.fallback
    numbers = [e.value for e in p.entities if e.type == "nomor_tiket"]
    assert numbers == [TICKET_4, "PKU-2026-000012"]


@pytest.mark.parametrize(
    "text",
    [
        "lubang 4 meter",
        "lubang di depan rumah no 4 makin dalam",
        "jalan di gang nomor 12 rusak parah",
        "lampu jalan no 4 dari ujung mati",
        "sampah numpuk 3 hari",
    ],
)
def test_a_number_inside_a_report_is_no_ticket(parser, text):
    p = parser.parse(text)
    assert p.intent == "lapor", p
    assert not [e for e in p.entities if e.type == "nomor_tiket"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("batalkan tiket 4", "batal"),
        ("ikuti #4", "ikuti"),
        ("#4 bintang 5", "nilai"),
    ],
)
def test_a_ticket_number_with_another_request_is_that_request(parser, text, intent):
    p = parser.parse(text)
    assert p.intent == intent, p
    assert [e.value for e in p.entities if e.type == "nomor_tiket"] == [TICKET_4]


def test_a_lone_digit_is_not_taken_for_a_ticket(parser):
    # "4" may be a rating or an answer to a question: ask rather than guess.
    p = parser.parse("4")
    assert p.fallback
    assert not [e for e in p.entities if e.type == "nomor_tiket"]


CITY_DATA = """\
version: "3.1"
nlu:
- intent: cek_status
  examples: |
    - cek status laporan saya
    - laporan saya sudah sampai mana
    - gimana laporan saya kemarin
    - status tiket saya
- intent: lapor/jalan
  examples: |
    - jalan rusak
    - aspal berlubang
    - jalan hancur parah
    - lubang besar di jalan
- intent: lapor/sampah
  examples: |
    - sampah numpuk
    - sampah tidak diangkut
    - tps penuh sampah
    - truk sampah tidak datang
- intent: salam
  examples: |
    - halo
    - selamat pagi
    - hai admin
    - assalamualaikum
"""


def test_the_ticket_prefix_and_year_come_from_the_city(tmp_path: Path):
    data = tmp_path / "nlu.yml"
    data.write_text(CITY_DATA, encoding="utf-8")
    parser = load(data, ticket_prefix="Dmi", cache_dir=tmp_path / "cache", year=lambda: 2031)
    for text in ("DMI-2031-000004", "dmi 2031 4", "#4", "tiket 4", "no 4"):
        p = parser.parse(text)
        assert p.intent == "cek_status" and not p.fallback, text
        assert [e.value for e in p.entities if e.type == "nomor_tiket"] == ["DMI-2031-000004"]
    p = parser.parse("PKU-2026-000004")
    # Another city's number is no ticket here: neither an entity nor a status check.
    assert not [e for e in p.entities if e.type == "nomor_tiket"]
    assert p.rule != "tiket" and p.intent != "cek_status"
