import pytest

from nlu.entities import Entity
from nlu.lokasi import PLACE_TEXT_LIMIT, lokasi_key, place_text


def lokasi(parser, text):
    return [e.text for e in parser.parse(text).entities if e.type == "lokasi"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jalan rusak di Jl. Kartama tolong", ["Jl. Kartama"]),
        ("lampu mati di jln tuanku tambusai", ["jln tuanku tambusai"]),
        ("parit mampet di gang Sepakat RT 04 RW 02", ["gang Sepakat RT 04 RW 02"]),
        ("sampah numpuk di RT 02 RW 05", ["RT 02 RW 05"]),
        ("trotoar di Jl. Sudirman dpn Ramayana pecah", ["Jl. Sudirman", "Ramayana"]),
        ("banjir di perumahan Griya Hangtuah", ["perumahan Griya Hangtuah"]),
        ("macet di simpang Jl. Arifin Ahmad - Jl. Paus", ["simpang Jl. Arifin Ahmad - Jl. Paus"]),
    ],
)
def test_places_with_street_gang_rt_and_landmark_patterns_are_found(parser, text, expected):
    assert lokasi(parser, text) == expected


# ---------------------------------------------------------------- places in long reports


def letter(body: str) -> str:
    """A report as residents write them to the city (LAPOR! style), long enough for the model
    of long messages."""
    return f"Yth. Dinas Pekerjaan Umum Kota Pekanbaru, {body} Mohon ditindaklanjuti, terima kasih"


@pytest.mark.parametrize(
    ("body", "place"),
    [
        # samping / belakang / seberang / sekitar + a landmark written in lower case
        (
            "lampu jalan di samping masjid al ikhlas mati sejak dua minggu sehingga jalan sangat "
            "gelap dan rawan kejahatan.",
            "masjid al ikhlas",
        ),
        (
            "sampah menumpuk di belakang masjid nurul iman sudah dua minggu dan baunya sangat "
            "mengganggu warga sekitar.",
            "masjid nurul iman",
        ),
        (
            "banyak pedagang berjualan di bahu jalan di seberang masjid nurul huda sehingga "
            "menimbulkan kemacetan setiap sore.",
            "masjid nurul huda",
        ),
        (
            "parkir liar di sekitar Alfamart Jalan Srikandi membuat jalan menyempit dan macet "
            "setiap sore hari.",
            "Alfamart Jalan Srikandi",
        ),
        # junctions: bundaran, pertigaan, perempatan, simpang + a name
        (
            "kemacetan di bundaran tugu zapin setiap sore semakin parah karena banyak kendaraan "
            "yang parkir di bahu jalan.",
            "bundaran tugu zapin",
        ),
        (
            "jalan utama di pertigaan pasar buah rusak parah dan tergenang air setiap hujan "
            "sehingga banyak kendaraan terjebak.",
            "pertigaan pasar buah",
        ),
        (
            "pengendara sering menerobos lampu merah di simpang pasar buah sehingga sering "
            "terjadi kecelakaan.",
            "simpang pasar buah",
        ),
        (
            "Di pertigaan Jalan Pepaya dan Jalan Durian ada lubang besar yang sering "
            "menyebabkan pengendara motor terjatuh pada malam hari.",
            "pertigaan Jalan Pepaya",
        ),
        (
            "jalan di perempatan pasar pagi arengka rusak parah dan tergenang air setiap hujan "
            "sehingga banyak kendaraan terjebak.",
            "perempatan pasar pagi arengka",
        ),
    ],
)
def test_a_long_report_names_its_place_by_a_landmark_or_a_junction(parser, body, place):
    assert place in lokasi(parser, letter(body))


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (
            "YTH. DINAS PUPR, LAMPU JALAN DI SEKITAR MASJID AL IKHLAS MATI SEMUA SEHINGGA WARGA "
            "TAKUT KELUAR MALAM. MOHON SEGERA DIPERBAIKI, TERIMA KASIH",
            "MASJID AL IKHLAS",
        ),
        (
            "YTH. DINAS PUPR, JALAN DI PERTIGAAN PASAR BUAH BERLUBANG BESAR DAN SERING MEMBUAT "
            "PENGENDARA TERJATUH. MOHON SEGERA DIPERBAIKI, TERIMA KASIH",
            "PERTIGAAN PASAR BUAH",
        ),
    ],
)
def test_a_long_report_in_capitals_names_its_place(parser, text, place):
    assert place in lokasi(parser, text)


def test_a_wilayah_after_a_landmark_in_a_report_stays_the_wilayah_and_the_word_alone_no_place(
    parser,
):
    text = letter(
        "Petugas di puskesmas limapuluh tidak ramah dan sering datang terlambat sehingga pasien "
        "harus menunggu lama."
    )
    ents = parser.parse(text).entities
    assert [(e.type, e.value) for e in ents] == [("kecamatan", "Limapuluh")]


