"""Sensors, cameras, worker assignments and grid workers follow the grids when planners redraw them.

The tiny city (tests/registry_city.py), in local metres: west village 370783001001 holds grid 001
(north, y 300-600) and 002 (south, y 0-300), x 0-500; east village 370783001002 holds grid 001
(x 500-1000). Every edit runs on a real PostGIS inside the test's rolled-back transaction.
"""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import LineString
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gis import edits
from gis import registry as R
from gis.coords import to_wgs84
from gis.models import Grid, GridEdit
from layers import follow
from layers.accounts.security import create_user, get_user, scope_of
from layers.cameras.service import create_camera, get_camera
from layers.incidents.intake import create_ticket
from layers.sensors.registry import create_sensor, get_sensor, scoped_ids
from layers.workers.registry import create_worker, get_worker
from tests import registry_city as city

NORTH, SOUTH, EAST = "370783001001001", "370783001001002", "370783001002001"


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = to_wgs84([city.X0 + x], [city.Y0 + y], city.GK)
    return float(lon[0]), float(lat[0])


def line(x1, y1, x2, y2) -> LineString:
    return LineString([lonlat(x1, y1), lonlat(x2, y2)])


@pytest.fixture
def town(session):
    """The tiny city with a sensor and a camera in each west grid, one far east, two workers, two accounts."""
    follow.install()
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    create_sensor(session, id="S-NW", name="北西站", **dict(zip(("lon", "lat"), lonlat(100, 450), strict=True)))
    create_sensor(session, id="S-SOUTH", name="南站", **dict(zip(("lon", "lat"), lonlat(100, 150), strict=True)))
    create_sensor(session, id="S-EAST", name="东站", **dict(zip(("lon", "lat"), lonlat(800, 300), strict=True)))
    create_camera(session, id="C-NE", name="北东摄像头", **dict(zip(("lon", "lat"), lonlat(400, 500), strict=True)))
    create_camera(session, id="C-EAST", name="东摄像头", **dict(zip(("lon", "lat"), lonlat(900, 100), strict=True)))
    create_worker(session, id="W-NORTH", name="张伟", grids=[NORTH])
    create_worker(session, id="W-WEST", name="李娜", role="grid_chief", grids=[NORTH, SOUTH])
    create_worker(session, id="W-EAST", name="王芳", grids=[EAST])
    create_user(session, username="wang", password="correct horse battery", role="grid_worker",
                area_code="370783001001", grid_codes=[NORTH])
    create_user(session, username="zhao", password="correct horse battery", role="grid_worker",
                grid_codes=[EAST])
    create_ticket(session, channel="hotline", category="0102", description="暴露垃圾",
                  **dict(zip(("lon", "lat"), lonlat(120, 460), strict=True)))
    return session


def snapshot(session) -> dict:
    """Every row an edit may touch, to prove what it did not."""
    return {
        "sensors": {r[0]: tuple(r[1:]) for r in session.execute(text(
            "SELECT id, grid_code, village_code, town_code, district_code, match, registry_version FROM sensors"))},
        "cameras": {r[0]: tuple(r[1:]) for r in session.execute(text(
            "SELECT id, grid_code, village_code, town_code, district_code, match, registry_version, updated_at "
            "FROM cameras"))},
        "workers": {r[0]: tuple(r[1:]) for r in session.execute(text(
            "SELECT w.id, w.town_code, array_agg(g.grid_code || '@' || g.since ORDER BY g.grid_code) "
            "FROM workers w JOIN worker_grids g ON g.worker_id = w.id GROUP BY w.id"))},
        "users": {r[0]: tuple(r[1:]) for r in session.execute(text(
            "SELECT username, grid_codes, updated_at FROM users"))},
        "tickets": [tuple(r) for r in session.execute(text(
            "SELECT id, grid_code, town_code, state FROM tickets ORDER BY id"))],
    }


def changed(before: dict, after: dict) -> dict:
    out = {}
    for key in ("sensors", "cameras", "workers", "users"):
        out[key] = sorted(k for k in after[key] if before[key].get(k) != after[key][k])
    out["tickets"] = before["tickets"] != after["tickets"]
    return out


