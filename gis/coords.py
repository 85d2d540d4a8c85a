"""Coordinate conversion: any EPSG code through PROJ, plus GCJ-02 and BD-09.

GCJ-02 (火星坐标, used by Amap, Tencent and WeChat) and BD-09 (Baidu) are obfuscations PROJ does not
know. The forward formulas are the published ones; the inverses are solved by fixed-point iteration
until the forward transform of the answer reproduces the input within ``_TOL_DEG`` (about 1 mm), far
inside the 0.01 m round-trip the resolver promises. Points outside China are left unshifted, as the
formulas define. Everything is vectorised over numpy arrays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from gis.errors import UnknownCRS

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formulas
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_TOL_DEG = 1e-8  # ~1 mm
_MAX_ITER = 30

WGS84 = "EPSG:4326"
SPECIAL = {"gcj02", "bd09"}


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")


def out_of_china(lon, lat) -> np.ndarray:
    """The rectangle the published formulas use to decide whether to shift at all."""
    lon, lat = _arrays(lon, lat)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _arrays(lon, lat)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    bd_lon, bd_lat = z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006
    outside = out_of_china(x, y)
    return np.where(outside, x, bd_lon), np.where(outside, y, bd_lat)


def wgs84_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _invert(forward, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(x) = target by fixed-point iteration (the shift is smooth and small)."""
    tx, ty = _arrays(lon, lat)
    x, y = tx.copy(), ty.copy()
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - tx, fy - ty
        x, y = x - ex, y - ey
        if not (np.nanmax(np.abs(ex), initial=0.0) > _TOL_DEG or np.nanmax(np.abs(ey), initial=0.0) > _TOL_DEG):
            break
    return x, y


def gcj02_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return _invert(gcj02_to_bd09, lon, lat)


def bd09_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return _invert(wgs84_to_bd09, lon, lat)


def normalize_crs(crs: str | int | None) -> str:
    """Return 'gcj02', 'bd09' or 'EPSG:nnnn'; raise UnknownCRS for anything PROJ cannot use."""
    if crs is None or crs == "":
        return WGS84
    text = str(crs).strip().lower().replace("-", "").replace("_", "")
    if text in {"gcj02", "gcj", "amap", "mars"}:
        return "gcj02"
    if text in {"bd09", "bd09ll", "baidu"}:
        return "bd09"
    if text in {"wgs84", "4326"}:
        return WGS84
    if text.isdigit():
        text = f"epsg:{text}"
    try:
        parsed = _crs(text.upper())
    except CRSError as exc:
        raise UnknownCRS(f"unknown coordinate reference system {crs!r}: use an EPSG code, 'gcj02' or 'bd09'") from exc
    auth = parsed.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else parsed.to_string()


@lru_cache(maxsize=64)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    """A transformer that is cheap in every thread.

    pyproj keeps one PROJ object per thread and rebuilds it the first time a thread uses the
    transformer; rebuilt from the two CRSs that costs ~60 ms (PROJ searches its database for the
    operation), which a server's thread pool pays again and again as threads come and go — it showed
    as seconds of stalls at start-up under load. When PROJ knows exactly one operation between the
    two (Gauss-Krüger zones and other projections of one datum: the usual case here), the transformer
    is rebuilt from that operation's pipeline text instead (~0.3 ms a thread), after checking that it
    gives the same numbers. Otherwise (several candidate operations chosen per point), the full one."""
    full = Transformer.from_crs(_crs(src), _crs(dst), always_xy=True)
    try:
        group = TransformerGroup(_crs(src), _crs(dst), always_xy=True)
        if len(group.transformers) != 1 or group.unavailable_operations:
            return full
        fast = Transformer.from_pipeline(full.definition)
        lon, lat = np.array([73.6, 104.0, 118.8, 134.7]), np.array([18.2, 30.6, 36.9, 53.5])
        x, y = (lon, lat) if src == WGS84 else full.transform(lon, lat, direction="INVERSE")
        if np.allclose(np.array(fast.transform(x, y)), np.array(full.transform(x, y)), rtol=0, atol=1e-9,
                       equal_nan=True):
            return fast
    except (ProjError, CRSError):
        pass
    return full


def to_wgs84(x, y, crs: str | int | None = WGS84) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates in ``crs`` to WGS84 lon/lat (CGCS2000 is taken as equal, as PROJ does)."""
    name = normalize_crs(crs)
    x, y = _arrays(x, y)
    if name == "gcj02":
        return gcj02_to_wgs84(x, y)
    if name == "bd09":
        return bd09_to_wgs84(x, y)
    if name in (WGS84, "EPSG:4490"):
        return x, y
    lon, lat = _transformer(name, WGS84).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def from_wgs84(lon, lat, crs: str | int | None = WGS84) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS84 lon/lat to ``crs`` (the inverse of :func:`to_wgs84`)."""
    name = normalize_crs(crs)
    lon, lat = _arrays(lon, lat)
    if name == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if name == "bd09":
        return wgs84_to_bd09(lon, lat)
    if name in (WGS84, "EPSG:4490"):
        return lon, lat
    x, y = _transformer(WGS84, name).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def gauss_kruger_epsg(lon: float) -> int:
    """The CGCS2000 3-degree Gauss-Krüger zone (with zone prefix, EPSG:4513-4533) holding ``lon``."""
    zone = int(np.floor((lon + 1.5) / 3.0))
    zone = min(max(zone, 25), 45)
    return 4513 + zone - 25
