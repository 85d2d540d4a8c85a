"""The resolver on a Dask LocalCluster (2 worker processes) against the single-process resolver, the
GeoParquet archive (idempotent, lossless) and re-resolution that reads only the redrawn town."""

from __future__ import annotations

from datetime import date, timedelta

import dask.dataframe as dd
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from gis import registry as R
from gis import scale
from gis.bulk import ensure_month_partitions
from gis.coords import to_wgs84
from gis.edits import split
from gis.resolve import GridIndex
from layers import archive as A
from tests import registry_city as city

TOWN_A, TOWN_B = "370783001000", "370783002000"
DAY1, DAY2, DAY3 = date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)


@pytest.fixture(scope="module")
def client():
    c = scale.local_cluster(2, threads_per_worker=1)
    yield c
    scale.close_cluster(c)


def two_towns(session) -> gpd.GeoDataFrame:
    """The registry city (town A, 1,000 m x 600 m) plus town B east of it (one village, two grids)."""
    areas = city.areas()
    east = city.to_wgs(gpd.GeoDataFrame({"code": [TOWN_B, "370783002001"], "name": ["古城街道", "北关社区"]},
                                        geometry=[city.rect(1000, 0, 2000, 600)] * 2))
    areas.loc[areas["code"] == "370783000000", "geometry"] = city.to_wgs(
        gpd.GeoDataFrame(geometry=[city.rect(0, 0, 2000, 600)])).geometry.iloc[0]
    R.import_areas(session, pd.concat([areas, east], ignore_index=True), who="t", why="t")
    grids = city.grids()
    east_grids = city.to_wgs(gpd.GeoDataFrame(
        {"code": ["370783002001001", "370783002001002"], "name": ["北关第1网格", "北关第2网格"],
         "households": [400, 400], "population": [1100, 1100]},
        geometry=[city.rect(1000, 0, 1500, 600), city.rect(1500, 0, 2000, 600)]))
    R.import_grids(session, pd.concat([grids, east_grids], ignore_index=True), who="t", why="t")
    return R.load_grids(session)


def points(n: int, seed: int = 1) -> pd.DataFrame:
    """Points over the two towns and 100 m around them."""
    rng = np.random.default_rng(seed)
    lon, lat = to_wgs84(city.X0 + rng.uniform(-100, 2100, n), city.Y0 + rng.uniform(-100, 700, n), city.GK)
    return pd.DataFrame({"lon": lon, "lat": lat})


def same(a, b) -> bool:
    return bool((pd.Series(a, dtype=object).fillna("-").to_numpy() == pd.Series(b, dtype=object).fillna("-")
                 .to_numpy()).all())


def test_dask_resolver_equals_single_process_point_for_point(session, client):
    grids = two_towns(session)
    vertices = shapely.get_coordinates(grids.geometry.values)  # on shared edges: "boundary"
    frame = pd.concat([points(20_000), pd.DataFrame(vertices[::7], columns=["lon", "lat"])], ignore_index=True)
    ref = GridIndex.from_frame(grids).resolve(frame["lon"], frame["lat"])
    out = scale.resolve_partitions(dd.from_pandas(frame, npartitions=6), grids, client=client, version=7).compute()
    assert len(out) == len(frame)
    assert same(out["grid_code"], ref.grid_code) and same(out["match"], ref.match)
    assert set(ref.match) == {"inside", "boundary", "snapped", "outside"}
    out = out.astype({c: object for c in scale.RESOLVED})
    hit = out["grid_code"].notna()
    assert (out.loc[hit, "town_code"] == out.loc[hit, "grid_code"].str[:9] + "000").all()
    assert (out.loc[hit, "village_code"] == out.loc[hit, "grid_code"].str[:12]).all()
    assert out.loc[~hit, "town_code"].isna().all()
    scale.resolve_partitions(dd.from_pandas(frame, npartitions=4), grids, client=client, version=7).compute()
    key = scale.grid_key(grids, 7)
    assert [b.get(key) for b in client.run(scale.builds).values()] == [1, 1]  # once per worker process


