"""The resolver as a service: point(s) → grid, village, town, district, over the registry in PostGIS.

The in-process :class:`gis.resolve.GridIndex` answers; this module keeps one per registry version and
checks the version (the newest edit id) on every call, so an edit made by any process is seen at
once and no answer comes from a stale index. ``as_of`` builds (and caches) an index of the grid
version valid at that time. :func:`postgis_resolve` asks PostGIS the same question (GiST index,
``ST_Covers``; lowest code on ties): the two must agree point for point.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.cache import Cache, database_key
from gis.coords import to_wgs84
from gis.db import SIDE
from gis.errors import InvalidInput
from gis.registry import VERSION_SQL, area_names, load_grids, registry_version, version_as_of
from gis.resolve import MATCHES, GridIndex
from gis.settings import grid_settings

COLUMNS = ["grid_code", "grid_name", "village_code", "village_name", "town_code", "town_name",
           "district_code", "district_name", "match", "distance_m"]


@dataclass(frozen=True)
class Located:
    """Where one point is and how it matched (``inside``, ``boundary``, ``snapped``, ``outside``)."""

    grid_code: str | None
    grid_name: str | None
    village_code: str | None
    village_name: str | None
    town_code: str | None
    town_name: str | None
    district_code: str | None
    district_name: str | None
    match: str
    distance_m: float | None
    registry_version: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Entry:
    index: GridIndex
    columns: dict[str, np.ndarray]  # grid_code, grid_name, ..., district_name per index position + None
    rows: dict[str, tuple]  # by grid code, the names as plain tuples: a single point without numpy


CACHE: Cache[_Entry] = Cache("resolver indexes", size=4)  # ('current' | 'as_of', version, database, snap)


class _NoGrids:
    """The index of an empty registry: no codes (callers answer ``outside`` without asking it)."""

    codes = np.array([], dtype=object)


_NO_GRIDS = _NoGrids()

PROBE = SIDE  # the side connections the version check uses (tests look at which databases they hold)


def current_version(session: Session) -> int:
    """The registry version now (the newest edit id), checked on every call through
    :data:`gis.db.SIDE`: one round trip on a side connection, the caller's session left untouched
    (a route that only resolves points never holds a pooled connection)."""
    return int(SIDE.fetchone(session, VERSION_SQL)[0])


def _entry(session: Session, as_of: datetime | None, snap_m: float | None = None) -> tuple[_Entry, int]:
    """The index for now (or ``as_of``); ``snap_m`` overrides the configured snapping distance."""
    snap = grid_settings().snap_m if snap_m is None else float(snap_m)
    if not snap >= 0:
        raise InvalidInput(f"snap distance must be >= 0 metres (0 = no snapping), got {snap_m!r}")
    version = current_version(session) if as_of is None else registry_version(session)
    if as_of is None:
        key: tuple = ("current", version, database_key(session))
    else:
        if as_of.tzinfo is None:
            raise InvalidInput("as_of needs a timezone, e.g. 2026-11-01T08:00:00+08:00")
        key = ("as_of", *version_as_of(session, as_of), database_key(session))
    key += (snap,)

    def build() -> _Entry:
        grids = load_grids(session, as_of=as_of)
        if grids.empty:  # no grids (yet, or at that time): every point is outside
            return _Entry(_NO_GRIDS, {}, {})
        index = GridIndex.from_frame(grids, version=version, snap_m=snap)
        names = area_names(session)
        meta = grids[["code", "name", "village_code", "town_code", "district_code"]].rename(
            columns={"code": "grid_code", "name": "grid_name"}).set_index("grid_code")
        for level in ("village", "town", "district"):
            meta[f"{level}_name"] = meta[f"{level}_code"].map(names)
        fields = ["grid_name", "village_code", "village_name", "town_code", "town_name", "district_code",
                  "district_name"]
        rows = {code: tuple(None if pd.isna(v) else v for v in values)
                for code, values in zip(meta.index, meta[fields].itertuples(index=False, name=None), strict=True)}
        columns = {"grid_code": np.append(index.codes, None)}  # the last slot answers "no grid"
        for field in fields:
            columns[field] = np.append(np.array([rows[c][fields.index(field)] for c in index.codes], dtype=object),
                                       None)
        # The index holds millions of long-lived objects; keep the cyclic GC from rescanning them on
        # every full collection (that showed as 300 ms stalls in GET /resolve's p99).
        gc.collect()
        gc.freeze()
        return _Entry(index, columns, rows)

    return CACHE.get_or_make(key, build), version


def warm(session: Session) -> int:
    """Build the current index now (at start-up) so the first request does not pay; returns grids."""
    entry, _ = _entry(session, None)
    return len(entry.index.codes)


def locate_arrays(session: Session, lon, lat, *, crs: str = "EPSG:4326",
                  as_of: datetime | None = None, snap_m: float | None = None) -> dict[str, np.ndarray]:
    """Resolve arrays of points into the COLUMNS above as object arrays (None where no grid): integer
    takes from per-grid columns, so ten points cost microseconds and a million stay vectorised."""
    entry, _ = _entry(session, as_of, snap_m)
    n = len(np.ravel(lon))
    if len(entry.index.codes) == 0:
        out = {c: np.full(n, None, dtype=object) for c in COLUMNS}
        out["match"] = np.full(n, "outside", dtype=object)
        return out
    grid, match, dist = entry.index.resolve_positions(lon, lat, crs=crs)
    out = {c: values.take(grid) for c, values in entry.columns.items()}
    out["match"] = MATCHES.take(match).astype(object)
    out["distance_m"] = np.where(np.isnan(dist), None, np.round(dist, 2))
    return out


def locate_many(session: Session, lon, lat, *, crs: str = "EPSG:4326",
                as_of: datetime | None = None, snap_m: float | None = None) -> pd.DataFrame:
    """Resolve arrays of points; one row per input point, in order, with the COLUMNS above."""
    return pd.DataFrame(locate_arrays(session, lon, lat, crs=crs, as_of=as_of, snap_m=snap_m), columns=COLUMNS)


def locate(session: Session, lon: float, lat: float, *, crs: str = "EPSG:4326",
           as_of: datetime | None = None) -> Located:
    """Resolve one point."""
    entry, version = _entry(session, as_of)
    if len(entry.index.codes) == 0:
        return Located(None, None, None, None, None, None, None, None, "outside", None, version)
    code, match, dist = entry.index.resolve_one(float(lon), float(lat), crs=crs)
    if code is None:
        return Located(None, None, None, None, None, None, None, None, match, None, version)
    return Located(code, *entry.rows[code], match, round(float(dist), 2), version)


def postgis_resolve(session: Session, lon, lat, *, crs: str = "EPSG:4326") -> np.ndarray:
    """The same question asked of PostGIS: the lowest code of the current grids covering each point
    (None where no grid covers it). Used to check the in-process resolver and as a bench baseline."""
    x, y = to_wgs84(np.ravel(lon), np.ravel(lat), crs)
    rows = session.execute(text("""
        SELECT p.i, min(g.code)
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
        JOIN grids g ON g.valid_to IS NULL AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
        GROUP BY p.i"""), {"xs": x.tolist(), "ys": y.tolist()}).all()
    out = np.full(len(x), None, dtype=object)
    for i, code in rows:
        out[i - 1] = code
    return out


def _coerce(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return numbers, ~np.isfinite(numbers)


def locate_table(session: Session, frame: pd.DataFrame, *, lon_col: str = "lon", lat_col: str = "lat",
                 crs: str = "EPSG:4326", as_of: datetime | None = None, row_offset: int = 0,
                 snap_m: float | None = None) -> pd.DataFrame:
    """Resolve a table of points; every input row comes back, in order, with the resolved columns and
    an ``error`` column naming what was wrong with the rows that could not be resolved."""
    missing = [c for c in (lon_col, lat_col) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"column {', '.join(repr(m) for m in missing)} not found; columns are: "
                           f"{', '.join(map(str, frame.columns))}")
    from gis.coords import normalize_crs

    crs = normalize_crs(crs)
    lon, bad_lon = _coerce(frame[lon_col])
    lat, bad_lat = _coerce(frame[lat_col])
    errors = np.full(len(frame), None, dtype=object)
    errors[bad_lon] = f"{lon_col} is missing or not a number"
    errors[bad_lat & ~bad_lon] = f"{lat_col} is missing or not a number"
    geographic = crs in ("EPSG:4326", "EPSG:4490", "gcj02", "bd09")
    if geographic:
        out_of_range = ~bad_lat & ~bad_lon & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
        errors[out_of_range] = "latitude must be within ±90 and longitude within ±180"
    ok = np.array([e is None for e in errors], dtype=bool)
    result = pd.DataFrame({c: pd.Series([None] * len(frame), dtype=object) for c in COLUMNS})
    if ok.any():
        located = locate_many(session, lon[ok], lat[ok], crs=crs, as_of=as_of, snap_m=snap_m)
        for column in COLUMNS:
            values = result[column].to_numpy(dtype=object).copy()
            values[ok] = located[column].to_numpy(dtype=object)
            result[column] = values
    result["error"] = pd.Series(errors, dtype=object)
    out = pd.concat([frame.reset_index(drop=True), result.add_prefix("")], axis=1)
    out.insert(0, "row", np.arange(row_offset + 1, row_offset + len(frame) + 1))
    return out
