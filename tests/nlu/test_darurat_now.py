"""A life in danger now is darurat; ordinary floods, old damage and questions are not."""

from __future__ import annotations

import pytest

EMERGENCIES = [
    "banjir bandang di rumbai air naik cepat bgt rumah2 udh kerendam sampai atap",
    "gempa",
    "gempa!!",
    "ada gempa",
    "GEMPAAA",
    "tsunami",
    "banjir bandang",
    "rumah kebakaran",
    "ada yg tenggelam",
    "kecelakaan ada korban",
    "longsor nimpa rumah",
    "gempa barusan kenceng, plafon rumah jatuh",
    "air makin tinggi, kami terjebak di lantai dua",
    "banjir udh seleher orang dewasa, anak2 blm keluar",
    "tolong kirim perahu, kakek sy ga bisa keluar rumah",
    "tanah longsor menimbun dua rumah di tepi sungai",
    "ada orang keseret arus di parit besar",
    "earthquake right now, buildings shaking",
    "puting beliung barusan lewat, atap2 rumah beterbangan",
    "anak sy kecebur di danau belum ketemu",
    # two-word alarms
    "ada begal",
    "maling maling",
    "ada jambret",
    "ada tawuran",
    "TABRAKAN!!",
    "kecelakaan beruntun",
    "ambulans cepat",
    # water at roof height, people who cannot get out
    "air udah nyampe atap tolong kami",
    "air masuk rumah, ada lansia ga bisa keluar",
    # Minang: a car overturned, people trapped inside
    "ado oto tabaliak di jalan, urangnyo tajepit di dalam",
]

ORDINARY = [
    "selokan mampet tiap hujan banjir",
    "jalan tergenang banjir sebetis",
    "banjir lagi di perumahan kami, air masuk teras",
    "parit depan rumah meluap kalau hujan deras",
    "rumah sy retak akibat gempa",
    "bantuan korban banjir bandang blm sampai",
    "kalo gempa hrs ngapain",
    "pekanbaru termasuk daerah rawan gempa ga",
    "tolong dibuat jalur evakuasi banjir di kelurahan kami",
    "gempa kemarin bikin dinding sekolah retak",
    "tebing di pinggir jalan longsor sedikit, tolong dipasang turap",
    "sungai dangkal penuh sampah, airnya naik ke jalan tiap hujan",
    "banjir sedada di perumahan, kami butuh pompa",
    "ada simulasi tsunami di sekolah anak saya, itu resmi ga",
    # danger averted or past
    "pohon tumbang di jl. durian tadi pagi, untung ga ada yg ketimpa, tolong dipotong",
    "tiang listrik roboh tadi subuh, alhamdulillah ga ada yang kena",
    "kemarin ada kebakaran di gang mawar, puing2nya belum dibersihkan",
    "anak saya korban tabrak lari bulan lalu, pelakunya belum ditangkap",
    # a risk, a fear, a condition
    "hidran di pasar ga berfungsi, kalau ada kebakaran gimana",
    "kabel semrawut takut terjadi kebakaran",
    "sampah dibakar terus, bisa menyebabkan kebakaran",
    "dahan pohon rapuh, bahaya kalau tumbang menimpa pengendara",
    # paperwork and questions about emergency services
    "mau urus surat keterangan kebakaran buat klaim asuransi syaratnya apa",
    "mau tanya prosedur minta santunan korban kecelakaan",
    "apakah ada biaya kalau lapor ke damkar?",
    "pemadam kebakaran lambat datang kemarin, mohon dievaluasi",
    # news of an earthquake
    "gempa tadi terasa ga ya di pekanbaru",
    "ada info gempa hari ini?",
    # urgent, not dangerous
    "tolong dijawab!!!",
    "kak cek dm pliss",
    "tolong bls dm",
    # the fire brigade's name, traffic, a danger that has no victim yet
    "pos pemadam kebakaran terdekat dari rumbai di mana ya",
    "does the fire brigade also rescue cats from roofs?",
    "tiap sore terjebak macet di perlintasan kereta, mohon dibangun flyover",
    "tebing di belakang sekolah terancam longsor, mumpung belum ada korban tolong diturap",
    "motor bisa masuk gang kalau portal dibuka, tolong dibuka pak",
    # a long letter with one word of danger in it
    "Yth. Dinas PU, saya warga Sidomulyo Barat mau menyampaikan keluhan soal proyek pengecoran "
    "jalan di depan perumahan kami. Sudah dua bulan dikerjakan tanpa rambu dan tanpa jalur "
    "alternatif, pengendara malah terjebak sana sini, lalu lintas kacau setiap pagi dan sore. "
    "Kontraktornya tidak pernah kelihatan, pekerja datang siang dan pulang cepat. Kami mohon "
    "pengawasan dari dinas agar pekerjaan cepat selesai dan diberi rambu yang jelas. Atas "
    "perhatiannya kami ucapkan terima kasih.",
]


@pytest.mark.parametrize("text", EMERGENCIES)
def test_a_life_in_danger_now_is_darurat(parser, text):
    p = parser.parse(text)
    assert p.intent == "darurat", p
    assert p.confidence >= 0.9 and not p.fallback


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_floods_old_damage_and_questions_are_not_darurat(parser, text):
    assert parser.parse(text).intent != "darurat"


@pytest.mark.parametrize(
    "text",
    ["selokan mampet tiap hujan banjir", "jalan tergenang banjir sebetis"],
)
def test_ordinary_flood_complaints_stay_reports(parser, text):
    p = parser.parse(text)
    assert (p.intent, p.category) == ("lapor", "drainase_banjir")


def test_the_emergency_heldout_set_meets_the_target(parser):
    from pathlib import Path

    from nlu.evaluate import evaluate
    from nlu.rasa_yaml import read_nlu

    data = read_nlu(Path(__file__).resolve().parents[1] / "data" / "nlu_darurat_heldout.yml")
    assert sum(ex.intent == "darurat" for ex in data.examples) >= 20
    scores = evaluate(parser.parse, data.examples, known_labels=set(parser.labels))
    assert scores["missing_labels"] == {}
    assert scores["darurat_recall"] >= 0.95
    assert scores["darurat_precision"] >= 0.95