def insert_positions(session, frame: pd.DataFrame) -> None:
    ensure_month_partitions(session, "worker_positions", frame["ts"])
    session.execute(text(
        "INSERT INTO worker_positions (worker_id, ts, geom, grid_code, town_code, match, flag) "
        "SELECT w, t, ST_SetSRID(ST_MakePoint(x, y), 4326), g, tc, m, f FROM unnest(CAST(:w AS text[]), "
        "CAST(:t AS timestamptz[]), CAST(:x AS float8[]), CAST(:y AS float8[]), CAST(:g AS text[]), "
        "CAST(:tc AS text[]), CAST(:m AS text[]), CAST(:f AS text[])) AS u(w, t, x, y, g, tc, m, f)"),
        {"w": list(frame["worker_id"]), "t": [t.to_pydatetime() for t in frame["ts"]],
         "x": list(frame["lon"]), "y": list(frame["lat"]), "g": [None if pd.isna(v) else v for v in frame["grid_code"]],
         "tc": [None if pd.isna(v) else v for v in frame["town_code"]], "m": list(frame["match"]),
         "f": [None] * len(frame)})


def fixes(grids: gpd.GeoDataFrame, n_per_day: int = 400) -> pd.DataFrame:
    """Fixes of 8 workers over three local days, resolved the way intake resolves them."""
    frames = []
    for i, day in enumerate((DAY1, DAY2, DAY3)):
        start, _ = scale.day_bounds(day)
        frame = points(n_per_day, seed=10 + i).iloc[:n_per_day]
        frame["worker_id"] = [f"W{k % 8}" for k in range(n_per_day)]
        frame["ts"] = pd.Timestamp(start) + pd.to_timedelta(np.arange(n_per_day) * 30, unit="s")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    resolved = scale.resolve_frame(frame, grids, scale.grid_key(grids, 0))
    return resolved


def archived(root) -> pd.DataFrame:
    files = scale.part_files(scale.partitions(root, "worker_positions"))
    return pd.concat([scale.read_part(f) for f in files], ignore_index=True)


def test_archive_is_idempotent_and_loses_nothing(session, tmp_path):
    grids = two_towns(session)
    rows = fixes(grids)
    insert_positions(session, rows)
    first = A.archive(session, tmp_path, before=DAY3, tables=["worker_positions"])
    assert [(r.day, r.rows, r.written, r.already) for r in first] == [(DAY1, 400, 400, 0), (DAY2, 400, 400, 0)]
    left = session.scalar(text("SELECT count(*) FROM worker_positions"))
    assert left == 400
    stored = archived(tmp_path)
    assert len(stored) == 800 and not stored.duplicated(["worker_id", "ts"]).any()
    dirs = {p.relative_to(tmp_path).as_posix() for p in scale.partitions(tmp_path, "worker_positions")}
    assert f"worker_positions/day=2026-10-05/town={TOWN_A}" in dirs
    assert f"worker_positions/day=2026-10-06/town={TOWN_B}" in dirs
    assert "worker_positions/day=2026-10-05/town=none" in dirs  # outside points are archived too
    expect = rows[rows["ts"] < pd.Timestamp(scale.day_bounds(DAY3)[0])].sort_values(["worker_id", "ts"])
    got = stored.sort_values(["worker_id", "ts"])
    assert same(got["grid_code"], expect["grid_code"]) and same(got["match"], expect["match"])
    assert np.allclose(got["lon"], expect["lon"], atol=1e-12) and np.allclose(got["lat"], expect["lat"], atol=1e-12)
    part = scale.part_files([scale.partition_dir(tmp_path, "worker_positions", "2026-10-05", TOWN_A)])[0]
    geo = gpd.read_parquet(part)  # valid GeoParquet: geopandas reads the points back
    assert geo.crs.to_string() == "OGC:CRS84" and (geo.geometry.x == scale.read_part(part)["lon"]).all()

    assert A.archive(session, tmp_path, before=DAY3) == []  # re-run: nothing to do, nothing doubled
    assert len(archived(tmp_path)) == 800

    # a crash after writing but before the delete committed: the rows are in both places; plus a
    # late fix for DAY1 arriving after the first run
    again = expect.iloc[:5]
    late = expect.iloc[[0]].assign(ts=expect["ts"].iloc[0] + timedelta(seconds=1))
    insert_positions(session, pd.concat([again, late]))
    second = A.archive(session, tmp_path, before=DAY3)
    assert [(r.rows, r.written, r.already) for r in second] == [(6, 1, 5)]
    stored = archived(tmp_path)
    assert len(stored) == 801 and not stored.duplicated(["worker_id", "ts"]).any()
    assert session.scalar(text("SELECT count(*) FROM worker_positions")) == 400


