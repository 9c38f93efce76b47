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