def test_split_moves_each_asset_to_the_piece_holding_it(town):
    before = snapshot(town)
    done = edits.split(town, NORTH, line(250, 250, 250, 650), who="规划科", why="北网格一分为二")
    west, east = sorted(done.opened)  # reading order: west piece first
    assert done.closed == [NORTH] and {west[:12], east[:12]} == {NORTH[:12]}
    f = done.followed
    assert f["successors"] == {NORTH: [west, east]}
    assert f["sensors"] == [{"id": "S-NW", "old_grid": NORTH, "new_grid": west,
                             "old_town": "370783001000", "new_town": "370783001000"}]
    assert f["cameras"] == [{"id": "C-NE", "old_grid": NORTH, "new_grid": east,
                             "old_town": "370783001000", "new_town": "370783001000"}]
    assert f["workers"] == [{"worker_id": "W-NORTH", "old": [NORTH], "new": [west, east]},
                            {"worker_id": "W-WEST", "old": [NORTH, SOUTH], "new": [SOUTH, west, east]}]
    assert f["users"] == [{"username": "wang", "role": "grid_worker", "old": [NORTH], "new": [west, east]}]

    sensor = get_sensor(town, "S-NW")
    assert (sensor["grid_code"], sensor["match"], sensor["registry_version"]) == (west, "inside", done.edit_id)
    camera = get_camera(town, "C-NE")
    assert (camera.grid_code, camera.village_code, camera.registry_version) == (east, NORTH[:12], done.edit_id)
    assert get_worker(town, "W-NORTH")["grids"] == [west, east]
    assert get_worker(town, "W-WEST")["grids"] == [SOUTH, west, east]
    wang = get_user(town, "wang")
    assert wang.grid_codes == [west, east]
    assert scoped_ids(town, scope_of(wang)) == ["S-NW"]  # the grid worker still sees the sensor it patrols

    assert changed(before, snapshot(town)) == {"sensors": ["S-NW"], "cameras": ["C-NE"],
                                               "workers": ["W-NORTH", "W-WEST"], "users": ["wang"],
                                               "tickets": False}  # open tickets keep their place


def test_the_first_assigned_date_is_kept(town):
    since = town.scalar(text("SELECT since FROM worker_grids WHERE worker_id = 'W-NORTH'"))
    done = edits.split(town, NORTH, line(250, 250, 250, 650), who="t", why="t")
    rows = town.execute(text("SELECT grid_code, since FROM worker_grids WHERE worker_id = 'W-NORTH'")).all()
    assert sorted(rows) == [(code, since) for code in sorted(done.opened)]


def test_merge_points_everything_at_the_merged_grid(town):
    before = snapshot(town)
    done = edits.merge(town, [NORTH, SOUTH], who="规划科", why="两格合并")
    (merged,) = done.opened
    f = done.followed
    assert f["successors"] == {NORTH: [merged], SOUTH: [merged]}
    assert [(m["id"], m["old_grid"], m["new_grid"]) for m in f["sensors"]] == [
        ("S-NW", NORTH, merged), ("S-SOUTH", SOUTH, merged)]
    assert [(m["id"], m["new_grid"]) for m in f["cameras"]] == [("C-NE", merged)]
    assert f["workers"] == [{"worker_id": "W-NORTH", "old": [NORTH], "new": [merged]},
                            {"worker_id": "W-WEST", "old": [NORTH, SOUTH], "new": [merged]}]
    assert f["users"] == [{"username": "wang", "role": "grid_worker", "old": [NORTH], "new": [merged]}]
    assert get_sensor(town, "S-SOUTH")["grid_code"] == merged
    assert town.scalar(text("SELECT count(*) FROM worker_grids WHERE worker_id = 'W-WEST'")) == 1
    assert changed(before, snapshot(town)) == {"sensors": ["S-NW", "S-SOUTH"], "cameras": ["C-NE"],
                                               "workers": ["W-NORTH", "W-WEST"], "users": ["wang"],
                                               "tickets": False}


