"""Short answers (data/answers.yml) are read as what residents mean, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.answers import Answers
from nlu.rasa_yaml import read_nlu

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def answers() -> Answers:
    return Answers.load(DATA / "answers.yml")


@pytest.mark.parametrize(
    ("kind", "texts"),
    [
        (
            "yes",
            [
                "ya",
                "Iya kak",
                "iyaaa",
                "yoi",
                "ok",
                "okee",
                "sip",
                "boleh",
                "ya udh bener",
                "betul pak",
                "iyo",
                "nggih",
                "yes",
                "👍",
                "✅",
                "ya dong",
                "bener min",
            ],
        ),
        (
            "no",
            [
                "gak",
                "ga",
                "nggak",
                "enggak",
                "tdk",
                "tidak",
                "ndak",
                "kagak",
                "ora",
                "mboten",
                "no",
                "nope",
                "❌",
                "ga ada foto",
                "gk ada",
                "gada",
                "tak do foto",
                "tidak ada",
                "belum ada fotonya",
                "ga usah deh",
                "ndak ado",
            ],
        ),
        (
            "cancel",
            [
                "batal",
                "gak jadi",
                "ga jadi deh",
                "nggak jadi",
                "cancel",
                "batalkan aja",
                "tak jadi",
                "ora sido",
            ],
        ),
        ("skip", ["lewat", "lewati", "skip", "skip aja", "tanpa foto", "no photo"]),
        ("send", ["kirim", "kirim lah", "kirim aja", "send", "kirimkan", "teruskan"]),
        ("edit", ["ubah", "ganti", "edit", "ada yang salah", "salah"]),
        (
            "still_broken",
            [
                "belum beres",
                "blm beres",
                "masih rusak pak",
                "belum diperbaiki",
                "masih sama aja",
                "not fixed",
                "alun beres",
            ],
        ),
        ("biasa", ["biasa", "biaso", "biasa aja", "terbuka", "tampilkan nama saya"]),
        ("anonim", ["anonim", "anonim aja", "jangan tampilkan nama", "sembunyikan nama saya"]),
        ("rahasia", ["rahasia", "rahasiakan", "rahasia aja kak", "jangan dipublikasikan"]),
        ("join", ["ikut", "ikut aja", "gabung", "itu sama"]),
    ],
)
def test_each_kind_of_short_answer_in_the_ways_residents_write_it(answers, kind, texts):
    misread = {t: answers.kinds(t) for t in texts if kind not in answers.kinds(t)}
    assert not misread, misread


def test_a_cancel_is_never_just_no_and_no_is_never_a_cancel(answers):
    assert answers.kinds("gak jadi") == {"cancel"}
    for text in ("gak", "tdk", "nggak", "no", "ga ada"):
        assert "cancel" not in answers.kinds(text), text


def test_what_residents_want_to_start(answers):
    assert answers.want("mau lapor") == "lapor"
    assert answers.want("lapor pak") == "lapor"
    assert answers.want("sy mau tanya dong") == "tanya"
    assert answers.want("ada usulan min") == "aspirasi"
    assert answers.want("i want to report a problem") == "lapor"
    # With the matter itself in it, it is the matter, not a wish to start.
    for text in ("mau lapor jalan rusak di jl paus", "mau tanya cara bikin ktp", "laporan saya"):
        assert answers.want(text) is None, text


def test_no_report_question_proposal_or_emergency_is_taken_for_a_short_answer(answers):
    # Every example of a real matter in the training data (hundreds, in residents' words).
    data = read_nlu(DATA / "nlu.yml")
    matters = [
        ex.text
        for ex in data.examples
        if ex.intent in ("lapor", "tanya", "aspirasi", "darurat") and len(ex.text.split()) > 2
    ]
    assert len(matters) > 300
    taken = {t: answers.kinds(t) for t in matters if answers.kinds(t)}
    assert not taken, taken
