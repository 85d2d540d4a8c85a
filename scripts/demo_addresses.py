"""The demo city's standard-address table (标准地址): ~30,000 doors, buildings and units, deterministic.

Why it is built this way:
- Roads are polylines in the city's CGCS2000 Gauss-Krüger zone, so house spacing and set-backs are in
  real metres. The urban core (圣城街道 and the street offices around it) gets a slightly rotated
  lattice of north-south 街 and east-west 路, as Shouguang's centre has; every other town gets a main
  street and road through its seat plus a few side roads. Generic names (商业街, 文化路, 府前街, …) recur
  in several towns, as they do in real counties: ``商业街5号`` without a town is truly ambiguous, and
  the geocoder must say so rather than pick one.
- House numbers run along each road from its west/north end, odd on the left, even on the right, so a
  number is unique along a road even where the road crosses from one street office into the next.
- Some numbers are residential compounds (小区): the gate is the number itself, buildings (栋) stand in
  rows behind it and units (单元) side by side in each building, each with its own point, the way a
  standard-address register lists them (门牌 → 楼栋 → 单元).
- A point is kept only if it lies inside a grid, and its town is the town polygon that holds it, so
  the table agrees with the registry by construction.

Run: ``python -m scripts.demo_addresses [OUT.csv] [--seed N]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, Point

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84

DATA = Path(__file__).resolve().parent.parent / "data" / "grid_boundaries"
OUT = DATA / "addresses.csv"
CENTRE = (118.790, 36.868)  # 圣城街道's seat, WGS84
EPSG = gauss_kruger_epsg(CENTRE[0])
DISTRICT = "寿光市"
ROTATION_DEG = 4.0  # the urban lattice is turned slightly off north, as real street grids are
URBAN_RADIUS_M = 5000.0
SETBACK_M = 18.0  # door points stand this far from the road's centre line

# Urban lattice, west → east (north-south streets) and north → south (east-west roads): name, offset (m).
URBAN_NS = (("西环路", -3900), ("金光街", -2900), ("公园街", -1900), ("圣城街", -900), ("文圣街", 100),
            ("农圣街", 1100), ("建新街", 2100), ("商业街", 3100), ("东城路", 4000))
URBAN_EW = (("北环路", 3900), ("渤海路", 2900), ("银海路", 1900), ("新华路", 900), ("寿康路", -100),
            ("文化路", -1100), ("金海路", -2100), ("丹河路", -3100), ("南环路", -3950))
GENERIC = ("新兴街", "振华路", "府前街", "工业路", "幸福路", "健康街", "振兴路", "育才路", "民生街", "光明路")
# Street offices around the core and every town: (name, seat lon, lat). Seats as in scripts/demo_city.
SEATS = (("文家街道", 118.815, 36.822), ("古城街道", 118.818, 36.905), ("洛城街道", 118.862, 36.866),
         ("孙家集街道", 118.742, 36.838), ("化龙镇", 118.650, 36.900), ("营里镇", 118.800, 37.115),
         ("台头镇", 118.700, 37.040), ("田柳镇", 118.780, 36.995), ("上口镇", 118.900, 36.975),
         ("侯镇", 119.000, 37.010), ("纪台镇", 118.690, 36.775), ("稻田镇", 118.920, 36.800),
         ("羊口镇", 118.870, 37.240), ("双王城镇", 118.720, 37.180))


@dataclass(frozen=True)
class Road:
    name: str
    line: LineString  # metres, numbered from its first vertex
    spacing_m: float  # between consecutive numbers on one side
    compound_p: float  # chance that a number is a residential compound


def _xy(lon: float, lat: float) -> tuple[float, float]:
    x, y = from_wgs84(np.array([lon]), np.array([lat]), f"EPSG:{EPSG}")
    return float(x[0]), float(y[0])


def _wiggly(p0: np.ndarray, p1: np.ndarray, rng: np.random.Generator, amp: float) -> LineString:
    """A straight road with a gentle sideways wave, densified every 100 m."""
    length = float(np.hypot(*(p1 - p0)))
    t = np.linspace(0.0, 1.0, max(int(length / 100.0), 2) + 1)
    along = (p1 - p0) / length
    normal = np.array([-along[1], along[0]])
    wave = amp * np.sin(2 * np.pi * t * length / rng.uniform(2500, 4500) + rng.uniform(0, 2 * np.pi))
    return LineString(p0 + np.outer(t, p1 - p0) + np.outer(wave, normal))


def urban_roads(rng: np.random.Generator) -> list[Road]:
    cx, cy = _xy(*CENTRE)
    a = np.radians(ROTATION_DEG)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    disc = Point(cx, cy).buffer(URBAN_RADIUS_M)
    roads = []
    for names, vertical in ((URBAN_NS, True), (URBAN_EW, False)):
        for name, offset in names:
            ends = np.array([[offset, URBAN_RADIUS_M], [offset, -URBAN_RADIUS_M]]) if vertical else \
                np.array([[-URBAN_RADIUS_M, offset], [URBAN_RADIUS_M, offset]])
            p0, p1 = (ends @ rot.T) + [cx, cy]
            line = _wiggly(p0, p1, rng, amp=40.0).intersection(disc)
            if isinstance(line, LineString) and line.length > 500:
                roads.append(Road(name, line, spacing_m=40.0, compound_p=0.08))
    return roads


def town_roads(rng: np.random.Generator, towns: gpd.GeoDataFrame) -> list[Road]:
    """Per town: 〈short〉大街 (N-S) and 〈short〉路 (E-W) through the seat, plus generic side roads."""
    roads = []
    for name, lon, lat in SEATS:
        poly = towns.loc[towns["name"] == name, "geometry"].iloc[0]
        seat = np.array(_xy(lon, lat))
        if not poly.contains(Point(seat)):
            seat = np.array(poly.representative_point().coords[0])
        short = name.removesuffix("街道").removesuffix("镇")
        short = short if len(short) >= 2 else name  # 侯镇 → 侯镇大街, not 侯大街
        generic = rng.choice(len(GENERIC), size=3, replace=False)
        layout = [(f"{short}大街", True, 0.0), (f"{short}路", False, 0.0)]
        layout += [(GENERIC[g], bool(i % 2), (i + 1) * 450.0 * (-1) ** i) for i, g in enumerate(generic)]
        for road_name, vertical, offset in layout:
            half = rng.uniform(1300, 2200)
            d = np.array([0.0, half]) if vertical else np.array([half, 0.0])
            shift = np.array([offset, 0.0]) if vertical else np.array([0.0, offset])
            line = _wiggly(seat + shift + d, seat + shift - d, rng, amp=25.0).intersection(poly)
            if isinstance(line, shapely.MultiLineString):
                line = max(line.geoms, key=lambda g: g.length)
            if isinstance(line, LineString) and line.length > 300:
                roads.append(Road(road_name, line, spacing_m=50.0, compound_p=0.03))
    return roads


def _frame_points(line: LineString, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Points at distance ``s`` along ``line`` and ``n`` metres to its left (negative: right)."""
    s = np.clip(s, 0.0, line.length)
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, np.minimum(s + 1.0, line.length)))
    behind = shapely.get_coordinates(shapely.line_interpolate_point(line, np.maximum(s - 1.0, 0.0)))
    base = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
    tangent = ahead - behind
    tangent /= np.linalg.norm(tangent, axis=1)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    return base + normal * n[:, None]


