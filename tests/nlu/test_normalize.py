from pathlib import Path

import pytest

from nlu.normalize import Normalizer, load_lexicon

LEXICON = Path(__file__).resolve().parents[2] / "data" / "lexicon"


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer(load_lexicon(LEXICON))


def test_elongated_words_shrink_to_the_dictionary_word(norm):
    assert norm.normalize("bangettt") == norm.normalize("banget") == "sangat"
    assert norm.normalize("tolonggg") == "tolong"
    assert norm.normalize("maaaaf") == "maaf"


def test_reduplication_with_a_digit_is_written_out(norm):
    assert norm.normalize("jalan bolong2") == "jalan bolong bolong"
    assert norm.normalize("lubang2nya") == "lubang lubangnya"
    assert norm.normalize("rt2") == "rt2"  # an RT number, not a reduplication


def test_project_overrides_win_over_indocollex(norm):
    assert norm.normalize("kk") == "kk"  # Kartu Keluarga, not kakak
    assert norm.normalize("min") == "admin"
    assert norm.normalize("ok") == "oke"
    assert norm.normalize("follow up") == "follow up"
    assert norm.normalize("bgt") == "sangat"  # not "sekali" (once)
    assert norm.normalize("batalin") == "batalkan"
    assert norm.normalize("bentar") == "sebentar"


def test_indocollex_resolves_everyday_slang(norm):
    assert norm.normalize("gk ada yg dtg") == "tidak ada yang datang"


def test_hashtags_and_mentions_are_split_into_known_words(parser):
    norm = parser.engine.normalizer
    assert norm.normalize("#JalanRusak") == "# jalan rusak"
    said = norm.normalize("@pemkotpekanbaru #sampahnumpuk")
    assert said == "@ pemkot pekanbaru # sampah menumpuk"
    # Only whole splits into known words of three letters or more; other words stay whole.
    assert norm.normalize("#xqzvbnmw") == "# xqzvbnmw"
    assert norm.normalize("jalanrusak") == "jalanrusak"


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("banyune ora ngalir", "airnya tidak mengalir"),
        ("aia indak ado", "air tidak ada"),
        ("dalane rusak wis suwe", "jalannya rusak sudah suwe"),
        ("tak ada air kat rumah", "tidak ada air di rumah"),
        ("sugeng enjing", "selamat pagi"),
        ("di pku", "di pekanbaru"),
    ],
)
def test_malay_minang_and_javanese_words_are_read_as_indonesian(norm, written, meant):
    assert norm.normalize(written) == meant
