"""A tiny city built in metres (CGCS2000 GK zone 40, EPSG:4528) so areas are known exactly.

District 370783000000 = town 370783001000 = a 1,000 m × 600 m rectangle split into two villages:
west 370783001001 (two grids, north and south, 500 m × 300 m each) and east 370783001002 (one grid).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import box

from gis.coords import from_wgs84

GK = "EPSG:4528"
X0, Y0 = (float(v[0]) for v in from_wgs84([118.8], [36.9], GK))


def rect(x1: float, y1: float, x2: float, y2: float, *, step: float = 50.0):
    """A rectangle in local metres (origin X0, Y0), densified so edges share vertices."""
    return shapely.segmentize(box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2), step)


def to_wgs(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.set_crs(GK, allow_override=True).to_crs(4326)


def areas() -> gpd.GeoDataFrame:
    rows = [
        ("370783000000", "测试市", rect(0, 0, 1000, 600)),
        ("370783001000", "圣城街道", rect(0, 0, 1000, 600)),
        ("370783001001", "东关社区", rect(0, 0, 500, 600)),
        ("370783001002", "西关社区", rect(500, 0, 1000, 600)),
    ]
    return to_wgs(gpd.GeoDataFrame({"code": [r[0] for r in rows], "name": [r[1] for r in rows]},
                                   geometry=[r[2] for r in rows]))


def grids(**overrides) -> gpd.GeoDataFrame:
    rows = {
        "370783001001001": ("东关社区第1网格", rect(0, 300, 500, 600)),
        "370783001001002": ("东关社区第2网格", rect(0, 0, 500, 300)),
        "370783001002001": ("西关社区第1网格", rect(500, 0, 1000, 600)),
    }
    rows.update(overrides)
    codes = list(rows)
    return to_wgs(gpd.GeoDataFrame(
        {"code": codes, "name": [rows[c][0] for c in codes], "households": np.full(len(codes), 400),
         "population": np.full(len(codes), 1100)},
        geometry=[rows[c][1] for c in codes]))
