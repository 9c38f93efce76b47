import pytest


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
