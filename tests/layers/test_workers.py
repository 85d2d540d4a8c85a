"""Workers on a real PostGIS: GPS ingest in any CRS, bad-fix flags, tracks, coverage, live index, report."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from gis import registry as R
from gis.coords import from_wgs84, to_wgs84
from layers.incidents.intake import create_ticket
from layers.workers import ingest, live, registry, report, tracks
from layers.workers.tracks import measure, spike_mask
from tests import registry_city as city

DAY = date(2026, 5, 1)
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)  # 08:00 in the city
NOW = datetime(2026, 5, 2, tzinfo=UTC)


def lonlat(x, y):
    lon, lat = to_wgs84(city.X0 + np.asarray(x, float), city.Y0 + np.asarray(y, float), city.GK)
    return lon, lat


@pytest.fixture
def crew(session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    registry.import_workers(session, [
        {"id": "W1", "name": "张伟", "role": "专职网格员", "phone": "13812345678", "grids": "370783001001001"},
        {"id": "W2", "name": "李娜", "role": "grid_chief", "phone": "13900001111",
         "grids": "370783001001002;370783001002001"},
        {"id": "W3", "name": "王芳", "role": "helper", "grids": "370783001002001", "on_duty": "false"},
    ])
    return session


def walk(worker, xs, ys, start=T0, step_s=30, **extra):
    lon, lat = lonlat(xs, ys)
    return [{"worker_id": worker, "ts": (start + timedelta(seconds=step_s * i)).isoformat(), "lon": lon[i],
             "lat": lat[i], **extra} for i in range(len(lon))]


# --------------------------------------------------------------------------- pure parts

def test_a_spike_is_flagged_but_a_relocation_is_not():
    t = np.arange(6) * 30.0
    x = np.array([0, 30, 3000, 60, 90, 120.0])
    assert spike_mask(x, np.zeros(6), t, np.zeros(6)).tolist() == [False, False, True, False, False, False]
    x = np.array([0, 30, 3000, 3030, 3060, 3090.0])
    assert not spike_mask(x, np.zeros(6), t, np.zeros(6)).any()


def test_measure_splits_at_gaps_and_counts_time_in_and_out():
    area = shapely.box(0, 0, 100, 100)
    x = np.array([10, 50, 90, 130, 500, 540.0])  # 40 m steps; 130 is outside; a 20-minute gap before 500
    t = np.array([0, 30, 60, 90, 1290, 1320.0])
    m = measure(x, np.full(6, 50.0), t, area, buffer_m=10)
    assert m["pieces"] == 2
    assert m["distance_m"] == pytest.approx(120 + 40)
    assert (m["inside_s"], m["outside_s"]) == (90.0, 30.0)
    covered = 90 * 20 + np.pi * 10**2 / 2  # a 20 m band from x=10 with a round cap reaching x=0
    assert m["coverage"] == pytest.approx(covered / 10_000, rel=1e-3)


# --------------------------------------------------------------------------- registry

def test_workers_have_roles_grids_and_masked_phones(crew):
    w = registry.get_worker(crew, "W2")
    assert (w["role"], w["role_name"], w["phone"]) == ("grid_chief", "网格长", "139****1111")
    assert w["grids"] == ["370783001001002", "370783001002001"] and w["town_code"] == "370783001000"
    result = registry.import_workers(crew, "id,name,role,grids\nW9,赵六,队长,370783001001001\nW8,钱七,helper,370783009201001\n")
    assert result["imported"] == 0
    assert [r["row"] for r in result["rejected"]] == [1, 2]
    assert "unknown role" in result["rejected"][0]["reason"] and "no current grid" in result["rejected"][1]["reason"]


# --------------------------------------------------------------------------- ingest

def test_bad_rows_are_refused_and_bad_fixes_flagged_not_dropped(crew):
    good = walk("W1", np.linspace(50, 450, 10), np.full(10, 450))
    good[4]["lon"] += 0.05  # ~4.5 km away and back within a minute: a spike
    good[6]["accuracy"] = 250
    good[8]["lon"], good[8]["lat"] = 0, 0
    bad = [{"worker_id": "W7", "ts": T0.isoformat(), "lon": 118.8, "lat": 36.9},
           {"worker_id": "W1", "lon": 118.8, "lat": 36.9},
           {"worker_id": "W1", "ts": (NOW + timedelta(hours=1)).isoformat(), "lon": 118.8, "lat": 36.9},
           {"worker_id": "W1", "ts": T0.isoformat(), "lon": "东经118", "lat": 36.9}]
    result = ingest.ingest_positions(crew, good + bad, now=NOW)
    assert (result.received, result.inserted, result.flagged) == (14, 10, 3)
    assert result.rejected == [{"row": 11, "reason": "unknown worker id"}, {"row": 12, "reason": "missing timestamp"},
                               {"row": 13, "reason": "timestamp in the future (more than 5 min ahead)"},
                               {"row": 14, "reason": "non-numeric coordinate (lon)"}]
    flags = crew.execute(text("SELECT flag, grid_code FROM worker_positions ORDER BY ts")).all()
    assert [f.flag for f in flags] == [None] * 4 + ["speed", None, "accuracy", None, "zero", None]
    assert flags[8].grid_code is None and flags[0].grid_code == "370783001001001"
    again = ingest.ingest_positions(crew, good, now=NOW)
    assert (again.inserted, again.duplicates) == (0, 10)


def test_gcj02_fixes_are_stored_in_wgs84_and_resolved(crew):
    lon, lat = lonlat([250], [150])
    glon, glat = from_wgs84(lon, lat, "gcj02")
    result = ingest.ingest_positions(crew, [{"worker_id": "W2", "ts": T0.isoformat(), "lon": glon[0],
                                             "lat": glat[0]}], crs="gcj02", now=NOW)
    assert result.inserted == 1
    row = crew.execute(text("SELECT ST_X(geom) x, ST_Y(geom) y, grid_code FROM worker_positions")).one()
    gx, gy = from_wgs84([row.x], [row.y], city.GK)
    assert np.hypot(gx[0] - city.X0 - 250, gy[0] - city.Y0 - 150) < 0.5
    assert row.grid_code == "370783001001002"


# --------------------------------------------------------------------------- tracks

def test_day_track_distance_gaps_time_outside_coverage_and_tickets(crew):
    morning = walk("W1", np.arange(50, 451, 40.0), np.full(11, 450))  # 400 m east in 5 min inside
    out = walk("W1", np.full(4, 450.0), [450, 570, 690, 810], start=T0 + timedelta(minutes=5, seconds=30))
    afternoon = walk("W1", np.arange(450, 49, -50.0), np.full(9, 350), start=T0 + timedelta(hours=5))
    ingest.ingest_positions(crew, morning + out + afternoon, now=NOW)
    lon, lat = lonlat([100], [350])
    create_ticket(crew, channel="patrol", category="0102", description="暴露垃圾", lon=float(lon[0]),
                  lat=float(lat[0]), source_ref="W1", reporter_name="张伟", at=T0 + timedelta(hours=5, minutes=1))
    t = tracks.day_track(crew, "W1", DAY)
    assert (t.fixes, t.flagged, t.pieces) == (24, 0, 2)
    assert t.distance_m == pytest.approx(400 + 360 + 400, abs=0.5)
    assert (t.inside_s, t.outside_s) == (300 + 30 + 60 + 240, 30)  # the step leaving y=690 counts outside
    walked = shapely.MultiLineString([[(50, 450), (450, 450), (450, 810)], [(450, 350), (50, 350)]])
    grid = shapely.box(0, 300, 500, 600)
    assert t.coverage == pytest.approx(walked.buffer(30).intersection(grid).area / grid.area, rel=0.01)
    assert t.last_at == T0 + timedelta(hours=5, minutes=4)
    assert len(t.geometry.geoms) == 2
    assert [k["id"] for k in t.tickets] and t.tickets[0]["channel"] == "patrol"


# --------------------------------------------------------------------------- live index and nearest help

def test_live_index_moves_workers_incrementally():
    index = live.LiveIndex()
    lon, lat = lonlat([0, 100, 500], [0, 0, 0])
    index.update("A", lon[1], lat[1], T0)
    index.update("B", lon[2], lat[2], T0)
    assert [(w.worker_id, round(d)) for w, d in index.nearest(lon[0], lat[0], 2)] == [("A", 100), ("B", 500)]
    assert not index.update("A", lon[2], lat[2], T0 - timedelta(minutes=1))  # an older fix never moves it
    index.update("A", lon[0], lat[0], T0 + timedelta(minutes=1))
    assert [(w.worker_id, round(d)) for w, d in index.nearest(lon[0], lat[0], 2)] == [("A", 0), ("B", 500)]
    assert len(index) == 2


def test_nearest_on_duty_workers_to_a_ticket(crew):
    ingest.ingest_positions(crew, walk("W1", [100], [450]) + walk("W2", [300], [450]) + walk("W3", [120], [450]),
                            now=NOW)
    lon, lat = lonlat([110], [440])
    ticket = create_ticket(crew, channel="hotline", category="0102", description="垃圾", lon=float(lon[0]),
                           lat=float(lat[0]), at=T0)
    found = live.nearest_workers(crew, ticket_id=ticket.id, k=5, now=T0 + timedelta(minutes=2),
                                 index=live.LiveIndex())
    assert [f["worker_id"] for f in found] == ["W1", "W2"]  # W3 is off duty
    assert found[0]["distance_m"] == pytest.approx(np.hypot(10, 10), abs=0.1)
    assert found[0]["fix_age_s"] == 120 and found[1]["grids"] == ["370783001001002", "370783001002001"]


# --------------------------------------------------------------------------- patrol report

def test_patrol_report_per_town_and_csv(crew):
    ingest.ingest_positions(crew, walk("W1", np.arange(50, 451, 40.0), np.full(11, 450)), now=NOW)
    frame = report.patrol_report(crew, "370783001000", DAY)
    assert list(frame["worker_id"]) == ["W2", "W3", "W1"]  # worst coverage first
    w1 = frame.set_index("worker_id").loc["W1"]
    assert (w1["fixes"], w1["distance_km"], w1["inside_min"], w1["first_at"]) == (11, 0.4, 5, "08:00:00")
    body = report.report_csv(frame)
    assert body.startswith("\ufeff".encode()) and "姓名 name" in body.decode("utf-8-sig")


def test_simulated_day_walks_inside_grids(demo_session):
    from layers.workers.simulate import simulate_day

    result = simulate_day(demo_session, DAY, limit=3, tickets=2, now=NOW)
    assert result.workers == 3 and result.fixes > 1500 and result.rejected == 0
    assert result.flagged >= 3  # the spoiled fixes are flagged, not dropped
    t = tracks.day_track(demo_session, "W0001", DAY)
    assert t.pieces >= 2 and t.inside_s > 0.9 * (t.inside_s + t.outside_s)


# --------------------------------------------------------------------------- small and big batches

def _stored(session) -> list[tuple]:
    return [tuple(r) for r in session.execute(text(
        "SELECT worker_id, ts, ST_X(geom), ST_Y(geom), accuracy_m, speed_ms, grid_code, town_code, match, flag "
        "FROM worker_positions ORDER BY worker_id, ts")).all()]


def _mixed_walk():
    fixes = walk("W1", np.linspace(50, 450, 12), np.full(12, 450), accuracy=8) + walk(
        "W2", np.full(8, 250.0), np.linspace(100, 500, 8), start=T0 + timedelta(seconds=7))
    fixes[3]["lon"] += 0.05  # a spike
    fixes[5]["accuracy"] = 300
    fixes[14]["lon"], fixes[14]["lat"] = 0, 0
    return fixes


def test_a_small_batch_and_a_copied_one_store_the_same_rows(crew, monkeypatch):
    """Up to UNNEST_MAX_ROWS rows go in with one INSERT over unnest(arrays), beyond with COPY: same rows."""
    from gis import bulk

    small = ingest.ingest_positions(crew, _mixed_walk(), now=NOW)
    by_unnest = _stored(crew)
    crew.execute(text("DELETE FROM worker_positions"))
    monkeypatch.setattr(bulk, "UNNEST_MAX_ROWS", 0)
    big = ingest.ingest_positions(crew, _mixed_walk(), now=NOW)
    assert (small.inserted, small.flagged) == (big.inserted, big.flagged) == (20, 3)
    assert _stored(crew) == by_unnest
    assert [r[9] for r in by_unnest if r[9]] == ["speed", "accuracy", "zero"]
    assert by_unnest[0][4] == 8.0 and by_unnest[-1][4] is None  # W2 sent no accuracy: NULL


def test_the_load_test_batch_as_csv(crew):
    """What scripts/bench_load.py posts: one worker, ten fixes 1 ms apart, as CSV bytes."""
    lon, lat = lonlat([100], [450])
    body = "worker_id,ts,lon,lat,accuracy\n" + "".join(
        f"W1,{(T0 + timedelta(milliseconds=i)).isoformat()},{lon[0]:.6f},{lat[0]:.6f},8\n" for i in range(10))
    result = ingest.ingest_positions(crew, body.encode(), fmt="csv", now=NOW)
    assert (result.received, result.inserted, result.rejected, result.flagged) == (10, 10, [], 0)
    last = crew.execute(text("SELECT ts, grid_code FROM worker_last_positions WHERE worker_id = 'W1'")).one()
    assert last == (T0 + timedelta(milliseconds=9), "370783001001001")


def test_workers_are_looked_up_by_the_batch_ids(crew):
    """Each batch asks for its own ids: a worker registered a moment ago is known, a deactivated one is not."""
    registry.create_worker(crew, id="W4", name="赵敏", grids=["370783001001001"])
    registry.update_worker(crew, "W2", active=False)
    lon, lat = lonlat([100], [450])
    batch = [{"worker_id": w, "ts": T0.isoformat(), "lon": lon[0], "lat": lat[0]} for w in ("W4", "W2", " W1 ")]
    result = ingest.ingest_positions(crew, batch, now=NOW)
    assert result.inserted == 2 and result.rejected == [{"row": 2, "reason": "unknown worker id"}]
    assert registry.known_ids(crew, ["W1", "W2", "W9"]) == {"W1"} and "W4" in registry.known_ids(crew)


def test_positions_are_announced_once_committed_and_a_resend_is_silent(scratch_url):
    """LISTEN onemap_workers hears where workers are after COMMIT; a resent batch (nothing inserted) says
    nothing; a batch of only flagged fixes says so with an empty list."""
    import json

    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    eng = create_engine(scratch_url)
    listener = psycopg.connect(make_url(scratch_url).set(drivername="postgresql").render_as_string(
        hide_password=False), autocommit=True)
    listener.execute("LISTEN onemap_workers")
    try:
        with Session(eng) as session:
            R.import_areas(session, city.areas(), who="t", why="t")
            R.import_grids(session, city.grids(), who="t", why="t")
            registry.import_workers(session, [{"id": "W1", "name": "张伟", "grids": "370783001001001"},
                                              {"id": "W2", "name": "李娜", "grids": "370783001002001"}])
            session.commit()
            batch = walk("W1", [100, 140], [450, 450]) + walk("W2", [700], [300])
            assert ingest.ingest_positions(session, batch, now=NOW).inserted == 3
            assert list(listener.notifies(timeout=0.3)) == []  # not before COMMIT
            session.commit()
            [note] = listener.notifies(timeout=5.0, stop_after=1)
            message = json.loads(note.payload)
            assert (message["kind"], message["count"]) == ("positions", 2)
            assert [(w["id"], w["ts"], w["grid_code"]) for w in message["workers"]] == [
                ("W1", (T0 + timedelta(seconds=30)).isoformat(), "370783001001001"),
                ("W2", T0.isoformat(), "370783001002001")]
            assert ingest.ingest_positions(session, batch, now=NOW).inserted == 0
            session.commit()
            assert list(listener.notifies(timeout=0.5)) == []
            flagged = [{"worker_id": "W1", "ts": (T0 + timedelta(hours=1)).isoformat(), "lon": 0, "lat": 0}]
            assert ingest.ingest_positions(session, flagged, now=NOW).flagged == 1
            session.commit()
            [note] = listener.notifies(timeout=5.0, stop_after=1)
            assert json.loads(note.payload) == {"kind": "positions", "count": 0, "workers": []}
            stored = session.scalars(text("SELECT count(*) FROM worker_positions_p202605")).one()
            assert stored == 4  # the month's partition was created on demand and committed
    finally:
        listener.close()
        eng.dispose()
