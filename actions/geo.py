"""Which kelurahan a location pin falls in: point in polygon over the city's boundaries.

The boundaries are a GeoJSON FeatureCollection (RFC 7946: `[longitude, latitude]`, WGS 84)
named by the city file (`wilayah.boundaries`), each feature with `level` (kelurahan or
kecamatan), `kode` (the Kemendagri code of the wilayah CSV) and a Polygon or MultiPolygon.
They are read once per file and kept (`load_boundaries` is cached).

A point is tested by ray casting (even-odd rule, so holes work) against the few polygons whose
bounding box holds it, found through a coarse grid over the city. The polygons are simplified:
a pin some tens of metres from a border may land in the neighbour, so the conversation says
"kelurahan X (from the pin)" and lets the resident correct it. A point exactly on a border
belongs to one side only.

Why not shapely (benchmarks/geo.py, one core, 83 kelurahan, 4,424 vertices): a pin comes one
at a time, and one point a call this runs 80-140k points/s against shapely's 40-77k (shapely
wins only vectorised, 160-550k/s, which a chat never needs); importing this adds 3 ms to a
process that has the store loaded, shapely 10-20 ms after numpy (70-180 ms alone); and shapely
is a 2.3 MB wheel (9.6 MB installed with its GEOS libraries) for some 60 lines of code here.
Both agree on every one of 20,100 random points. shapely stays a test tool, the independent
check of this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.city import CityFileError, LoadedCity
from actions.domain import AreaLevel
from actions.models import Area

Ring = tuple[tuple[float, float], ...]  # (lon, lat) points, closed or not
GRID = 24  # cells a side over the city's bounding box


@dataclass(frozen=True)
class Boundary:
    """One area's outline: its code, level, bounding box and rings (outer and holes)."""

    code: str
    name: str
    level: AreaLevel
    rings: tuple[Ring, ...]
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    def contains(self, lon: float, lat: float) -> bool:
        """Whether the point is inside (even-odd over all rings: holes are outside)."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        inside = False
        for ring in self.rings:
            if _in_ring(ring, lon, lat):
                inside = not inside
        return inside

    def depth(self, lon: float, lat: float) -> float:
        """Distance (in degrees) from the point to the nearest edge of this outline."""
        return min(_to_segment(lon, lat, a, b) for ring in self.rings for a, b in _edges(ring))


def _edges(ring: Ring) -> zip[tuple[tuple[float, float], tuple[float, float]]]:
    return zip((ring[-1], *ring[:-1]), ring, strict=True)


def _to_segment(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2))
    px, py = ax + t * dx - x, ay + t * dy - y
    return (px * px + py * py) ** 0.5


def _in_ring(ring: Ring, x: float, y: float) -> bool:
    """Ray casting: count the edges a ray from the point to the east crosses."""
    inside = False
    xj, yj = ring[-1]
    for xi, yi in ring:
        # Half-open in y: a vertex on the ray is counted once, a horizontal edge never.
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        xj, yj = xi, yi
    return inside


class Boundaries:
    """The areas of one level, with a grid that narrows a point to a few candidates."""

    def __init__(self, areas: Sequence[Boundary]) -> None:
        self.areas = tuple(areas)
        if not self.areas:
            raise ValueError("no areas")
        self.bbox = (
            min(a.bbox[0] for a in self.areas),
            min(a.bbox[1] for a in self.areas),
            max(a.bbox[2] for a in self.areas),
            max(a.bbox[3] for a in self.areas),
        )
        x0, y0, x1, y1 = self.bbox
        self._dx = (x1 - x0) / GRID or 1.0
        self._dy = (y1 - y0) / GRID or 1.0
        cells: dict[tuple[int, int], list[Boundary]] = {}
        for area in self.areas:
            ax0, ay0, ax1, ay1 = area.bbox
            for i in range(self._col(ax0), self._col(ax1) + 1):
                for j in range(self._row(ay0), self._row(ay1) + 1):
                    cells.setdefault((i, j), []).append(area)
        self._cells: dict[tuple[int, int], tuple[Boundary, ...]] = {
            k: tuple(v) for k, v in cells.items()
        }

    def _col(self, lon: float) -> int:
        return min(GRID - 1, max(0, int((lon - self.bbox[0]) / self._dx)))

    def _row(self, lat: float) -> int:
        return min(GRID - 1, max(0, int((lat - self.bbox[1]) / self._dy)))

    def at(self, lat: float, lon: float) -> Boundary | None:
        """Return the area containing the point, or None outside all of them."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return None
        hits = [
            a
            for a in self._cells.get((self._col(lon), self._row(lat)), ())
            if a.contains(lon, lat)
        ]
        if len(hits) < 2:
            return hits[0] if hits else None
        # Simplified outlines overlap by a few metres along some borders: the point belongs
        # to the area it is deepest in.
        return max(hits, key=lambda a: a.depth(lon, lat))

    def all_at(self, lat: float, lon: float) -> list[Boundary]:
        """Return every area containing the point (more than one only in an overlap)."""
        cell = self._cells.get((self._col(lon), self._row(lat)), ())
        return [a for a in cell if a.contains(lon, lat)]