def test_reresolution_reads_only_the_redrawn_towns_partitions(session, tmp_path, client):
    grids = two_towns(session)
    insert_positions(session, fixes(grids))
    A.archive(session, tmp_path, before=DAY3)
    untouched = {p: sorted(f.name for f in p.glob("part-*.parquet"))
                 for p in scale.partitions(tmp_path, "worker_positions") if p.name != f"town={TOWN_B}"}
    version = R.registry_version(session)
    a, b = (to_wgs84(np.array([city.X0 + 1250.0] * 2), np.array([city.Y0 - 10, city.Y0 + 610]), city.GK))
    split(session, "370783002001001", shapely.LineString(np.column_stack([a, b])), who="规划员", why="拆分网格")

    done, towns = A.reresolve_after_edits(session, tmp_path, since_edit=version, client=client)
    assert towns == {TOWN_B}
    assert done.partitions_read == 2 and done.files_read == 2  # town B on DAY1 and DAY2, nothing else
    assert done.changed > 0
    for p, names in untouched.items():
        assert sorted(f.name for f in p.glob("part-*.parquet")) == names
    new = R.load_grids(session)
    stored = pd.concat([scale.read_part(f) for f in scale.part_files(
        scale.partitions(tmp_path, "worker_positions", towns=[TOWN_B]))], ignore_index=True)
    ref = GridIndex.from_frame(new).resolve(stored["lon"], stored["lat"])
    assert same(stored["grid_code"], ref.grid_code) and same(stored["match"], ref.match)
    assert {"370783002001003", "370783002001004"} <= set(stored["grid_code"])
    assert "370783002001001" in set(stored["intake_grid_code"])  # frozen at intake, never rewritten
    assert len(archived(tmp_path)) == 800
    done, towns = A.reresolve_after_edits(session, tmp_path, client=client)  # up to date: reads nothing
    assert towns == set() and done.partitions_read == 0