def test_places_one_by_another_in_a_report_are_two_places(parser):
    text = letter(
        "banyak angkot yang ngetem sembarangan di jalan kaharuddin nasution depan Pasar Pagi "
        "Arengka sehingga menyebabkan kemacetan setiap sore hari."
    )
    places = lokasi(parser, text)
    assert "jalan kaharuddin nasution" in places
    assert not any("depan" in p for p in places)


def test_the_word_jalan_alone_is_not_a_place(parser):
    assert lokasi(parser, "jalan rusak parah") == []


def test_a_kelurahan_after_a_street_keyword_is_the_street(parser):
    ents = parser.parse("jalan berlubang di Jl. Air Dingin").entities
    assert [(e.type, e.text) for e in ents] == [("lokasi", "Jl. Air Dingin")]


def test_a_kelurahan_after_a_place_stays_a_kelurahan(parser):
    ents = parser.parse("jalan di perumahan Griya Hangtuah Tangkerang Timur hancur").entities
    assert [(e.type, e.value) for e in ents] == [
        ("lokasi", "perumahan Griya Hangtuah"),
        ("kelurahan", "Tangkerang Timur"),
    ]


# ---------------------------------------------------------------- the place text of a report


def place(parser, text):
    return place_text(text, parser.parse(text).entities)


@pytest.mark.parametrize(
    "text",
    [
        "gg. mawar jl. delima ujung",
        "jalan rusak di gg. mawar jl. delima ujung, tolong",
        "Gg. Mawar Jl. Delima Ujung banjir",
    ],
)
def test_a_gang_off_a_street_named_like_a_kelurahan_is_one_whole_place(parser, text):
    ents = parser.parse(text).entities
    assert [e.type for e in ents] == ["lokasi"]
    assert lokasi_key(place_text(text, ents)) == "gang mawar jalan delima ujung"


def test_two_places_apart_are_both_kept(parser):
    text = "gg. mawar banjir lagi, airnya sampai ke jl. delima ujung"
    assert place(parser, text) == "gg. mawar, jl. delima ujung"


@pytest.mark.parametrize(
    "unit",
    [
        "jalan rusak di jl. paus, tolong diperbaiki segera ya pak. ",
        "Jl. Paus rusak ",
        "jl. paus ",
        "JALAN PAUS!!! lubang di jl paus. ",
    ],
)
def test_a_long_message_repeating_a_street_gives_that_street_once(parser, unit):
    # Whole repetitions only: a message cut at 3,000 characters after "jl pau" names a street
    # "pau" as written, which is another place.
    text = unit * (3000 // len(unit))
    assert lokasi_key(place(parser, text)) == "jalan paus"


def test_many_different_places_are_cut_to_whole_places_within_the_limit(parser):
    streets = ["Paus", "Arifin Ahmad", "Sudirman", "Tuanku Tambusai", "Kartama", "Hangtuah"]
    text = ". ".join(f"lubang di Jl. {s} gang {n} parah" for n in range(1, 9) for s in streets)
    joined = place(parser, text)
    assert 150 < len(joined) <= PLACE_TEXT_LIMIT
    assert all(p in text for p in joined.split(", "))


def test_one_place_longer_than_the_limit_is_cut_at_a_word():
    text = "Perumahan " + " ".join(f"Blok{i}" for i in range(80))
    ent = Entity("lokasi", text, 0, len(text), text)
    cut = place_text(text, [ent])
    assert len(cut) <= PLACE_TEXT_LIMIT and cut.endswith("…")
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "


def test_neighbouring_places_are_one_and_a_later_fuller_mention_wins(parser):
    assert (
        place(parser, "trotoar di Jl. Sudirman dpn Ramayana pecah") == "Jl. Sudirman dpn Ramayana"
    )
    text = "Jl. Paus rusak, sudah lapor minggu lalu. sekarang jalan paus ujung makin parah"
    assert place(parser, text) == "jalan paus ujung"


def test_a_place_is_at_most_a_few_parts_long(parser):
    text = "jl. paus " * 300
    assert all(len(e.text) < 150 for e in parser.parse(text).entities)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Jl. Paus", "jalan paus"),
        ("JLN. PAUS!", "jl paus"),
        ("gg mawar", "Gang Mawar"),
        ("RT 04 RW 02", "rt 4 rw 2"),
        ("Jl. Tuanku  Tambusai,", "jalan tuanku tambusai"),
    ],
)
def test_the_same_place_written_differently_has_one_key(a, b):
    assert lokasi_key(a) == lokasi_key(b)


@pytest.mark.parametrize(("a", "b"), [("Jl. Paus", "Jl. Paus Ujung"), ("gg 4", "gg 14")])
def test_different_places_have_different_keys(a, b):
    assert lokasi_key(a) != lokasi_key(b)
