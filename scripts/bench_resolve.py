"""Benchmark: OneMap's in-process resolver against geopandas.sjoin (and, when given, PostGIS).

`onemap bench resolve` calls :func:`run`. The grids are the demo city's when
data/grid_boundaries/grids.geojson exists, else a synthetic city of Voronoi grids of the same size.
Points are uniform over the grids' bounding box (a fair share falls outside, near the edge or on it).
"""

from __future__ import annotations

import math
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.resolve import GridIndex

DEMO_GRIDS = Path(__file__).resolve().parent.parent / "data" / "grid_boundaries" / "grids.geojson"
CENTRE = (118.79, 36.86)  # Shouguang-like


def synthetic_grids(n: int = 1347, vertices: int = 100, seed: int = 0) -> gpd.GeoDataFrame:
    """Voronoi grids inside a wobbly 1,900 km² county, densified to about ``vertices`` each."""
    rng = np.random.default_rng(seed)
    angle = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    radius = 0.22 * (1 + 0.08 * np.sin(5 * angle) + 0.04 * np.sin(13 * angle + 1))
    county = shapely.Polygon(
        np.column_stack(
            [
                CENTRE[0] + radius * np.cos(angle) / math.cos(math.radians(CENTRE[1])),
                CENTRE[1] + radius * np.sin(angle),
            ]
        )
    )
    seeds = shapely.points(
        rng.uniform(county.bounds[0], county.bounds[2], 4 * n),
        rng.uniform(county.bounds[1], county.bounds[3], 4 * n),
    )
    seeds = seeds[shapely.contains(county, seeds)][:n]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=county)
    )
    cells = shapely.intersection(cells, county)
    step = float(np.median(shapely.length(cells))) / vertices
    edges = shapely.segmentize(shapely.union_all(shapely.boundary(cells)), step)  # each edge once
    cells = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    codes = [
        f"370783{101 + i // 100:03d}{201 + (i // 10) % 10:03d}{1 + i % 10:03d}"
        for i in range(len(cells))
    ]
    return gpd.GeoDataFrame({"code": codes}, geometry=cells, crs="EPSG:4326")


def load_grids() -> tuple[gpd.GeoDataFrame, str]:
    if DEMO_GRIDS.exists():
        return gpd.read_file(DEMO_GRIDS), str(DEMO_GRIDS)
    return synthetic_grids(), "synthetic Voronoi city"


def random_points(grids: gpd.GeoDataFrame, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = grids.total_bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def _timed(fn: Callable, *args, repeat: int = 3):
    """Best of ``repeat`` wall times (single process, single thread) and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def _sjoin_codes(grids: gpd.GeoDataFrame, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Code per point by geopandas.sjoin(predicate='within'); None when no grid holds it strictly."""
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=grids.crs)
    joined = gpd.sjoin(pts, grids[["code", "geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["code"].to_numpy(dtype=object)


def _index_bytes(index: GridIndex) -> int:
    """Memory held by the index's arrays (the raster table dominates)."""
    arrays = [v for v in vars(index).values() if isinstance(v, np.ndarray)]
    arrays += [
        a
        for v in vars(index).values()
        if isinstance(v, tuple)
        for a in v
        if isinstance(a, np.ndarray)
    ]
    return sum(a.nbytes for a in arrays)


def _single_point_us(index: GridIndex, lon: np.ndarray, lat: np.ndarray) -> float:
    times = []
    for x, y in zip(lon.tolist(), lat.tolist(), strict=True):
        start = time.perf_counter_ns()
        index.resolve_one(x, y)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000.0


def run(
    points: int = 1_000_000,
    grids: gpd.GeoDataFrame | None = None,
    *,
    postgis_join: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    echo: Callable[[str], None] = print,
) -> dict:
    """Time index build, bulk resolution, single points, sjoin (and PostGIS); check agreement."""
    source = "given grids"
    if grids is None:
        grids, source = load_grids()
    lon, lat = random_points(grids, points)
    tracemalloc.start()
    build_s, index = _timed(lambda: GridIndex.from_frame(grids, version=1), repeat=1)
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ours_s, res = _timed(index.resolve, lon, lat)
    sjoin_s, sjoin_codes = _timed(_sjoin_codes, grids, lon, lat, repeat=1)
    inside = res.match == "inside"
    report = {
        "grids": len(grids),
        "source": source,
        "points": points,
        "build_s": round(build_s, 3),
        "build_peak_mb": round(build_peak / 2**20, 1),
        "onemap_points_per_s": round(points / ours_s),
        "sjoin_points_per_s": round(points / sjoin_s),
        "speedup_vs_sjoin": round(sjoin_s / ours_s, 1),
        "single_point_median_us": round(_single_point_us(index, lon[:10_000], lat[:10_000]), 2),
        "matches": {
            m: int((res.match == m).sum()) for m in ("inside", "boundary", "snapped", "outside")
        },
        "inside_disagreements_vs_sjoin": int((res.grid_code[inside] != sjoin_codes[inside]).sum()),
        "sjoin_found_but_onemap_not_inside": int((~inside & ~pd.isna(sjoin_codes)).sum()),
        "index_mb": round(_index_bytes(index) / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if postgis_join is not None:
        pg_s, pg_codes = _timed(postgis_join, lon, lat, repeat=1)
        report["postgis_points_per_s"] = round(points / pg_s)
        report["speedup_vs_postgis"] = round(pg_s / ours_s, 1)
        covered = (res.match == "inside") | (res.match == "boundary")  # PostGIS answers ST_Covers only
        expected = np.where(covered, res.grid_code, None)
        report["disagreements_vs_postgis"] = int((np.asarray(pg_codes, dtype=object) != expected).sum())
    for key, value in report.items():
        echo(f"{key:36} {value}")
    return report


if __name__ == "__main__":
    run()