def test_analytics_over_the_archive(tmp_path, client):
    start, end = scale.day_bounds(DAY1)
    t0 = pd.Timestamp(start) + pd.Timedelta(hours=9)
    g1, g2 = "370783001001001", "370783001002001"
    fixes_ = pd.DataFrame({"worker_id": "W1", "ts": t0 + pd.to_timedelta(np.arange(21) * 30, unit="s"),
                           "grid_code": [g1] * 11 + [g2] * 10, "town_code": TOWN_A, "match": "inside",
                           "flag": None, "lon": 118.8, "lat": 36.9})
    fixes_["ts"] = fixes_["ts"].astype("datetime64[us, UTC]")
    for col in ("accuracy_m", "speed_ms"):
        fixes_[col] = np.nan
    fixes_["received_at"] = fixes_["ts"]
    fixes_["intake_grid_code"], fixes_["intake_town_code"] = g1, TOWN_A
    schema = scale.with_geometry(A.SPECS["worker_positions"].schema)
    half = 15  # two files in two town partitions: the worker's sequence spans both
    scale.write_part(fixes_.iloc[:half], scale.partition_dir(tmp_path, "worker_positions", "2026-10-05", TOWN_A), schema)
    scale.write_part(fixes_.iloc[half:], scale.partition_dir(tmp_path, "worker_positions", "2026-10-05", TOWN_B), schema)
    with client.as_current():
        patrol = scale.time_in_grid(tmp_path, start, end)
    assert patrol.to_dict("list") == {"grid_code": [g1, g2], "hours": [330 / 3600, 570 / 3600],
                                      "seconds": [330.0, 570.0], "fixes": [11, 10], "workers": [1, 1]}
    with client.as_current():
        frozen = scale.time_in_grid(tmp_path, start, end, grid="intake_grid_code")
    assert frozen.to_dict("list") == {"grid_code": [g1], "hours": [900 / 3600], "seconds": [900.0],
                                      "fixes": [21], "workers": [1]}

    readings = pd.DataFrame({"sensor_id": "S1", "ts": (t0 + pd.to_timedelta([0, 1, 2], unit="h")).astype(
        "datetime64[us, UTC]"), "pm25": [80.0, 60.0, 90.0], "grid_code": g1, "town_code": TOWN_A,
        "match": "inside", "lon": 118.8, "lat": 36.9})
    for col in ("pm10", "no2", "so2", "o3", "co"):
        readings[col] = np.nan
    readings["received_at"] = readings["ts"]
    readings["intake_grid_code"], readings["intake_town_code"] = g1, TOWN_A
    scale.write_part(readings, scale.partition_dir(tmp_path, "sensor_readings", "2026-10-05", TOWN_A),
                     scale.with_geometry(A.SPECS["sensor_readings"].schema))
    with client.as_current():
        over = scale.exceedance_hours(tmp_path, {"pm25": 75.0}, start, end)
    assert over.to_dict("list") == {"grid_code": [g1], "pollutant": ["pm25"], "hours": [2.0], "readings": [2],
                                    "sensors": [1]}

    det = pd.DataFrame({"id": [1, 2, 3, 4], "camera_id": "C1", "at": [t0] * 4, "class_name": ["person"] * 3 + ["car"],
                        "confidence": 0.9, "x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0, "track_id": pd.NA,
                        "grid_code": None, "camera_grid_code": g2, "town_code": TOWN_A, "lon": np.nan, "lat": np.nan,
                        "intake_grid_code": None, "intake_town_code": TOWN_A})
    det["at"] = det["at"].astype("datetime64[us, UTC]")
    scale.write_part(det, scale.partition_dir(tmp_path, "detections", "2026-10-05", TOWN_A),
                     scale.with_geometry(A.SPECS["detections"].schema))
    with client.as_current():
        counts = scale.detection_counts(tmp_path, start, end)
    assert counts.to_dict("list") == {"camera_id": ["C1", "C1"], "class_name": ["car", "person"],
                                      "day": ["2026-10-05"] * 2, "grid_code": [g2, g2], "count": [1, 3]}

    grids = city.grids().assign(village_code=lambda f: f["code"].str[:12])
    layer = scale.load_layer(scale.write_result(patrol, tmp_path / "out" / "patrol.parquet"), grids)
    assert isinstance(layer, gpd.GeoDataFrame) and len(layer) == 3
    assert dict(zip(layer["code"], layer["hours"], strict=True)) == {g1: 330 / 3600, "370783001001002": 0.0, g2: 570 / 3600}


