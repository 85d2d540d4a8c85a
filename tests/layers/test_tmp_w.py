from datetime import datetime, UTC, timedelta, date
import numpy as np
from layers.workers import registry as W, ingest, tracks, live
from tests import registry_city as city
from gis import registry as R
from gis.coords import to_wgs84
def test_smoke(session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    print(W.import_workers(session, [{"id": "W1", "name": "张三", "role": "专职网格员", "phone": "13812345678", "grids": "370783001001001"}]))
    t0 = datetime(2026, 5, 1, 1, tzinfo=UTC)
    xs = city.X0 + np.linspace(10, 490, 50); ys = np.full(50, city.Y0 + 450.0)
    lon, lat = to_wgs84(xs, ys, city.GK)
    rows = [{"worker_id": "W1", "ts": (t0 + timedelta(seconds=30*i)).isoformat(), "lon": lon[i], "lat": lat[i], "accuracy": 5} for i in range(50)]
    rows[10]["lon"] += 0.01
    rows.append({"worker_id": "W1", "ts": t0.isoformat(), "lon": "abc", "lat": 1})
    rows.append({"worker_id": "W1", "ts": (t0 + timedelta(hours=1)).isoformat(), "lon": 0, "lat": 0})
    r = ingest.ingest_positions(session, rows, now=t0 + timedelta(hours=2))
    print(r)
    tr = tracks.day_track(session, "W1", date(2026, 5, 1))
    print(tr.summary())
    print(live.nearest_workers(session, lon=lon[0], lat=lat[0], index=live.LiveIndex()))
    print(W.get_worker(session, "W1"))
