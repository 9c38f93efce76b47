"""Shared fixtures: the real engine trained once from data/ into a temporary cache."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# pytest puts tests/ on sys.path, where this folder's name makes `nlu` an empty namespace
# package that hides the real one; a regular package anywhere on sys.path wins over it.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
if getattr(sys.modules.get("nlu"), "__file__", None) is None:
    for _name in [m for m in sys.modules if m == "nlu" or m.startswith("nlu.")]:
        del sys.modules[_name]

from bot.app import nlu_extra  # noqa: E402
from nlu.parser import Parser, load  # noqa: E402

DATA = ROOT / "data"


def pekanbaru_places() -> dict[str, dict[str, list[str]]]:
    """The city's wilayah as the bot passes them: canonical name -> extra aliases."""
    kec: dict[str, list[str]] = {}
    kel: dict[str, list[str]] = {}
    with (DATA / "wilayah" / "pekanbaru.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kec.setdefault(row["kecamatan"], [])
            kel.setdefault(row["kelurahan"], [])
    kec["Binawidya"].append("Tampan")
    return {"kecamatan": kec, "kelurahan": kel}


@pytest.fixture(scope="session")
def places() -> dict[str, dict[str, list[str]]]:
    return pekanbaru_places()


@pytest.fixture(scope="session")
def parser(tmp_path_factory: pytest.TempPathFactory, places) -> Parser:
    cache = tmp_path_factory.mktemp("nlu-cache")
    return load(
        DATA / "nlu.yml",
        extra=nlu_extra(DATA),
        places=places,
        cache_dir=cache,
        lexicon_dir=DATA / "lexicon",
        year=lambda: 2026,
    )


TINY = """\
version: "3.1"
nlu:
- intent: salam
  examples: |
    - halo
    - hai min
    - selamat pagi
    - pagi pak
    - assalamualaikum
    - halo admin
- intent: lapor/jalan
  examples: |
    - jalan rusak
    - jalan berlubang di [Jl. Paus](lokasi)
    - aspal amblas
    - lubang besar di jalan
    - jalan hancur parah
    - jalan retak di [Simpang Baru]{"entity": "kelurahan", "value": "Simpangbaru"}
- intent: lapor/sampah
  examples: |
    - sampah numpuk
    - sampah tidak diangkut
    - tps penuh sampah
    - sampah berserakan di jalan
    - truk sampah tidak datang
    - bau sampah busuk
- intent: darurat
  examples: |
    - kebakaran tolong
    - ada orang tenggelam
    - kecelakaan ada korban
    - rumah terbakar cepat
    - maling lagi beraksi tolong
    - kabel listrik memercik api
- lookup: kelurahan
  examples: |
    - Simpangbaru
    - Delima
"""


@pytest.fixture()
def tiny_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "nlu.yml"
    p.write_text(TINY, encoding="utf-8")
    return p