def test_cli_archive_reresolve_and_resolve_dask(cli_env, tmp_path, client):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from scripts.cli import app

    runner = CliRunner()
    eng = create_engine(cli_env)
    with Session(eng) as s:
        grids = two_towns(s)
        insert_positions(s, fixes(grids, n_per_day=100))
        version = R.registry_version(s)
        s.commit()
    root = tmp_path / "archive"
    result = runner.invoke(app, ["archive", "--before", "2026-10-07", "--out", str(root)])
    assert result.exit_code == 0, result.output
    assert "archived 200 rows from 2 table-days before 2026-10-07" in result.output
    result = runner.invoke(app, ["archive", "--before", "2026-10-07", "--out", str(root)])
    assert "archived 0 rows" in result.output and len(archived(root)) == 200

    with Session(eng) as s:
        a, b = to_wgs84(np.array([city.X0 + 1250.0] * 2), np.array([city.Y0 - 10, city.Y0 + 610]), city.GK)
        split(s, "370783002001001", shapely.LineString(np.column_stack([a, b])), who="规划员", why="拆分网格")
        s.commit()
    address = client.scheduler.address
    result = runner.invoke(app, ["archive-reresolve", "--out", str(root), "--since", str(version),
                                 "--scheduler", address])
    assert result.exit_code == 0, result.output
    assert f"towns redrawn: {TOWN_B}; partitions read 2 " in result.output

    source = tmp_path / "points.parquet"
    points(3_000).to_parquet(source)
    result = runner.invoke(app, ["resolve-dask", str(source), str(tmp_path / "out"), "--scheduler", address])
    assert result.exit_code == 0, result.output
    back = pd.read_parquet(tmp_path / "out")
    with Session(eng) as s:
        ref = GridIndex.from_frame(R.load_grids(s)).resolve(back["lon"], back["lat"])
    eng.dispose()
    assert len(back) == 3_000 and same(back["grid_code"].astype(object), ref.grid_code)
    result = runner.invoke(app, ["archive", "--before", "yesterday", "--out", str(root)])
    assert result.exit_code == 1 and "--before must be a date" in result.output


def test_an_interrupted_swap_is_finished_not_doubled(tmp_path):
    old, tmp = tmp_path / "part-old.parquet", tmp_path / "part-new.parquet.tmp"
    old.write_bytes(b"old")
    tmp.write_bytes(b"new")
    journal = tmp_path / "_swap.json"
    journal.write_text(f'{{"rename": ["{tmp}"], "remove": ["{old}"]}}')
    assert scale.recover(journal) and not scale.recover(journal)
    assert [p.name for p in tmp_path.iterdir()] == ["part-new.parquet"]


def test_archive_moves_readings_and_detections_with_their_towns(session, tmp_path):
    two_towns(session)
    t = pd.Timestamp(scale.day_bounds(DAY1)[0]) + pd.Timedelta(hours=8)
    session.execute(text(
        "INSERT INTO sensors (id, name, kind, pollutants, status, geom, grid_code, town_code, match) VALUES "
        "('S1', '东关监测点', 'air', ARRAY['pm25'], 'active', ST_SetSRID(ST_MakePoint(118.8, 36.9), 4326), "
        "'370783001001002', :town, 'inside')"), {"town": TOWN_A})
    ensure_month_partitions(session, "sensor_readings", pd.Series([t]))
    session.execute(text("INSERT INTO sensor_readings (sensor_id, ts, pm25) VALUES ('S1', :a, 80), ('S1', :b, 60)"),
                    {"a": t.to_pydatetime(), "b": (t + pd.Timedelta(hours=1)).to_pydatetime()})
    session.execute(text(
        "INSERT INTO cameras (id, name, geom, grid_code, town_code) VALUES "
        "('C1', '北关路口', ST_SetSRID(ST_MakePoint(118.81, 36.9), 4326), '370783002001001', :town)"), {"town": TOWN_B})
    session.execute(text(
        "INSERT INTO detections (camera_id, at, class_name, confidence, x1, y1, x2, y2) VALUES "
        "('C1', :a, 'person', 0.9, 1, 2, 3, 4)"), {"a": t.to_pydatetime()})
    done = A.archive(session, tmp_path, before=DAY2)
    assert [(r.table, r.rows, r.partitions) for r in done] == [("sensor_readings", 2, 1), ("detections", 1, 1)]
    readings = scale.read_part(scale.part_files(scale.partitions(tmp_path, "sensor_readings", towns=[TOWN_A]))[0])
    assert list(readings["pm25"]) == [80.0, 60.0] and (readings["lon"] == 118.8).all()
    det = scale.read_part(scale.part_files(scale.partitions(tmp_path, "detections", towns=[TOWN_B]))[0])
    assert det["camera_grid_code"].tolist() == ["370783002001001"] and det["lon"].isna().all()
    left = session.execute(text("SELECT (SELECT count(*) FROM sensor_readings), (SELECT count(*) FROM detections)"))
    assert tuple(left.one()) == (0, 0)