def road_addresses(road: Road, rng: np.random.Generator) -> pd.DataFrame:
    """Doors along one road; compounds expand into building and unit rows."""
    rows: list[tuple[int, int | None, int | None, float, float]] = []  # number, building, unit, s, n
    for side, first in ((1.0, 1), (-1.0, 2)):
        s, number = rng.uniform(10, 30), first
        while s < road.line.length - 10:
            if rng.random() < road.compound_p and s + 2 * road.spacing_m < road.line.length:
                rows.extend(_compound(number, s + road.spacing_m, side, rng))
                s += 3 * road.spacing_m
            else:
                rows.append((number, None, None, s, side * SETBACK_M))
                s += road.spacing_m * rng.uniform(0.8, 1.2)
            number += 2
    frame = pd.DataFrame(rows, columns=["number", "building", "unit", "s", "n"])
    xy = _frame_points(road.line, frame["s"].to_numpy(), frame["n"].to_numpy())
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    frame["road"] = road.name
    return frame.drop(columns=["s", "n"])


def _compound(number: int, s: float, side: float, rng: np.random.Generator) -> list[tuple]:
    """Gate on the road; buildings in rows of three behind it; units 8 m apart in each building."""
    rows: list[tuple[int, int | None, int | None, float, float]] = [(number, None, None, s, side * SETBACK_M)]
    n_buildings, n_units = int(rng.integers(3, 9)), int(rng.integers(2, 4))
    for b in range(n_buildings):
        bs, bn = s + (b % 3 - 1) * 32.0, side * (50.0 + 30.0 * (b // 3))
        rows.append((number, b + 1, None, bs, bn))
        for u in range(n_units):
            rows.append((number, b + 1, u + 1, bs + (u - (n_units - 1) / 2) * 8.0, bn))
    return rows


def _place(frame: pd.DataFrame, towns: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
    """Keep points strictly inside a grid; the town is the town polygon that holds the point."""
    lon, lat = to_wgs84(frame["x"].to_numpy(), frame["y"].to_numpy(), f"EPSG:{EPSG}")
    lon, lat = np.round(lon, 6), np.round(lat, 6)
    points = shapely.points(lon, lat)
    inside = np.zeros(len(points), dtype=bool)
    inside[np.unique(shapely.STRtree(grids.geometry.values).query(points, predicate="within")[0])] = True
    town_idx = np.full(len(points), -1)
    hit = shapely.STRtree(towns.geometry.values).query(points, predicate="within")
    town_idx[hit[0]] = hit[1]
    keep = inside & (town_idx >= 0)
    out = frame.loc[keep, ["road", "number", "building", "unit"]].copy()
    out.insert(0, "town", towns["name"].to_numpy()[town_idx[keep]])
    out.insert(0, "district", DISTRICT)
    out["lon"], out["lat"] = lon[keep], lat[keep]
    return out


def generate(seed: int = 7) -> pd.DataFrame:
    """The whole table, sorted by town, road, number, building, unit."""
    rng = np.random.default_rng(seed)
    areas = gpd.read_file(DATA / "areas.geojson", engine="pyogrio")
    grids = gpd.read_file(DATA / "grids.geojson", engine="pyogrio")
    towns = areas[areas["level"] == "town"].reset_index(drop=True)
    towns_m = towns.to_crs(f"EPSG:{EPSG}")
    roads = urban_roads(rng) + town_roads(rng, towns_m)
    frame = pd.concat([road_addresses(r, rng) for r in roads], ignore_index=True)
    table = _place(frame, towns.set_crs(4326, allow_override=True), grids)
    for col in ("number", "building", "unit"):
        table[col] = table[col].astype("Int64")
    table = table.drop_duplicates(["town", "road", "number", "building", "unit"])
    return table.sort_values(["town", "road", "number", "building", "unit"], na_position="first",
                             kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    start = time.perf_counter()
    table = generate(args.seed)
    table.to_csv(args.out, index=False, encoding="utf-8", float_format="%.6f")
    size = args.out.stat().st_size
    print(f"{len(table)} addresses on {table['road'].nunique()} road names in {table['town'].nunique()} towns "
          f"→ {args.out} ({size / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
