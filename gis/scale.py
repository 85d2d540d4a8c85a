"""The resolver and the history analytics on Dask, over an archive of partitioned GeoParquet.

Why Dask and not a bigger PostGIS: a city's live work fits one PostGIS, but years of GPS fixes
(Foshan's 18,794 workers every 30 s are ~7 billion points a year), sensor readings and camera
detections do not, and a grid redraw means re-resolving them. The same :class:`gis.resolve.GridIndex`
that answers the API runs inside every Dask worker: the grid frame is scattered to all workers once
(``broadcast=True``) and each worker process builds the index once per grid version, caching it in
:data:`_INDEXES`; tasks then only carry point partitions.

Archive layout (written by ``layers.archive``, read here)::

    {root}/{table}/day=YYYY-MM-DD/town={12-digit town code | none}/part-{uuid}.parquet

``day`` is the local day (Asia/Shanghai) of the row's time; ``town`` is the town the row resolved to
(``none`` when unresolved). Files are GeoParquet 1.1: the point is a ``geometry`` column with the
native ``point`` encoding (a struct of x, y; OGC:CRS84), so lon/lat are read without decoding WKB.
A partition is one ``day=/town=`` folder; reads prune by folder name before opening a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gis.cache import Cache
from gis.errors import InvalidInput, NotFound
from gis.resolve import MATCHES, GridIndex
from gis.settings import CITY_TZ

NO_TOWN = "none"
RESOLVED = ["grid_code", "village_code", "town_code", "district_code", "match"]
_GEO_META = {"version": "1.1.0", "primary_column": "geometry",
             "columns": {"geometry": {"encoding": "point", "geometry_types": ["Point"]}}}
_MATCH_DTYPE = pd.CategoricalDtype(pd.Index(MATCHES.astype(object), dtype=object))
_POINT = pa.struct([("x", pa.float64()), ("y", pa.float64())])

# --------------------------------------------------------------------------- cluster and broadcast


def local_cluster(n_workers: int = 2, threads_per_worker: int = 1, *, trim_memory: bool = False, **kwargs):
    """A ``distributed.Client`` on a fresh LocalCluster of worker *processes* (the resolver holds the
    GIL in numpy/GEOS, so processes, not threads, give parallelism). Close it with
    :func:`close_cluster`.

    ``trim_memory=False`` starts workers without distributed's ``MALLOC_TRIM_THRESHOLD_``: setting it
    switches off glibc's adaptive mmap threshold, so every partition-sized array is a fresh mmap
    paid in page faults (measured: ~35% more CPU per point). Long-lived shared clusters may want it."""
    import dask
    from distributed import Client, LocalCluster

    env = {} if trim_memory else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(env):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None, **kwargs)
    return Client(cluster)


def close_cluster(client) -> None:
    """Close a client from :func:`local_cluster` and its cluster."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def grid_key(grids: gpd.GeoDataFrame, version: int) -> str:
    """A key naming one grid set: the registry version plus a digest of codes and outlines, so two
    different frames given the same version number never share a cached index."""
    digest = hashlib.sha1()
    for code, wkb in zip(grids["code"].astype(str), grids.geometry.to_wkb(), strict=True):
        digest.update(code.encode())
        digest.update(wkb)
    return f"{int(version)}:{digest.hexdigest()[:16]}"


@dataclass
class _Entry:
    """A built index and, per output column, its categories and each grid position's category code
    (a trailing -1 for unresolved): answers become categoricals by integer take(), no strings."""

    index: GridIndex
    levels: dict[str, tuple[pd.CategoricalDtype, np.ndarray]]


_INDEXES: Cache[_Entry] = Cache("dask worker indexes", size=2)
_BUILDS: dict[str, int] = {}  # key -> builds in this process (tests check "once per worker")
_LOCK = threading.Lock()


def _build(grids: gpd.GeoDataFrame, key: str, snap_m: float) -> _Entry:
    index = GridIndex.from_frame(grids, version=int(key.split(":")[0]), snap_m=snap_m)
    codes, aligned = _aligned(grids)
    if not np.array_equal(codes, index.codes):
        raise InvalidInput("grid codes changed while indexing")  # cannot happen: same sort as GridIndex
    levels = {}
    for column, values in aligned.items():
        dtype, inverse = _dtype(values)
        levels[column] = (dtype, np.append(inverse, -1).astype(np.int32))
    return _Entry(index, levels)


