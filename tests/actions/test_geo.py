"""A pin gives its kelurahan: checked against shapely, an independent point-in-polygon."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
import shapely
import yaml
from shapely.geometry import Point, shape

from actions.city import CityFileError, load_city_file
from actions.domain import AreaLevel
from actions.geo import city_boundaries, kelurahan_at, kelurahan_code_at, load_boundaries

CITY = Path(__file__).resolve().parents[2] / "data" / "cities" / "pekanbaru.yml"
JAKARTA = (-6.2088, 106.8456)  # Monas


@pytest.fixture(scope="module")
def features(city):
    with city.boundaries_path.open(encoding="utf-8") as fh:
        return [f for f in json.load(fh)["features"] if f["properties"]["level"] == "kelurahan"]


@pytest.fixture(scope="module")
def shapes(features):
    return {f["properties"]["kode"]: shape(f["geometry"]) for f in features}


def shapely_codes(shapes, lat, lon) -> set[str]:
    return {code for code, g in shapes.items() if g.contains(Point(lon, lat))}


def test_the_outlines_cover_exactly_the_kelurahan_of_the_wilayah(city, features):
    assert sorted(f["properties"]["kode"] for f in features) == sorted(
        r.kode_kelurahan for r in city.wilayah
    )
    assert len(features) == 83


def test_a_point_inside_each_kelurahan_gives_that_kelurahan(session, city, shapes):
    names = {r.kode_kelurahan: r.kelurahan for r in city.wilayah}
    for code, g in shapes.items():
        p = g.representative_point()  # shapely's point surely inside the polygon
        area = kelurahan_at(session, city, p.y, p.x)
        assert area is not None, code
        assert (area.code, area.name, area.level) == (code, names[code], AreaLevel.KELURAHAN)
        # Its kecamatan comes with it.
        assert area.parent.code == code.rsplit(".", 1)[0]


def test_the_sources_own_label_points_give_their_kelurahan(city, features):
    for f in features:
        lon, lat = f["properties"]["centroid"]
        assert kelurahan_code_at(city, lat, lon) == f["properties"]["kode"]


def test_a_point_outside_the_city_gives_none(session, city, shapes):
    assert kelurahan_at(session, city, *JAKARTA) is None
    assert kelurahan_at(session, city, 0.0, 0.0) is None
    # Inside the city's bounding box but outside every kelurahan.
    outlines = city_boundaries(city)
    x0, y0, x1, y1 = outlines.kelurahan.bbox
    for lat, lon in [(y0, x0), (y1, x1), (y0, x1), (y1, x0)]:
        assert not shapely_codes(shapes, lat, lon)
        assert kelurahan_at(session, city, lat, lon) is None


def test_random_points_agree_with_shapely(city, shapes):
    kel = city_boundaries(city).kelurahan
    x0, y0, x1, y1 = kel.bbox
    rng = random.Random(2026)
    inside = 0
    for _ in range(3000):
        lat, lon = rng.uniform(y0, y1), rng.uniform(x0, x1)
        expected = shapely_codes(shapes, lat, lon)
        got = kelurahan_code_at(city, lat, lon)
        if expected:
            inside += 1
            assert got in expected, (lat, lon)
        else:
            assert got is None, (lat, lon)
    assert 1500 < inside < 2500  # the box is larger than the city


def shared_edges(features) -> list[tuple[str, str, tuple, tuple]]:
    """Edges that two kelurahan outlines have in common, vertex for vertex."""
    owners: dict[frozenset, set[str]] = defaultdict(set)
    for f in features:
        for polygon in f["geometry"]["coordinates"]:
            ring = [tuple(p) for p in polygon[0]]
            for a, b in zip(ring, ring[1:], strict=False):
                if a != b:
                    owners[frozenset((a, b))].add(f["properties"]["kode"])
    out = []
    for edge, codes in owners.items():
        if len(codes) == 2:
            a, b = sorted(edge)
            out.append((*sorted(codes), a, b))
    return sorted(out)


def test_points_just_either_side_of_a_shared_border_give_the_two_neighbours(city, features):
    edges = shared_edges(features)
    assert len(edges) > 50
    shapes = {f["properties"]["kode"]: shape(f["geometry"]) for f in features}
    checked = 0
    for code_a, code_b, (ax, ay), (bx, by) in edges[:: max(1, len(edges) // 40)]:
        length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
        if length < 2e-4:  # too short to step off cleanly
            continue
        mx, my = (ax + bx) / 2, (ay + by) / 2
        nx, ny = -(by - ay) / length * 2e-5, (bx - ax) / length * 2e-5  # ~2 m across
        sides = []
        for sx, sy in ((mx + nx, my + ny), (mx - nx, my - ny)):
            expected = shapely_codes(shapes, sy, sx)
            assert len(expected) == 1, (code_a, code_b)
            got = kelurahan_code_at(city, sy, sx)
            assert {got} == expected
            sides.append(got)
        assert sorted(sides) == [code_a, code_b]
        # On the border itself: one of the two, never none, never a third.
        assert kelurahan_code_at(city, my, mx) in (code_a, code_b)
        checked += 1
    assert checked >= 20


def test_an_overlap_of_two_simplified_outlines_goes_to_the_deeper_one(city, shapes):
    kel = city_boundaries(city).kelurahan
    x0, y0, x1, y1 = kel.bbox
    rng = random.Random(5)
    overlaps = 0
    for _ in range(40_000):
        lat, lon = rng.uniform(y0, y1), rng.uniform(x0, x1)
        both = shapely_codes(shapes, lat, lon)
        if len(both) < 2:
            continue
        overlaps += 1
        pt = Point(lon, lat)
        deepest = max(both, key=lambda c: shapes[c].boundary.distance(pt))
        assert kelurahan_code_at(city, lat, lon) == deepest
    assert overlaps >= 1


def test_holes_are_outside_and_a_polygon_works_like_a_multipolygon(tmp_path):
    square = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]
    hole = [[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]
    other = [[[[10, 10], [11, 10], [11, 11], [10, 10]]]]
    path = tmp_path / "b.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"level": "kelurahan", "kode": "A"},
                        "geometry": {"type": "Polygon", "coordinates": [square, hole]},
                    },
                    {
                        "type": "Feature",
                        "properties": {"level": "kelurahan", "kode": "B"},
                        "geometry": {"type": "MultiPolygon", "coordinates": other},
                    },
                ],
            }
        )
    )
    kel = load_boundaries(path).kelurahan
    ref = shape({"type": "Polygon", "coordinates": [square, hole]})
    ref_b = shape({"type": "Polygon", "coordinates": other[0]})
    for lat, lon in [(0.5, 0.5), (2, 2), (3.5, 2), (2, 0.5), (5, 5), (10.8, 10.5), (10.2, 10.5)]:
        got = kel.at(lat, lon)
        code = got.code if got else None
        if ref.contains(Point(lon, lat)):
            assert code == "A"
        elif shapely.contains(ref_b, Point(lon, lat)):
            assert code == "B"
        else:
            assert code is None, (lat, lon)


def test_boundaries_are_read_once(city):
    assert city_boundaries(city) is city_boundaries(city)
    assert load_boundaries(city.boundaries_path) is city_boundaries(city)


def _city_file(tmp_path: Path, boundaries) -> Path:
    raw = yaml.safe_load(CITY.read_text())
    raw["wilayah"]["file"] = str(CITY.parent / raw["wilayah"]["file"])
    if boundaries is None:
        del raw["wilayah"]["boundaries"]
    else:
        raw["wilayah"]["boundaries"] = boundaries
    path = tmp_path / "kota.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def test_the_city_file_names_its_boundaries_and_another_city_may_have_none(tmp_path):
    assert load_city_file(CITY).boundaries_path.name == "pekanbaru_boundaries.geojson"
    without = load_city_file(_city_file(tmp_path, None))
    assert without.boundaries_path is None
    assert kelurahan_code_at(without, 0.5074, 101.4478) is None


def test_a_missing_or_broken_boundaries_file_is_named(tmp_path):
    with pytest.raises(CityFileError, match="wilayah.boundaries: no such file"):
        load_city_file(_city_file(tmp_path, "nowhere.geojson"))
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"properties": {}}]}')
    city = load_city_file(_city_file(tmp_path, str(broken)))
    with pytest.raises(CityFileError, match="wilayah.boundaries: .*needs properties kode"):
        city_boundaries(city)
