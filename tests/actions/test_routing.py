"""Routing (category, area) -> agency: per-kecamatan override, city-wide rule, fallback."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from actions.city import load_city_file, sync_city
from actions.models import Agency, Area, Category, RoutingRule
from actions.tickets import resolve_agency


def _route(session, category: str, area_name: str | None) -> str:
    cat = session.scalar(select(Category).where(Category.code == category))
    area = session.scalar(select(Area).where(Area.name == area_name)) if area_name else None
    return resolve_agency(session, category=cat, area=area).code


def test_garbage_in_a_northern_kelurahan_goes_to_its_kecamatan_office(session):
    # Lembah Sari is a kelurahan of kecamatan Rumbai Timur.
    assert _route(session, "sampah", "Lembah Sari") == "KEC-RUMBAI-TIMUR"
    assert _route(session, "sampah", "Rumbai Timur") == "KEC-RUMBAI-TIMUR"


def test_garbage_elsewhere_goes_to_the_city_wide_agency(session):
    assert _route(session, "sampah", "Simpangbaru") == "DLHK"
    assert _route(session, "sampah", None) == "DLHK"


def test_the_override_applies_to_its_category_only(session):
    assert _route(session, "jalan", "Lembah Sari") == "PUPR"


def test_a_category_without_a_rule_goes_to_the_fallback(session, city, tmp_path):
    raw = yaml.safe_load(city.path.read_text())
    del raw["routing"]["categories"]["lainnya"]
    raw["wilayah"]["file"] = str(city.path.parent / raw["wilayah"]["file"])
    raw["wilayah"]["boundaries"] = str(city.path.parent / raw["wilayah"]["boundaries"])
    changed = tmp_path / "pekanbaru.yml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True))
    sync_city(session, city=load_city_file(changed))
    session.flush()
    assert (
        session.scalar(select(RoutingRule).join(Category).where(Category.code == "lainnya"))
        is None
    )
    assert _route(session, "lainnya", "Simpangbaru") == "DISKOMINFO"


def test_an_agency_dropped_from_the_file_is_kept_inactive_and_not_routed_to(
    session, city, tmp_path: Path
):
    raw = yaml.safe_load(city.path.read_text())
    raw["agencies"] = [a for a in raw["agencies"] if a["code"] != "KEC-RUMBAI-TIMUR"]
    del raw["routing"]["categories"]["sampah"]["kecamatan"]["Rumbai Timur"]
    raw["wilayah"]["file"] = str(city.path.parent / raw["wilayah"]["file"])
    raw["wilayah"]["boundaries"] = str(city.path.parent / raw["wilayah"]["boundaries"])
    changed = tmp_path / "pekanbaru.yml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True))
    sync_city(session, city=load_city_file(changed))
    gone = session.scalar(select(Agency).where(Agency.code == "KEC-RUMBAI-TIMUR"))
    assert gone is not None and not gone.active
    assert _route(session, "sampah", "Lembah Sari") == "DLHK"


def test_loading_the_city_twice_changes_nothing(session, city):
    def snapshot():
        return (
            sorted((a.code, a.name, a.parent_id) for a in session.scalars(select(Area))),
            sorted((a.code, a.active) for a in session.scalars(select(Agency))),
            sorted(
                (r.category_id, r.area_id, r.agency_id)
                for r in session.scalars(select(RoutingRule))
            ),
        )

    before = snapshot()
    sync_city(session, city=city)
    session.flush()
    assert snapshot() == before
    areas, agencies, rules = before
    assert len(areas) == 1 + 15 + 83
    assert len(rules) == 17 + 3
