"""The city file: Pekanbaru loads; a broken file names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actions.city import CityFileError, load_city_file
from actions.domain import TicketKind

CITY = Path(__file__).resolve().parents[2] / "data" / "cities" / "pekanbaru.yml"


def test_pekanbaru_has_15_kecamatan_83_kelurahan_and_17_categories():
    city = load_city_file(CITY)
    assert len({r.kode_kecamatan for r in city.wilayah}) == 15
    assert len(city.wilayah) == 83
    assert len(city.config.categories) == 17
    assert city.config.emergency[0].number == "112"
    places = city.places()
    assert "Tampan" in places["kecamatan"]["Binawidya"]
    assert "Simpangbaru" in places["kelurahan"]


def test_sla_targets_combine_the_default_and_the_category_override():
    cfg = load_city_file(CITY).config
    assert cfg.sla_for(TicketKind.LAPOR, "jalan").model_dump() == {
        "first_response": 3,
        "resolution": 60,
    }
    assert cfg.sla_for(TicketKind.TANYA, "jalan").model_dump() == {
        "first_response": 3,
        "resolution": 5,
    }


def _broken(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(CITY.read_text())
    raw["wilayah"]["file"] = str(CITY.parent / raw["wilayah"]["file"])
    raw["wilayah"]["boundaries"] = str(CITY.parent / raw["wilayah"]["boundaries"])
    change(raw)
    path = tmp_path / "kota.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def _set(path: str, value):
    def change(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value

    return change


def _drop(path: str):
    def change(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        del node[last]

    return change


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (
            _set("routing.categories.jalan", "PUPX"),
            "routing.categories.jalan",
            "unknown agency 'PUPX'",
        ),
        (
            _set("routing.categories.sampah.kecamatan", {"Rumbai Tengah": "DLHK"}),
            "routing.categories.sampah.kecamatan.Rumbai Tengah",
            "no kecamatan",
        ),
        (_drop("ticket_prefix"), "ticket_prefix", "Field required"),
        (_set("ticket_prefix", "pku-1"), "ticket_prefix", "should match pattern"),
        (_set("timezone", "Asia/Pekanbaru"), "timezone", "unknown time zone"),
        (
            _set("sla.default.lapor.resolution", "lima"),
            "sla.default.lapor.resolution",
            "valid integer",
        ),
        (_drop("sla.default.tanya"), "sla.default", "no target for kind 'tanya'"),
        (_set("holidays", [{"date": "2026-02-30", "name": "x"}]), "holidays.0.date", "valid date"),
        (_set("emergency", [{"name": "Damkar", "number": "113"}]), "emergency", "must be 112"),
        (_set("agencies.0.code", "DLHK"), "agencies", "'DLHK' appears twice"),
        (
            _set("sla.categories", {"jalanan": {"lapor": {"resolution": 3}}}),
            "sla.categories.jalanan",
            "unknown category",
        ),
        (_set("wilayah.file", "nowhere.csv"), "wilayah.file", "no such file"),
        (_set("routing.colour", "blue"), "routing.colour", "Extra inputs are not permitted"),
        (
            _set("whatsapp", {"templates": {"ticket.reply": {"name": "Balasan Petugas"}}}),
            "whatsapp.templates.ticket.reply.name",
            "should match pattern",
        ),
        (
            _set(
                "whatsapp",
                {"languages": {"en": "en_US"}, "templates": {"ticket.reply": {"name": "b"}}},
            ),
            "whatsapp.templates.ticket.reply.languages",
            "no language code for 'id'",
        ),
    ],
)
def test_a_broken_city_file_names_file_key_and_problem(tmp_path, change, key, problem):
    path = _broken(tmp_path, change)
    with pytest.raises(CityFileError) as err:
        load_city_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


def test_invalid_yaml_gives_the_line(tmp_path):
    path = tmp_path / "kota.yml"
    path.write_text("code: kota\nname: [unclosed\n")
    with pytest.raises(CityFileError, match=rf"^{path}: line \d+: not valid YAML"):
        load_city_file(path)


def test_a_missing_city_file_is_named(tmp_path):
    with pytest.raises(CityFileError, match="no such city file"):
        load_city_file(tmp_path / "atlantis.yml")


def test_a_wilayah_row_outside_the_city_is_refused(tmp_path):
    csv = tmp_path / "w.csv"
    csv.write_text(
        "kode_kecamatan,kecamatan,kode_kelurahan,kelurahan\n"
        "32.73.01,Sukasari,32.73.01.1001,Sarijadi\n"
    )
    path = _broken(tmp_path, _set("wilayah.file", str(csv)))
    with pytest.raises(CityFileError, match=r"wilayah\.file: w\.csv line 2: .*not inside"):
        load_city_file(path)
