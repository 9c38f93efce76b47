"""A pin -> its kelurahan: load time and points per second, ours against shapely's.

    python benchmarks/geo.py [--points 20000] [--city data/cities/pekanbaru.yml]

Prints, on one core: the fresh-process import time of actions.geo and of shapely, loading
the city's boundaries, and lookups per second for random points in the city's bounding box
(about a third fall outside every kelurahan), by actions.geo (ray casting over a grid) and by
shapely (an STRtree, then `contains`, prepared geometries). Both must agree on every point.
shapely is optional: without it only our figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actions.city import load_city_file
from actions.geo import city_boundaries, load_boundaries


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _import_ms(module: str, before: str = "pass", rounds: int = 7) -> float:
    """Least time, over fresh interpreters that have run `before`, to import `module` in them:
    what the module adds to a process that has `before` loaded."""
    code = (
        f"{before}\nimport time\nt0 = time.perf_counter()\nimport {module}\n"
        "print(time.perf_counter() - t0)"
    )
    times = []
    for _ in range(rounds):
        out = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
        )
        times.append(float(out.stdout))
    return min(times) * 1000


def _best_rate(fn, rounds: int = 3) -> float:
    """Calls per second of `fn` (which handles all points once), best of a few rounds."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--city", default=str(ROOT / "data" / "cities" / "pekanbaru.yml"))
    args = ap.parse_args()
    _pin_one_core()
    city = load_city_file(Path(args.city))
    path = city.boundaries_path
    assert path is not None, "the city file names no boundaries"
    print(f"boundaries: {path.name}, {path.stat().st_size / 1024:.0f} KiB")

    t0 = time.perf_counter()
    outlines = city_boundaries(city)
    load_ms = (time.perf_counter() - t0) * 1000
    assert outlines is not None
    kel = outlines.kelurahan
    vertices = sum(len(r) for a in kel.areas for r in a.rings)
    print(f"actions.geo: {len(kel.areas)} kelurahan, {vertices} vertices, load {load_ms:.1f} ms")
    t0 = time.perf_counter()
    load_boundaries(path)
    print(f"actions.geo: second load (cached) {(time.perf_counter() - t0) * 1e6:.1f} µs")

    rng = random.Random(7)
    x0, y0, x1, y1 = kel.bbox
    points = [(rng.uniform(y0, y1), rng.uniform(x0, x1)) for _ in range(args.points)]
    points += [(-6.2, 106.8)] * 100  # Jakarta: rejected by the city's box
    ours = [kel.at(lat, lon) for lat, lon in points]
    dt = _best_rate(lambda: [kel.at(lat, lon) for lat, lon in points])
    ours_codes = [a.code if a else None for a in ours]
    outside = sum(c is None for c in ours_codes) / len(points)
    print(
        f"actions.geo: {len(points) / dt:,.0f} points/s ({dt / len(points) * 1e6:.1f} µs each,"
        f" {outside:.0%} outside)"
    )
    # The bot has imported the store and the city file before it ever looks at a pin.
    added = _import_ms("actions.geo", before="import actions.city, actions.models")
    print(f"import actions.geo (fresh process, after actions.city/models): {added:.0f} ms")

    try:
        import shapely
        from shapely import STRtree
        from shapely.geometry import Point, shape
    except ImportError:
        print("shapely: not installed, no comparison")
        return
    alone = _import_ms("shapely")
    added = _import_ms("shapely", before="import numpy")  # the NLU has numpy loaded already
    print(
        f"shapely {shapely.__version__}: import (fresh process) {alone:.0f} ms, "
        f"{added:.0f} ms after numpy"
    )
    t0 = time.perf_counter()
    with path.open(encoding="utf-8") as fh:
        features = [
            f for f in json.load(fh)["features"] if f["properties"]["level"] == "kelurahan"
        ]
    geoms = [shape(f["geometry"]) for f in features]
    for g in geoms:
        shapely.prepare(g)
    tree = STRtree(geoms)
    codes = [f["properties"]["kode"] for f in features]
    print(f"shapely: load {(time.perf_counter() - t0) * 1000:.1f} ms")

    def shapely_at(lat: float, lon: float) -> set[str]:
        return {codes[int(i)] for i in tree.query(Point(lon, lat), predicate="within")}

    theirs = [shapely_at(lat, lon) for lat, lon in points]
    dt = _best_rate(lambda: [shapely_at(lat, lon) for lat, lon in points])
    print(f"shapely (one point a call, as a chat pin comes): {len(points) / dt:,.0f} points/s")
    xy = [(lon, lat) for lat, lon in points]
    dt = _best_rate(lambda: tree.query(shapely.points(xy), predicate="within"))
    print(f"shapely (all points in one vectorised call): {len(points) / dt:,.0f} points/s")
    differ = sum(
        (a is None) != (not b) or (a is not None and a not in b)
        for a, b in zip(ours_codes, theirs, strict=True)
    )
    overlaps = sum(len(b) > 1 for b in theirs)
    print(
        f"points where actions.geo's kelurahan is not one shapely finds: {differ} of "
        f"{len(points)} ({overlaps} points lie where two simplified outlines overlap)"
    )


if __name__ == "__main__":
    main()
