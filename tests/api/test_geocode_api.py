"""GET /geocode and GET /reverse over the demo city with its standard addresses (rolled back)."""

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from gis.geocode import import_addresses
from tests.api.conftest import _client

CSV = Path(__file__).resolve().parents[2] / "data" / "grid_boundaries" / "addresses.csv"
TABLE = pd.read_csv(CSV, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def api(demo_engine):
    conn = demo_engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    import_addresses(session, CSV, replace=True)
    yield _client(session)
    session.close()
    trans.rollback()
    conn.close()


def _door(road: str) -> pd.Series:
    return TABLE[(TABLE.road == road) & (TABLE.building == "")].iloc[0]


def test_geocode_exact(api):
    r = _door("农圣街")
    res = api.get("/geocode", params={"q": f"山东省潍坊市寿光市{r.road}{r.number}号".translate(
        str.maketrans("0123456789", "０１２３４５６７８９"))})
    assert res.status_code == 200
    body = res.json()
    assert (body["status"], body["confidence"], body["address"]) == ("exact", 1.0, f"寿光市{r.town}{r.road}{r.number}号")
    assert body["lon"] == pytest.approx(float(r.lon), abs=1e-6)
    assert len(body["grid"]["grid_code"]) == 15 and body["grid"]["town_name"] == r.town


def test_geocode_ambiguous_is_200_without_a_point(api):
    doors = TABLE[TABLE.building == ""]
    towns = doors.groupby(["road", "number"]).town.nunique()
    road, number = towns[towns > 1].index[0]
    body = api.get("/geocode", params={"q": f"{road}{number}号"}).json()
    assert body["status"] == "ambiguous" and body["lon"] is None and len(body["candidates"]) >= 2


def test_geocode_unmatched_and_other_city_are_404(api):
    res = api.get("/geocode", params={"q": "北京市海淀区中关村大街1号"})
    assert res.status_code == 404
    body = res.json()
    assert body["error"] == "NotFound" and "not in this city" in body["detail"]
    assert body["info"]["status"] == "unmatched"
    assert api.get("/geocode", params={"q": "圣城街99999号"}).status_code == 404


def test_geocode_empty_is_400(api):
    for params in ({"q": ""}, {"q": "   "}, {}):
        res = api.get("/geocode", params=params)
        assert res.status_code == 400 and "empty address" in res.json()["detail"]


def test_reverse(api):
    r = _door("化龙大街")
    body = api.get("/reverse", params={"lon": r.lon, "lat": r.lat}).json()
    assert body["town_name"] == "化龙镇" and len(body["grid_code"]) == 15
    assert body["nearest"]["address"] == f"寿光市化龙镇化龙大街{r.number}号"
    assert body["nearest"]["distance_m"] == pytest.approx(0.0, abs=0.2)


def test_reverse_bad_input(api):
    assert api.get("/reverse", params={"lon": "abc", "lat": 36.8}).status_code == 422
    assert api.get("/reverse", params={"lon": 118.8, "lat": 95}).status_code == 400
    assert api.get("/reverse", params={"lon": 118.8, "lat": 36.8, "crs": "EPSG:999999"}).status_code == 400