def test_reshape_past_a_sensor_moves_it_to_the_neighbour(town):
    create_sensor(town, id="S-EDGE", name="边界站", **dict(zip(("lon", "lat"), lonlat(200, 320), strict=True)))
    assert get_sensor(town, "S-EDGE")["grid_code"] == NORTH
    before = snapshot(town)
    north = city.to_wgs(gpd.GeoDataFrame(geometry=[city.rect(0, 350, 500, 600)])).geometry[0]
    south = city.to_wgs(gpd.GeoDataFrame(geometry=[city.rect(0, 0, 500, 350)])).geometry[0]
    done = edits.reshape(town, {NORTH: north, SOUTH: south}, who="规划科", why="南格北扩 50 米")
    f = done.followed
    assert f["successors"] == {NORTH: [NORTH], SOUTH: [SOUTH]}  # a reshape keeps the codes
    assert f["sensors"] == [{"id": "S-EDGE", "old_grid": NORTH, "new_grid": SOUTH,
                             "old_town": "370783001000", "new_town": "370783001000"}]
    assert f["cameras"] == f["workers"] == f["users"] == []
    assert get_sensor(town, "S-EDGE")["registry_version"] == done.edit_id
    # S-NW lies in the touched ground and was resolved again, but it did not move: its row is untouched
    assert changed(before, snapshot(town)) == {"sensors": ["S-EDGE"], "cameras": [], "workers": [], "users": [],
                                               "tickets": False}


def test_a_redraw_maps_codes_by_overlap_and_ignores_slivers(town):
    """``grids import --replace`` with new codes: each closed grid → the new grids holding more than a sliver."""
    west = city.to_wgs(gpd.GeoDataFrame(
        {"village_code": [NORTH[:12]] * 2, "name": ["南", "北"]},
        geometry=[city.rect(0, 0, 500, 305), city.rect(0, 305, 500, 600)]))  # a 5 m strip of the north grid
    done = R.import_grids(town, west, who="规划科", why="东关社区重新划格", replace=True)
    assert sorted(done.closed) == [NORTH, SOUTH]
    codes = R.load_grids(town, codes=done.opened).set_index("name")["code"]
    new_south, new_north = codes["南"], codes["北"]
    assert done.followed["successors"] == {NORTH: [new_north], SOUTH: [new_south]}
    assert get_worker(town, "W-WEST")["grids"] == sorted([new_north, new_south])
    assert get_sensor(town, "S-NW")["grid_code"] == new_north
    assert get_sensor(town, "S-EAST")["grid_code"] == EAST


def test_a_grid_worker_scope_never_becomes_empty(town):
    """A closed code without a real successor stays on the account (and is reported), never dropped."""
    from layers.follow import follow_grid_workers

    change = R.GridChange(0, "test", R.load_grids(town, codes=[NORTH]), R.load_grids(town, codes=[]))
    change.shared["successors"] = {NORTH: []}
    assert follow_grid_workers(town, change) == {"users": []}
    assert get_user(town, "wang").grid_codes == [NORTH]


def test_a_failing_follower_undoes_the_whole_edit(town, monkeypatch):
    def boom(session, change):
        raise RuntimeError("follower failed")

    monkeypatch.setattr(R, "_FOLLOWERS", [*R._FOLLOWERS, boom])
    before = snapshot(town)
    edits_before = town.scalar(select(func.count()).select_from(GridEdit))
    with pytest.raises(RuntimeError, match="follower failed"):
        edits.split(town, NORTH, line(250, 250, 250, 650), who="t", why="t")
    assert town.scalar(select(func.count()).select_from(GridEdit)) == edits_before
    assert [c for (c,) in town.execute(select(Grid.code).where(Grid.valid_to.is_(None)).order_by(Grid.code))] == [
        NORTH, SOUTH, EAST]
    assert snapshot(town) == before


def test_a_dry_run_moves_nothing(town):
    before = snapshot(town)
    done = edits.split(town, NORTH, line(250, 250, 250, 650), who="t", why="t", dry_run=True)
    assert done.dry_run and done.followed == {}
    assert snapshot(town) == before


