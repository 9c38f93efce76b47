import pytest

from nlu.entities import Gazetteer, find_personal, plausible_nik, redact
from nlu.tickets import TicketFinder


@pytest.fixture(scope="module")
def tickets() -> TicketFinder:
    return TicketFinder("PKU", year=lambda: 2026)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("cek PKU-2026-000123 dong", "PKU-2026-000123"),
        ("status pku2026000123?", "PKU-2026-000123"),
        ("laporan PKU 2025 77 gmn", "PKU-2025-000077"),
        ("PKU/2026/000146", "PKU-2026-000146"),
        ("tiket 123 udah sampai mana", "PKU-2026-000123"),
        ("tolong cek #123", "PKU-2026-000123"),
        ("no laporan 000123", "PKU-2026-000123"),
        ("nomor tiket: 45", "PKU-2026-000045"),
        ("ticket no. 2025-000777", "PKU-2025-000777"),
    ],
)
def test_ticket_number_in_every_written_form_normalises_to_the_canonical_number(
    tickets, text, value
):
    (ent,) = tickets.find(text)
    assert ent.type == "nomor_tiket" and ent.value == value
    assert text[ent.start : ent.end] == ent.text


@pytest.mark.parametrize("text", ["laporan saya 3 hari lalu", "sudah 2 kali lapor", "jam 10"])
def test_counts_of_days_and_times_are_not_ticket_numbers(tickets, text):
    assert tickets.find(text) == []


def test_ticket_prefix_comes_from_the_city():
    (ent,) = TicketFinder("BDG", year=lambda: 2027).find("tiket 9")
    assert ent.value == "BDG-2027-000009"


@pytest.fixture(scope="module")
def gazetteer(places) -> Gazetteer:
    return Gazetteer(places, common_words={"simpang", "baru", "jalan"})


@pytest.mark.parametrize(
    ("text", "etype", "value"),
    [
        ("banjir di Simpang Baru", "kelurahan", "Simpangbaru"),
        ("banjir di simpangbaru", "kelurahan", "Simpangbaru"),
        ("warga Tuah Madani", "kecamatan", "Tuahmadani"),
        ("warga tuahmadani", "kecamatan", "Tuahmadani"),
        ("kec. Lima Puluh", "kecamatan", "Limapuluh"),
        ("di kelurahan Tobek Godang", "kelurahan", "Tobekgodang"),
        ("di Marpoyan Damay", "kecamatan", "Marpoyan Damai"),  # typo
        ("di Sidomulio Timur", "kelurahan", "Sidomulyo Timur"),  # typo
        ("kec. Tampan", "kecamatan", "Binawidya"),  # the old kecamatan name
        ("kelurahan Tampan", "kelurahan", "Tampan"),
        ("di Suka Ramai", "kelurahan", "Sukaramai"),
    ],
)
def test_wilayah_names_match_with_spelling_variants_and_typos(gazetteer, text, etype, value):
    found = gazetteer.find(text)
    assert [(e.type, e.value) for e in found] == [(etype, value)]
    assert text[found[0].start : found[0].end] == found[0].text


def test_common_words_are_not_fuzzy_matched_to_places(gazetteer):
    assert gazetteer.find("jalan rusak parah sekali tolong") == []


def test_phone_numbers_in_local_and_international_forms_are_found():
    found = find_personal("hub 0812-3456-3210 atau +62 813 1234 5678 atau 6285212345678")
    assert [e.value for e in found] == ["+6281234563210", "+6281312345678", "+6285212345678"]
    assert all(e.type == "telepon" for e in found)


def test_nik_needs_a_province_code_and_a_birth_date():
    assert plausible_nik("1471084105900003")  # born 1 May 1990, a woman (+40)
    assert not plausible_nik("9971081205900003")  # no such province
    assert not plausible_nik("1471083213900003")  # month 13
    (ent,) = find_personal("NIK saya 1471081205900003 ya")
    assert (ent.type, ent.value) == ("nik", "1471081205900003")


def test_redact_hides_phone_and_nik_but_keeps_the_rest():
    text = "sy Budi, hp 0812-3456-3210, nik 1471081205900003, jalan rusak"
    assert redact(text) == "sy Budi, hp 0812-****-3210, nik 1471************, jalan rusak"
    assert redact(text, phone="[HP]", nik="[NIK]") == "sy Budi, hp [HP], nik [NIK], jalan rusak"
    assert redact("tidak ada data pribadi") == "tidak ada data pribadi"
