"""Every kelurahan of the city, written joined, apart, in any case and with a typo."""

import csv
from pathlib import Path

import pytest

from nlu.entities import place_key

DATA = Path(__file__).resolve().parents[2] / "data"
with (DATA / "wilayah" / "pekanbaru.csv").open(encoding="utf-8") as _fh:
    ROWS = list(csv.DictReader(_fh))
KELURAHAN = sorted({r["kelurahan"] for r in ROWS})
KECAMATAN = {r["kecamatan"] for r in ROWS}

# How residents write apart the names Kemendagri writes as one word.
APART = {
    "Agrowisata": "agro wisata",
    "Airdingin": "air dingin",
    "Airputih": "air putih",
    "Bambukuning": "bambu kuning",
    "Bandarraya": "bandar raya",
    "Bencahlesung": "bencah lesung",
    "Binawidya": "bina widya",
    "Harjosari": "harjo sari",
    "Industritenayan": "industri tenayan",
    "Jadirejo": "jadi rejo",
    "Maharatu": "maha ratu",
    "Muarafajar Barat": "muara fajar barat",
    "Muarafajar Timur": "muara fajar timur",
    "Pematangkapau": "pematang kapau",
    "Perhentianmarpoyan": "perhentian marpoyan",
    "Rantaupanjang": "rantau panjang",
    "Rejosari": "rejo sari",
    "Sialangmunggu": "sialang munggu",
    "Sialangrampai": "sialang rampai",
    "Sialangsakti": "sialang sakti",
    "Sidomulyo Barat": "sido mulyo barat",
    "Sidomulyo Timur": "sido mulyo timur",
    "Simpangbaru": "simpang baru",
    "Sukajadi": "suka jadi",
    "Sukamaju": "suka maju",
    "Sukamulya": "suka mulya",
    "Sukaramai": "suka ramai",
    "Sungaiambang": "sungai ambang",
    "Sungaisibam": "sungai sibam",
    "Sungaiukai": "sungai ukai",
    "Tirtasiak": "tirta siak",
    "Tobekgodang": "tobek godang",
    "Tuahkarya": "tuah karya",
    "Tuahmadani": "tuah madani",
    "Tuahnegeri": "tuah negeri",
    "Wonorejo": "wono rejo",
}


def variants(name: str) -> list[str]:
    """The name as written officially, lower and upper case, joined and apart."""
    out = [name, name.lower(), name.upper(), name.replace(" ", "").lower()]
    if name in APART:
        out += [APART[name], APART[name].title()]
    return list(dict.fromkeys(out))


def typo(name: str) -> str:
    """One letter dropped inside the longest word (a slip of the thumb)."""
    words = name.lower().split()
    k = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[k]
    words[k] = w[: len(w) - 2] + w[len(w) - 1 :]
    return " ".join(words)


def test_the_table_of_names_written_apart_names_real_kelurahan():
    assert len(KELURAHAN) == 83
    assert set(APART) <= set(KELURAHAN)
    for name, apart in APART.items():
        assert apart.replace(" ", "") == name.replace(" ", "").lower()


def kelurahan_found(parser, text: str) -> list[str]:
    ents = parser.parse(text).entities
    return [e.value for e in ents if e.type == "kelurahan"]


@pytest.mark.parametrize("name", KELURAHAN)
def test_each_kelurahan_after_kel_is_that_kelurahan_however_written(parser, name):
    for written in variants(name):
        text = f"jalan rusak parah di kel. {written} tolong"
        assert kelurahan_found(parser, text) == [name], text


@pytest.mark.parametrize("name", KELURAHAN)
def test_each_kelurahan_after_di_is_that_kelurahan_or_its_kecamatan(parser, name):
    # Sukajadi, Binawidya, Tuahmadani and Kulim are also kecamatan: bare, either is right.
    # A name the training data uses for something else (Tirta Siak, the water company) is a
    # kelurahan only after "kel.": bare, it names none.
    suppressed = place_key(name) in parser.engine.meta["wilayah_suppress"]
    for written in variants(name):
        text = f"sampah numpuk di {written} sudah seminggu"
        ents = [(e.type, e.value) for e in parser.parse(text).entities if e.type != "lokasi"]
        wanted = [("kelurahan", name)]
        if suppressed:
            assert ("kelurahan", name) not in ents, text
        elif name in KECAMATAN:
            assert ents in (wanted, [("kecamatan", name)]), text
        else:
            assert ents == wanted, text


@pytest.mark.parametrize("name", [n for n in KELURAHAN if len(n.replace(" ", "")) >= 8])
def test_a_long_kelurahan_name_with_a_letter_missing_is_still_found(parser, name):
    text = f"lampu jalan mati di kel. {typo(name)}"
    assert kelurahan_found(parser, text) == [name], text


@pytest.mark.parametrize(
    "text",
    [
        "mandi pakai air dingin bikin masuk angin",
        "air dingin keluar dari keran, air panas tidak",
        "minum air putih yang banyak ya",
        "airnya dingin sekali pagi ini",
        "saya suka maju ke depan",
        "kota baru itu jauh dari sini",
        "kampung baru kami sudah ramai",
        "sungai sibuk dibersihkan warga",
        "kalau jadi rejeki ya syukur",
        "harga bambu naik lagi",
    ],
)
def test_ordinary_sentences_name_no_kelurahan(parser, text):
    ents = [(e.type, e.value) for e in parser.parse(text).entities]
    assert [e for e in ents if e[0] in ("kelurahan", "kecamatan")] == [], ents


def test_only_the_water_company_name_is_held_back_without_kel(parser):
    # "Tirta Siak" is PDAM Tirta Siak in most messages; "Jl. Air Dingin" no longer holds
    # back kelurahan Airdingin, nor "Jl. Umban Sari" kelurahan Umban Sari.
    assert parser.engine.meta["wilayah_suppress"] == ["tirtasiak"]
    assert kelurahan_found(parser, "pasang baru tirta siak lama gak") == []
    assert kelurahan_found(parser, "banjir di kelurahan tirta siak") == ["Tirtasiak"]