def test_install_is_idempotent():
    follow.install()
    follow.install()
    assert [f for f in R.grid_edit_followers() if f in follow.FOLLOWERS] == list(follow.FOLLOWERS)


@pytest.fixture
def client(session):
    from tests.api.conftest import _client

    return _client(session)


def test_the_editor_save_answers_what_moved(client, session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    create_sensor(session, id="S-NW", name="北西站", **dict(zip(("lon", "lat"), lonlat(100, 450), strict=True)))
    create_worker(session, id="W-NORTH", name="张伟", grids=[NORTH])
    res = client.post("/grids/edits/split", json={
        "who": "规划科", "why": "一分为二", "code": NORTH, "line": shapely.geometry.mapping(line(250, 250, 250, 650))})
    assert res.status_code == 200, res.text
    body = res.json()
    west, east = sorted(body["opened"])
    assert body["followed"]["successors"] == {NORTH: [west, east]}
    assert [(m["id"], m["new_grid"]) for m in body["followed"]["sensors"]] == [("S-NW", west)]
    assert body["followed"]["workers"] == [{"worker_id": "W-NORTH", "old": [NORTH], "new": [west, east]}]
    dry = client.post("/grids/edits/merge", json={"who": "t", "why": "t", "codes": [west, east], "dry_run": True})
    assert dry.status_code == 200 and dry.json()["followed"] == {}


def test_cli_grids_import_replace_prints_what_moved(cli_env, tmp_path):
    from scripts.cli import app

    eng = create_engine(cli_env)
    with Session(eng) as s:
        R.import_areas(s, city.areas(), who="t", why="t")
        R.import_grids(s, city.grids(), who="t", why="t")
        create_sensor(s, id="S-NW", name="北西站", **dict(zip(("lon", "lat"), lonlat(100, 450), strict=True)))
        create_worker(s, id="W-NORTH", name="张伟", grids=[NORTH])
        s.commit()
    redraw = city.to_wgs(gpd.GeoDataFrame(  # the west village cut west/east instead of north/south
        {"village_code": [NORTH[:12]] * 2}, geometry=[city.rect(0, 0, 250, 600), city.rect(250, 0, 500, 600)]))
    path = tmp_path / "west.geojson"
    redraw.to_file(path, driver="GeoJSON")
    result = CliRunner().invoke(app, ["grids", "import", str(path), "--replace", "--why", "东关社区重新划格"])
    assert result.exit_code == 0, result.output
    with Session(eng) as s:
        new_west = s.scalar(text("SELECT grid_code FROM sensors WHERE id = 'S-NW'"))
        grids = sorted(s.scalars(text("SELECT grid_code FROM worker_grids WHERE worker_id = 'W-NORTH'")))
        current = sorted(s.scalars(text(f"SELECT code FROM grids WHERE valid_to IS NULL AND village_code = '{NORTH[:12]}'")))
    eng.dispose()
    assert new_west in current and NORTH not in current and grids == current  # the north grid spanned both
    assert f"sensor S-NW: {NORTH} → {new_west}" in result.output
    assert f"worker W-NORTH: {NORTH} → {';'.join(current)}" in result.output


def test_grid_edits_are_serialised(scratch_url):
    """A second writer waits for the first to commit (so edit ids, the registry version, commit in order)."""
    from sqlalchemy.exc import OperationalError

    eng = create_engine(scratch_url)
    with Session(eng) as s:
        R.import_areas(s, city.areas(), who="t", why="t")
        R.import_grids(s, city.grids(), who="t", why="t")
        s.commit()
    with Session(eng) as first, Session(eng) as second:
        edits.split(first, NORTH, line(250, 250, 250, 650), who="t", why="t")  # holds the registry's lock
        second.execute(text("SET lock_timeout = '300ms'"))
        with pytest.raises(OperationalError, match="lock timeout"):
            edits.merge(second, [SOUTH, NORTH], who="t", why="t")
        second.rollback()
        first.commit()
        second.execute(text("SET lock_timeout = '300ms'"))
        with pytest.raises(Exception, match="no current grid"):  # now it sees the committed split
            edits.merge(second, [SOUTH, NORTH], who="t", why="t")
    eng.dispose()