def _aligned(grids: gpd.GeoDataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Codes sorted as GridIndex sorts them, and each output column's value per sorted grid."""
    codes = np.array([str(c) for c in grids["code"]], dtype=object)
    order = np.argsort(codes.astype(str), kind="stable")
    codes = codes[order]
    aligned = {"grid_code": codes}
    for level in ("village", "town", "district"):
        column = f"{level}_code"
        aligned[column] = (grids[column].astype(str).to_numpy(dtype=object)[order] if column in grids
                           else np.array([_parent(c, level) for c in codes], dtype=object))
    return codes, aligned


def _dtype(values: np.ndarray) -> tuple[pd.CategoricalDtype, np.ndarray]:
    categories, inverse = np.unique(values.astype(str), return_inverse=True)
    return pd.CategoricalDtype(pd.Index(categories, dtype=object)), inverse


def output_dtypes(grids: gpd.GeoDataFrame) -> dict[str, pd.CategoricalDtype]:
    """The categorical dtypes :func:`resolve_frame` gives for this grid set (for dask's meta)."""
    _, aligned = _aligned(grids)
    dtypes = {c: _dtype(v)[0] for c, v in aligned.items()}
    return {**dtypes, "match": _MATCH_DTYPE}


def _parent(code: str, level: str) -> str:
    """The parent area of a grid code when the frame carries no parent columns."""
    return {"village": code[:12], "town": code[:9] + "000", "district": code[:6] + "000000"}[level]


def worker_index(grids: gpd.GeoDataFrame, key: str, snap_m: float = 50.0) -> _Entry:
    """The index for ``key`` in this process, built on first use (one build per process per key;
    the newest two keys are kept so a redraw does not thrash)."""
    def build() -> _Entry:
        entry = _build(grids, key, snap_m)
        with _LOCK:
            _BUILDS[key] = _BUILDS.get(key, 0) + 1
        return entry

    return _INDEXES.get_or_make(key, build)


def builds() -> dict[str, int]:
    """How many times this process built each index (run on workers with ``client.run``)."""
    with _LOCK:
        return dict(_BUILDS)


def broadcast_grids(grids: gpd.GeoDataFrame, client=None):
    """The grid frame on every worker once (a Future), or the frame itself without a cluster."""
    grids = grids[[c for c in ["code", "village_code", "town_code", "district_code", "geometry"]
                   if c in grids.columns]]
    if client is None:
        return grids
    return client.scatter(grids, broadcast=True, hash=False)


# --------------------------------------------------------------------------- resolving partitions


def resolve_frame(frame: pd.DataFrame, grids: gpd.GeoDataFrame, key: str, *, lon_col: str = "lon",
                  lat_col: str = "lat", crs: str = "EPSG:4326", snap_m: float = 50.0) -> pd.DataFrame:
    """One partition resolved: the input columns plus grid_code, village/town/district codes, match
    as categoricals (existing columns of those names are replaced). Runs inside a worker."""
    entry = worker_index(grids, key, snap_m)
    # grid positions, not code strings: every output column is then an integer take() (categoricals)
    grid, match, _ = entry.index.resolve_positions(frame[lon_col].to_numpy(dtype=float),
                                                   frame[lat_col].to_numpy(dtype=float), crs=crs)
    out = {c: pd.Categorical.from_codes(cat.take(grid), dtype=dtype) for c, (dtype, cat) in entry.levels.items()}
    out["match"] = pd.Categorical.from_codes(match.astype(np.int8), dtype=_MATCH_DTYPE)
    new = pd.DataFrame({c: pd.Series(out[c], index=frame.index) for c in RESOLVED})
    return pd.concat([frame.drop(columns=[c for c in RESOLVED if c in frame.columns]), new], axis=1)


def _meta(meta: pd.DataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
    base = meta.drop(columns=[c for c in RESOLVED if c in meta.columns])
    return base.assign(**{c: pd.Series([], dtype=t) for c, t in output_dtypes(grids).items()})


def resolve_partitions(ddf_or_paths, grids: gpd.GeoDataFrame, *, lon_col: str = "lon", lat_col: str = "lat",
                       crs: str = "EPSG:4326", client=None, version: int = 0, snap_m: float = 50.0):
    """A lazy dask DataFrame: every row of ``ddf_or_paths`` (a dask DataFrame, or Parquet path(s))
    with grid_code, village_code, town_code, district_code and match added (categoricals whose
    categories are the grid set's codes and the match kinds), point for point what
    ``GridIndex.resolve`` gives. With a distributed ``client`` (or a default one) the grid frame is
    broadcast once and each worker builds its index once."""
    import dask.dataframe as dd

    ddf = ddf_or_paths if isinstance(ddf_or_paths, dd.DataFrame) else dd.read_parquet(ddf_or_paths)
    missing = {lon_col, lat_col} - set(ddf.columns)
    if missing:
        raise InvalidInput(f"points need columns {sorted(missing)}; have {list(ddf.columns)}")
    client = client if client is not None else _default_client()
    key = grid_key(grids, version)
    shared = broadcast_grids(grids, client)
    if client is None:
        import dask

        shared = dask.delayed(shared, pure=True)
    return ddf.map_partitions(resolve_frame, shared, key, lon_col=lon_col, lat_col=lat_col, crs=crs,
                              snap_m=snap_m, meta=_meta(ddf._meta, grids))


def _default_client():
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


# --------------------------------------------------------------------------- archive files


def local_day(stamps: pd.Series) -> pd.Series:
    """The local (Asia/Shanghai) day of aware timestamps, as ``YYYY-MM-DD`` text."""
    return stamps.dt.tz_convert(CITY_TZ).dt.strftime("%Y-%m-%d")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A local day as an aware [start, end) pair."""
    start = datetime(day.year, day.month, day.day, tzinfo=CITY_TZ)
    return start, start + timedelta(days=1)


def partition_dir(root: Path, table: str, day: str, town: str | None) -> Path:
    return Path(root) / table / f"day={day}" / f"town={town or NO_TOWN}"


def partitions(root: Path, table: str, *, towns: Iterable[str] | None = None,
               start: date | None = None, end: date | None = None) -> list[Path]:
    """The ``day=/town=`` folders of ``table``, pruned by town and by day range [start, end]
    from their names alone (no file is opened)."""
    base = Path(root) / table
    wanted = None if towns is None else {t or NO_TOWN for t in towns}
    found = []
    for day_dir in sorted(base.glob("day=*")):
        day = date.fromisoformat(day_dir.name[4:])
        if (start and day < start) or (end and day > end):
            continue
        for town_dir in sorted(day_dir.glob("town=*")):
            if wanted is None or town_dir.name[5:] in wanted:
                found.append(town_dir)
    return found


def part_files(dirs: Sequence[Path]) -> list[Path]:
    return [f for d in dirs for f in sorted(Path(d).glob("part-*.parquet"))]


def to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame with ``lon``/``lat`` columns → an Arrow table in ``schema`` with a GeoParquet point
    geometry (null where lon/lat are NaN) in place of lon/lat."""
    lon = frame["lon"].to_numpy(dtype=float)
    lat = frame["lat"].to_numpy(dtype=float)
    nulls = np.isnan(lon) | np.isnan(lat)
    geometry = pa.StructArray.from_arrays([pa.array(lon), pa.array(lat)], fields=list(_POINT),
                                          mask=pa.array(nulls))
    columns = {f.name: pa.array(frame[f.name].astype(object).where(frame[f.name].notna(), None)
                                if f.type == pa.string() else frame[f.name], type=f.type, from_pandas=True)
               for f in schema if f.name != "geometry"}
    columns["geometry"] = geometry
    table = pa.table(columns, schema=schema)
    return table.replace_schema_metadata({b"geo": json.dumps(_GEO_META).encode()})


def with_geometry(schema: pa.Schema) -> pa.Schema:
    """Add the point geometry column to a table's attribute schema."""
    return schema.append(pa.field("geometry", _POINT))


def write_part(frame: pd.DataFrame, directory: Path, schema: pa.Schema, *, final: bool = True) -> Path:
    """Write one part file; written under a temporary name and renamed, so a reader (or a crash)
    never sees half a file. ``final=False`` leaves the ``.tmp`` name for the caller to commit."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"part-{uuid.uuid4().hex}.parquet"
    tmp = target.with_suffix(".parquet.tmp")
    pq.write_table(to_table(frame, schema), tmp, compression="zstd")
    if not final:
        return tmp
    os.replace(tmp, target)
    return target


def read_part(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One part file as a frame with ``lon``/``lat`` in place of the geometry."""
    names = None if columns is None else [c for c in columns if c not in ("lon", "lat")] + (
        ["geometry"] if {"lon", "lat"} & set(columns) else [])
    return table_frame(pq.read_table(path, columns=names))


def table_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.drop_columns(["geometry"]).to_pandas() if "geometry" in table.column_names \
        else table.to_pandas()
    if "geometry" in table.column_names:
        geom = table.column("geometry").combine_chunks()
        valid = np.asarray(geom.is_valid())
        for axis, name in (("x", "lon"), ("y", "lat")):
            values = geom.field(axis).to_numpy(zero_copy_only=False).astype(float)
            frame[name] = np.where(valid, values, np.nan)
    return frame


def read_archive(root: Path, table: str, *, towns: Iterable[str] | None = None, start: date | None = None,
                 end: date | None = None, columns: Sequence[str] | None = None):
    """The chosen partitions as a lazy dask DataFrame (one task per part file), with lon/lat."""
    import dask.dataframe as dd

    files = part_files(partitions(root, table, towns=towns, start=start, end=end))
    if not files:
        raise NotFound(f"no archived {table} in {root} for that selection")
    meta = table_frame(pq.read_schema(files[0]).empty_table())
    if columns is not None:
        meta = meta[list(columns)]
    return dd.from_map(read_part, files, columns=columns, meta=meta, enforce_metadata=False)


# --------------------------------------------------------------------------- re-resolution


@dataclass(frozen=True)
class Reresolved:
    """What a re-resolution read and wrote."""

    partitions_read: int
    files_read: int
    rows: int
    changed: int
    partitions_written: int


def _reresolve_file(path: str, grids, index_key: str, schema_bytes: bytes, snap_m: float) -> dict:
    """Re-resolve one part file into ``.tmp`` files by (day, new town); the caller commits them."""
    schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
    frame = table_frame(pq.read_table(path))
    before = frame["grid_code"].astype(object).where(frame["grid_code"].notna(), None).to_numpy()
    kept = frame[[c for c in RESOLVED if c in frame.columns]].astype(object)
    out = resolve_frame(frame, grids, index_key, snap_m=snap_m)
    out[RESOLVED] = out[RESOLVED].astype(object).where(out[RESOLVED].notna(), None)
    invalid = out["match"].to_numpy() == "invalid"  # no point (e.g. a detection without a foot point)
    if invalid.any():
        out.loc[invalid, list(kept.columns)] = kept[invalid].to_numpy()
    changed = int(np.sum(before != out["grid_code"].to_numpy()))
    day = Path(path).parent.parent.name[4:]
    root_table = Path(path).parent.parent.parent
    written = []
    for town, part in out.groupby(out["town_code"].fillna(NO_TOWN), sort=True):
        tmp = write_part(part, root_table / f"day={day}" / f"town={town}", schema, final=False)
        written.append((str(tmp), len(part)))
    return {"path": path, "rows": len(frame), "changed": changed, "written": written}


def reresolve(root: Path, table: str, grids: gpd.GeoDataFrame, *, towns: Iterable[str], client=None,
              version: int = 0, snap_m: float = 50.0) -> Reresolved:
    """Re-resolve the archived points of ``towns`` (all days) against ``grids`` and rewrite them.

    Only those towns' partitions are read. A row whose town changes moves to that town's partition.
    New files are written under temporary names first; only when every file's rows are all written
    again are they renamed into place and the old files removed (through a journal, see _commit)."""
    journal = Path(root) / table / "_swap.json"
    recover(journal)
    dirs = partitions(root, table, towns=list(towns))
    files = part_files(dirs)
    if not files:
        return Reresolved(len(dirs), 0, 0, 0, 0)
    schema = pq.read_schema(files[0]).remove_metadata()
    payload = schema.serialize().to_pybytes()
    key = grid_key(grids, version)
    if client is None:
        shared = broadcast_grids(grids)
        results = [_reresolve_file(str(f), shared, key, payload, snap_m) for f in files]
    else:
        shared = broadcast_grids(grids, client)
        futures = client.map(_reresolve_file, [str(f) for f in files], grids=shared, index_key=key,
                             schema_bytes=payload, snap_m=snap_m, pure=False)
        results = client.gather(futures)
    return _commit(results, len(dirs), journal)


def _commit(results: list[dict], dirs_read: int, journal: Path) -> Reresolved:
    """Swap the new files in for the old: checked counts first, then a journal of what to rename
    and remove, so a crash half-way is finished (never undone, never doubled) by the next run."""
    written = [w for r in results for w in r["written"]]
    bad = [r["path"] for r in results if sum(n for _, n in r["written"]) != r["rows"]]
    if bad:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise InvalidInput(f"re-resolution of {bad[0]} wrote a different row count; nothing changed")
    journal.write_text(json.dumps({"rename": [t for t, _ in written], "remove": [r["path"] for r in results]}))
    recover(journal)
    return Reresolved(dirs_read, len(results), sum(r["rows"] for r in results),
                      sum(r["changed"] for r in results), len({str(Path(t).parent) for t, _ in written}))


def recover(journal: Path) -> bool:
    """Finish an interrupted swap recorded in ``journal`` (idempotent); True if there was one."""
    if not journal.exists():
        return False
    todo = json.loads(journal.read_text())
    for tmp in todo["rename"]:
        if Path(tmp).exists():
            os.replace(tmp, tmp.removesuffix(".tmp"))
    for old in todo["remove"]:
        Path(old).unlink(missing_ok=True)
    journal.unlink()
    return True


# --------------------------------------------------------------------------- analytics


def _period(start: datetime, end: datetime) -> tuple[date, date]:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("analytics periods need aware datetimes, e.g. 2026-11-01T00:00:00+08:00")
    if not end > start:
        raise InvalidInput(f"the period must end after it starts: {start} .. {end}")
    return start.astimezone(CITY_TZ).date(), (end - timedelta(microseconds=1)).astimezone(CITY_TZ).date()


def _in_period(frame: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:
    ts = frame[column]
    return frame[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]


def _dwell(frame: pd.DataFrame, *, entity: str, gap_s: float, end: datetime) -> pd.DataFrame:
    """The rows sorted by entity and time, with the seconds each stands for: until the same entity's
    next row, capped at ``gap_s`` (a longer gap is time unobserved, not time spent) and at ``end``."""
    frame = frame.sort_values([entity, "ts"], kind="stable", ignore_index=True)
    t = frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64) / 1e6
    ids = frame[entity].to_numpy()
    same = np.append(ids[1:] == ids[:-1], False)
    nxt = np.append(t[1:], np.inf)
    dt = np.where(same, np.minimum(nxt - t, gap_s), np.minimum(gap_s, pd.Timestamp(end).timestamp() - t))
    return frame.assign(seconds=np.clip(dt, 0, None))


def _patrol_part(frame: pd.DataFrame, gap_s: float, start: datetime, end: datetime, grid: str) -> pd.DataFrame:
    frame = _in_period(frame, "ts", start, end)
    if "flag" in frame:
        frame = frame[frame["flag"].isna()]  # bad fixes are not patrol time (as in layers.workers.tracks)
    frame = _dwell(frame, entity="worker_id", gap_s=gap_s, end=end)
    frame = frame.assign(fixes=1, grid_code=frame[grid])
    frame = frame[frame["grid_code"].notna()]
    return frame.groupby(["grid_code", "worker_id"], as_index=False)[["seconds", "fixes"]].sum()


def time_in_grid(root: Path, start: datetime, end: datetime, *, gap_s: float = 300.0,
                 towns: Iterable[str] | None = None, grid: str = "grid_code") -> pd.DataFrame:
    """Per grid: patrol hours (time between a worker's consecutive good fixes, attributed to the grid
    of the earlier fix, gaps capped at ``gap_s``), fixes and distinct workers, for [start, end).
    ``grid="intake_grid_code"`` counts by the grids frozen at intake (past rankings unchanged)."""
    first, last = _period(start, end)
    ddf = read_archive(root, "worker_positions", towns=towns, start=first - timedelta(days=1), end=last,
                       columns=list(dict.fromkeys(["worker_id", "ts", grid, "flag"])))
    ddf = ddf.shuffle("worker_id")  # a worker's fixes together, across day and town partitions
    meta = pd.DataFrame({"grid_code": pd.Series([], dtype=object), "worker_id": pd.Series([], dtype=object),
                         "seconds": pd.Series([], dtype=float), "fixes": pd.Series([], dtype="int64")})
    pairs = ddf.map_partitions(_patrol_part, gap_s, start, end, grid, meta=meta).compute()
    per = pairs.groupby("grid_code").agg(seconds=("seconds", "sum"), fixes=("fixes", "sum"),
                                         workers=("worker_id", "nunique")).reset_index()
    per["hours"] = per["seconds"] / 3600.0
    return per[["grid_code", "hours", "seconds", "fixes", "workers"]].sort_values("grid_code", ignore_index=True)


def _exceed_part(frame: pd.DataFrame, limits: dict[str, float], gap_s: float, start: datetime,
                 end: datetime) -> pd.DataFrame:
    frame = _dwell(_in_period(frame, "ts", start, end), entity="sensor_id", gap_s=gap_s, end=end)
    rows = []
    for pollutant, limit in limits.items():
        over = frame[pollutant].to_numpy(dtype=float) > limit
        part = frame[over].assign(readings=1, pollutant=pollutant)
        rows.append(part[["grid_code", "pollutant", "sensor_id", "seconds", "readings"]])
    out = pd.concat(rows, ignore_index=True)
    out = out[out["grid_code"].notna()]
    return out.groupby(["grid_code", "pollutant", "sensor_id"], as_index=False)[["seconds", "readings"]].sum()


def exceedance_hours(root: Path, limits: dict[str, float], start: datetime, end: datetime, *,
                     gap_s: float = 3600.0, towns: Iterable[str] | None = None) -> pd.DataFrame:
    """Per grid and pollutant: hours a sensor's reading stood over its limit (each reading counts
    until the sensor's next one, capped at ``gap_s``), readings over and sensors over."""
    if not limits:
        raise InvalidInput("exceedance needs at least one pollutant limit, e.g. {'pm25': 75.0}")
    first, last = _period(start, end)
    ddf = read_archive(root, "sensor_readings", towns=towns, start=first - timedelta(days=1), end=last,
                       columns=["sensor_id", "ts", "grid_code", *limits])
    meta = pd.DataFrame({"grid_code": pd.Series([], dtype=object), "pollutant": pd.Series([], dtype=object),
                         "sensor_id": pd.Series([], dtype=object), "seconds": pd.Series([], dtype=float),
                         "readings": pd.Series([], dtype="int64")})
    per = ddf.shuffle("sensor_id").map_partitions(_exceed_part, limits, gap_s, start, end, meta=meta).compute()
    out = per.groupby(["grid_code", "pollutant"]).agg(
        seconds=("seconds", "sum"), readings=("readings", "sum"), sensors=("sensor_id", "nunique")).reset_index()
    out["hours"] = out["seconds"] / 3600.0
    return out[["grid_code", "pollutant", "hours", "readings", "sensors"]].sort_values(
        ["grid_code", "pollutant"], ignore_index=True)


def _detect_part(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    frame = _in_period(frame, "at", start, end)
    frame = frame.assign(day=local_day(frame["at"]), grid_code=frame["camera_grid_code"], count=1)
    keys = ["camera_id", "class_name", "day", "grid_code"]
    return frame.groupby(keys, as_index=False, dropna=False)["count"].sum()


def detection_counts(root: Path, start: datetime, end: datetime, *,
                     towns: Iterable[str] | None = None) -> pd.DataFrame:
    """Detections per camera, class and local day, with the camera's grid (for the map)."""
    first, last = _period(start, end)
    ddf = read_archive(root, "detections", towns=towns, start=first, end=last,
                       columns=["camera_id", "at", "class_name", "camera_grid_code"])
    meta = pd.DataFrame({c: pd.Series([], dtype=object) for c in ["camera_id", "class_name", "day", "grid_code"]})
    meta["count"] = pd.Series([], dtype="int64")
    per = ddf.map_partitions(_detect_part, start, end, meta=meta).compute()
    keys = ["camera_id", "class_name", "day", "grid_code"]
    return per.groupby(keys, as_index=False, dropna=False)["count"].sum().sort_values(keys, ignore_index=True)


def write_result(frame: pd.DataFrame, path: Path) -> Path:
    """An analytics result as one Parquet file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def load_layer(path: Path, grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """An analytics result joined back onto the grids: a map layer (every grid; numbers 0 where the
    result has no row for it)."""
    result = pd.read_parquet(path)
    if "grid_code" not in result.columns:
        raise InvalidInput(f"{path} has no grid_code column to join on")
    base = grids[[c for c in ["code", "name", "village_code", "town_code", "geometry"] if c in grids.columns]]
    layer = base.merge(result, left_on="code", right_on="grid_code", how="left")
    numbers = [c for c in result.columns if pd.api.types.is_numeric_dtype(result[c])]
    layer[numbers] = layer[numbers].fillna(0)
    return gpd.GeoDataFrame(layer.drop(columns=["grid_code"]), geometry="geometry", crs=grids.crs)
