import json
import time
from pathlib import Path

import pytest

from nlu.parser import Parser, load


@pytest.mark.parametrize(
    "text",
    [
        "kebakaran tolong",
        "tolong ada orang tenggelam di sungai siak",
        "tabrakan di simpang, ada korban berdarah",
        "ada maling lagi masuk rumah tetangga sekarang",
        "kabel listrik putus memercikkan api dekat anak2 main",
        "bau gas elpiji bocor di dapur tetangga",
        "ada anak terjebak di dalam rumah yang terbakar",
        "api!!",
    ],
)
def test_emergencies_are_darurat_even_when_written_in_few_words(parser, text):
    assert parser.parse(text).intent == "darurat"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("banjir selutut di jalan depan rumah", "lapor"),
        ("tawuran semalam di gang mawar, sekarang sepi", "lapor"),
        ("pohon tumbang menutup jalan", "lapor"),
        ("nomor damkar berapa ya?", "tanya"),
    ],
)
def test_the_same_topics_without_present_danger_are_not_darurat(parser, text, intent):
    res = parser.parse(text)
    assert res.intent != "darurat"
    assert res.intent == intent


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("halo", "id"),
        ("lapor", "id"),
        ("makasih min", "id"),
        ("jalan rusak", "id"),
        ("tolong", "id"),
        ("ok", "id"),
        ("thanks", "en"),
        ("hello", "en"),
        ("thank you", "en"),
        ("good morning", "en"),
        ("the road is broken", "en"),
        ("ambo nak malapor", "id"),
        ("piye kabare", "id"),
        ("你好", "other"),
        ("مرحبا", "other"),
        ("😀", "id"),
        ("12345", "id"),
    ],
)
def test_language_is_right_on_one_and_two_word_messages(parser, text, language):
    assert parser.parse(text).language == language


@pytest.mark.parametrize(
    "text", ["", "   ", "😀😀😀", "1234567", "?!", "x" * 5000, "jalan " * 1000]
)
def test_odd_inputs_give_a_parse_not_an_exception(parser, text):
    res = parser.parse(text)
    assert 0.0 <= res.confidence <= 1.0
    assert res.label
    json.dumps(res.to_dict())


def test_words_the_model_cannot_place_fall_back_to_asking(parser):
    res = parser.parse("")
    assert res.fallback
    threshold = parser.threshold
    for text in ["halo min", "jalan rusak parah di Jl. Paus, lubangnya dalam"]:
        res = parser.parse(text)
        assert res.fallback == (res.confidence < threshold)


def test_fallback_flag_follows_the_documented_threshold(parser):
    text = "hmm gitu deh"
    res = parser.parse(text)
    strict = Parser(parser.engine, threshold=1.0)
    lax = Parser(parser.engine, threshold=0.0)
    assert strict.parse(text).fallback and not lax.parse(text).fallback
    assert res.confidence < 1.0


def test_parse_reports_label_ranking_entities_and_json(parser):
    res = parser.parse("jalan berlubang di Jl. Paus kel Simpang Baru, tiket PKU-2026-000123")
    assert res.label == f"{res.intent}/{res.category}" if res.category else res.intent
    assert 1 <= len(res.ranking) <= 10
    probs = [p for _, p in res.ranking]
    assert probs == sorted(probs, reverse=True)
    types = {e.type: e.value for e in res.entities}
    assert types["nomor_tiket"] == "PKU-2026-000123"
    assert types["kelurahan"] == "Simpangbaru"
    d = res.to_dict()
    assert d["label"] == res.label and d["entities"][0]["start"] >= 0


def test_personal_data_are_entities_but_not_in_the_classifier_input(parser):
    res = parser.parse("hp saya 081234563210 nik 1471081205900003")
    assert {e.type for e in res.entities} == {"telepon", "nik"}


def test_greeting_report_and_status_are_told_apart(parser):
    assert parser.parse("selamat pagi min").intent == "salam"
    assert parser.parse("jalan rusak berlubang di Jl. Paus").label == "lapor/jalan"
    assert parser.parse("gimana status laporan PKU-2026-000123?").intent == "cek_status"


def test_model_is_cached_by_data_hash_and_rebuilt_when_the_data_changes(tiny_yaml, tmp_path):
    cache = tmp_path / "cache"
    first = load(tiny_yaml, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and first.info["examples"] == 24
    t0 = time.perf_counter()
    again = load(tiny_yaml, cache_dir=cache)
    assert time.perf_counter() - t0 < 1.0
    assert list(cache.glob("*.npz")) == files and again.info == first.info
    tiny_yaml.write_text(
        tiny_yaml.read_text(encoding="utf-8").replace(
            "- aspal amblas", "- aspal amblas\n    - jalan bergelombang"
        ),
        encoding="utf-8",
    )
    changed = load(tiny_yaml, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert changed.info["examples"] == 25


def test_tiny_model_understands_its_own_data(tiny_yaml, tmp_path):
    p = load(tiny_yaml, cache_dir=tmp_path / "c")
    assert p.parse("halo min").intent == "salam"
    assert p.parse("sampah numpuk di tps").label == "lapor/sampah"
    assert [e.value for e in p.parse("di simpang baru").entities] == ["Simpangbaru"]


def test_importing_nlu_loads_nothing():
    import subprocess
    import sys

    code = (
        "import sys, nlu, nlu.cli; "
        "bad = [m for m in ('sklearn', 'lingua', 'scipy') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == ""