@dataclass(frozen=True)
class CityBoundaries:
    """A city's kelurahan and kecamatan outlines."""

    kelurahan: Boundaries
    kecamatan: Boundaries | None


def _rings(geometry: dict, where: str) -> tuple[Ring, ...]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        raise ValueError(f"{where}: geometry {kind!r} is not a Polygon or MultiPolygon")
    rings = []
    for polygon in polygons:
        for ring in polygon:
            points = tuple((float(p[0]), float(p[1])) for p in ring)
            if len(points) < 3:
                raise ValueError(f"{where}: a ring of fewer than 3 points")
            if not all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in points):
                raise ValueError(f"{where}: coordinates outside [lon, lat] range")
            rings.append(points)
    return tuple(rings)


def _boundary(feature: dict, where: str) -> Boundary:
    props = feature.get("properties") or {}
    code, level = props.get("kode"), props.get("level")
    if not isinstance(code, str) or level not in ("kelurahan", "kecamatan"):
        raise ValueError(f"{where}: needs properties kode and level (kelurahan or kecamatan)")
    rings = _rings(feature.get("geometry") or {}, f"{where} ({code})")
    xs = [x for ring in rings for x, _ in ring]
    ys = [y for ring in rings for _, y in ring]
    return Boundary(
        code=code,
        name=str(props.get("nama", "")),
        level=AreaLevel(level),
        rings=rings,
        bbox=(min(xs), min(ys), max(xs), max(ys)),
    )


@lru_cache(maxsize=8)
def load_boundaries(path: Path) -> CityBoundaries:
    """Read a boundaries GeoJSON file once (cached by path); ValueError names the problem."""
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection")
    areas = [_boundary(f, f"{path.name} feature {i}") for i, f in enumerate(features)]
    kel = [a for a in areas if a.level is AreaLevel.KELURAHAN]
    kec = [a for a in areas if a.level is AreaLevel.KECAMATAN]
    if not kel:
        raise ValueError(f"{path}: no kelurahan features")
    return CityBoundaries(Boundaries(kel), Boundaries(kec) if kec else None)


def city_boundaries(city: LoadedCity) -> CityBoundaries | None:
    """Return the city's outlines (read once), or None when its file names none."""
    if city.boundaries_path is None:
        return None
    try:
        return load_boundaries(city.boundaries_path)
    except (OSError, ValueError) as exc:
        raise CityFileError(f"{city.path}: wilayah.boundaries: {exc}") from None


def kelurahan_code_at(city: LoadedCity, lat: float, lon: float) -> str | None:
    """Return the Kemendagri code of the kelurahan containing (lat, lon), or None."""
    outlines = city_boundaries(city)
    if outlines is None:
        return None
    hit = outlines.kelurahan.at(lat, lon)
    return hit.code if hit is not None else None


def kelurahan_at(session: Session, city: LoadedCity, lat: float, lon: float) -> Area | None:
    """Return the kelurahan Area containing the pin (lat, lon), or None outside the city.

    None too when the city file names no boundaries, or the kelurahan is not in the store.
    """
    code = kelurahan_code_at(city, lat, lon)
    if code is None:
        return None
    return session.scalar(select(Area).where(Area.code == code, Area.level == AreaLevel.KELURAHAN))
