"""Sensors on a real PostGIS: idempotent bulk readings, monthly partitions, thresholds, alarms and tickets."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gis import registry as R
from gis.coords import to_wgs84
from gis.errors import NotFound
from layers.sensors import ingest, layer, registry, thresholds
from layers.sensors.thresholds import Rule, find_breaches
from tests import registry_city as city

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 5, 2, tzinfo=UTC)


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = to_wgs84([city.X0 + x], [city.Y0 + y], city.GK)
    return float(lon[0]), float(lat[0])


@pytest.fixture
def placed(session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    lon, lat = lonlat(250, 450)  # north grid of 东关社区
    registry.create_sensor(session, id="AQ1", name="东关监测点", lon=lon, lat=lat, pollutants=["PM2.5", "PM10"],
                           owner="寿光某化工")
    lon, lat = lonlat(750, 300)
    registry.create_sensor(session, id="AQ2", name="西关监测点", lon=lon, lat=lat)
    return session


def rows(sensor: str, values: list[float], start: datetime = T0, pollutant: str = "pm25") -> list[dict]:
    return [{"sensor_id": sensor, "ts": (start + timedelta(minutes=i)).isoformat(), pollutant: v}
            for i, v in enumerate(values)]


# --------------------------------------------------------------------------- pure rule

def test_three_consecutive_readings_make_one_breach():
    frame = pd.DataFrame({"sensor_id": "S", "ts": pd.date_range(T0, periods=9, freq="1min"),
                          "pm25": [80, 90, 20, 76, 100, 77, 95, 10, 80]})
    [breach] = find_breaches(frame, {"pm25": Rule("pm25", 75.0, 3)})
    assert breach.run_start == T0 + timedelta(minutes=3)
    assert breach.breach_at == T0 + timedelta(minutes=5)
    assert breach.last_over_at == T0 + timedelta(minutes=6)
    assert breach.peak == 100.0 and breach.pollutants == ("pm25",)


def test_cutoff_hides_an_episode_already_alarmed_and_short_runs_never_breach():
    frame = pd.DataFrame({"sensor_id": "S", "ts": pd.date_range(T0, periods=6, freq="1min"),
                          "pm25": [80, 80, 80, 80, 20, 80]})
    rule = {"pm25": Rule("pm25", 75.0, 3)}
    assert find_breaches(frame, rule, {"S": pd.Timestamp(T0 + timedelta(minutes=3))}) == []
    assert find_breaches(frame.iloc[3:], rule) == []


def test_the_earliest_pollutant_names_the_alarm_and_others_are_listed():
    frame = pd.DataFrame({"sensor_id": "S", "ts": pd.date_range(T0, periods=4, freq="1min"),
                          "pm25": [10, 80, 80, 80], "pm10": [200, 200, 200, 10]})
    [breach] = find_breaches(frame, {"pm25": Rule("pm25", 75, 3), "pm10": Rule("pm10", 150, 3)})
    assert (breach.pollutant, breach.pollutants) == ("pm10", ("pm25", "pm10"))


# --------------------------------------------------------------------------- registry and thresholds

def test_sensor_is_resolved_to_its_grid_at_registration(placed):
    s = registry.get_sensor(placed, "AQ1")
    assert (s["grid_code"], s["town_code"], s["match"]) == ("370783001001001", "370783001000", "inside")
    assert s["pollutants"] == ["pm25", "pm10"]
    assert registry.get_sensor(placed, "AQ2")["grid_code"] == "370783001002001"
    with pytest.raises(NotFound):
        registry.get_sensor(placed, "nope")


def test_default_thresholds_are_gb3095_grade_two_and_editable(placed):
    limits = {t["pollutant"]: (t["limit_value"], t["unit"]) for t in thresholds.list_thresholds(placed)}
    assert limits == {"pm25": (75.0, "µg/m³"), "pm10": (150.0, "µg/m³"), "no2": (80.0, "µg/m³"),
                      "so2": (150.0, "µg/m³"), "o3": (160.0, "µg/m³"), "co": (4.0, "mg/m³")}
    edited = thresholds.set_threshold(placed, "pm25", who="环保局", limit_value=50, consecutive=2)
    assert (edited["limit_value"], edited["consecutive"], edited["updated_by"]) == (50.0, 2, "环保局")
    result = ingest.ingest_readings(placed, rows("AQ1", [60, 60]), now=NOW)
    assert len(result.alarms_opened) == 1


# --------------------------------------------------------------------------- ingest

def test_bad_rows_come_back_with_row_numbers_and_good_rows_land(placed):
    batch = (
        "sensor_id,ts,PM2.5,pm10\n"
        "AQ1,2026-05-01T08:00:00+08:00,35,60\n"
        "AQ9,2026-05-01T08:01:00+08:00,35,60\n"
        "AQ1,,35,60\n"
        "AQ1,2026-05-03T08:00:00+08:00,35,60\n"
        "AQ1,2026-05-01T08:02:00+08:00,-4,60\n"
        "AQ1,2026-05-01T08:03:00+08:00,abc,60\n"
        "AQ1,2026-05-01 08:04:00,36,61\n"
    )
    result = ingest.ingest_readings(placed, batch, now=NOW)
    assert (result.received, result.inserted, result.duplicates) == (7, 2, 0)
    assert result.rejected == [
        {"row": 2, "reason": "unknown sensor id"},
        {"row": 3, "reason": "missing timestamp"},
        {"row": 4, "reason": "timestamp in the future (more than 5 min ahead)"},
        {"row": 5, "reason": "negative concentration (pm25)"},
        {"row": 6, "reason": "non-numeric pm25"},
    ]
    stored = placed.execute(text("SELECT ts, pm25 FROM sensor_readings ORDER BY ts")).all()
    assert [(r.ts.astimezone(UTC).hour, r.ts.minute, r.pm25) for r in stored] == [(0, 0, 35.0), (0, 4, 36.0)]


def test_a_batch_of_only_bad_rows_stores_nothing(placed):
    result = ingest.ingest_readings(placed, "sensor_id,ts,pm25\nAQ404,2026-05-01T08:00:00+08:00,3\n", now=NOW)
    assert (result.received, result.inserted, result.rejected) == (1, 0, [{"row": 1, "reason": "unknown sensor id"}])


def test_resent_batch_inserts_nothing_and_out_of_order_rows_land(placed):
    late_first = rows("AQ2", [30, 31, 32], start=T0 + timedelta(hours=1))
    assert ingest.ingest_readings(placed, late_first, now=NOW).inserted == 3
    early = rows("AQ2", [20, 21], start=T0) + late_first
    again = ingest.ingest_readings(placed, early, now=NOW)
    assert (again.inserted, again.duplicates) == (2, 3)
    assert placed.scalar(text("SELECT count(*) FROM sensor_readings")) == 5


def test_months_are_partitions_created_on_demand(placed):
    ingest.ingest_readings(placed, rows("AQ2", [10]) + rows("AQ2", [11], start=datetime(2026, 4, 30, 23, tzinfo=UTC)),
                           now=NOW)
    parts = placed.scalars(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                "WHERE i.inhparent = 'sensor_readings'::regclass ORDER BY 1")).all()
    assert parts == ["sensor_readings_p202604", "sensor_readings_p202605"]
    placed.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(placed.scalars(text(
        "EXPLAIN SELECT * FROM sensor_readings WHERE sensor_id = 'AQ2' ORDER BY ts DESC LIMIT 1")))
    assert "Index Scan" in plan and "Sort" not in plan  # the (sensor_id, ts DESC) index serves "latest"


# --------------------------------------------------------------------------- alarms and tickets

def _ticket(session, ticket_id):
    return session.execute(text("SELECT channel, category, grid_code, source_ref, state FROM tickets WHERE id = :i"),
                           {"i": ticket_id}).one()


def test_a_breach_opens_one_alarm_and_one_ticket_in_the_sensors_grid(placed):
    result = ingest.ingest_readings(placed, rows("AQ1", [40, 80, 90, 120, 85, 95]), now=NOW)
    [alarm_id] = result.alarms_opened
    more = ingest.ingest_readings(placed, rows("AQ1", [130, 99], start=T0 + timedelta(minutes=6)), now=NOW)
    assert more.alarms_opened == []
    [alarm] = thresholds.list_alarms(placed)
    assert (alarm["id"], alarm["state"], alarm["pollutant"], alarm["peak"]) == (alarm_id, "open", "pm25", 130.0)
    assert alarm["breach_at"] == T0 + timedelta(minutes=3)
    assert alarm["last_over_at"] == T0 + timedelta(minutes=7)
    assert _ticket(placed, alarm["ticket_id"]) == ("sensor", "1101", "370783001001001", "AQ1", "received")
    assert placed.scalar(text("SELECT count(*) FROM tickets")) == 1


def test_the_alarm_closes_with_its_ticket_and_a_new_episode_opens_a_new_one(placed):
    [first] = ingest.ingest_readings(placed, rows("AQ1", [80, 80, 80]), now=NOW).alarms_opened
    ticket_id = thresholds.list_alarms(placed)[0]["ticket_id"]
    placed.execute(text("UPDATE tickets SET state = 'closed', closed_at = :t WHERE id = :i"),
                   {"t": T0 + timedelta(hours=2), "i": ticket_id})
    [alarm] = thresholds.list_alarms(placed)
    assert (alarm["state"], alarm["closed_at"]) == ("closed", T0 + timedelta(hours=2))
    resend = ingest.ingest_readings(placed, rows("AQ1", [80, 80, 80]), now=NOW)
    assert resend.alarms_opened == [] and resend.inserted == 0
    later = ingest.ingest_readings(placed, rows("AQ1", [10, 90, 90, 90], start=T0 + timedelta(hours=3)), now=NOW)
    assert len(later.alarms_opened) == 1 and later.alarms_opened[0] != first
    assert placed.scalar(text("SELECT count(*) FROM tickets WHERE channel = 'sensor'")) == 2


def test_a_late_reading_can_complete_a_run(placed):
    ingest.ingest_readings(placed, [rows("AQ1", [80, 20, 80])[i] for i in (0, 2)], now=NOW)
    assert thresholds.list_alarms(placed) == []
    late = ingest.ingest_readings(placed, [rows("AQ1", [80, 85, 80])[1]], now=NOW)
    assert len(late.alarms_opened) == 1


# --------------------------------------------------------------------------- map layer

def test_layer_shows_latest_reading_state_and_grid_aggregate(placed):
    ingest.ingest_readings(placed, rows("AQ1", [80, 80, 80, 81]) + rows("AQ2", [12, 13]), now=NOW)
    frame = layer.sensors_layer(placed, now=T0 + timedelta(minutes=10)).set_index("id")
    assert frame.loc["AQ1", "state"] == "alarm" and frame.loc["AQ1", "pm25"] == 81.0
    assert frame.loc["AQ2", "state"] == "ok" and frame.loc["AQ2", "pm25"] == 13.0
    assert layer.sensors_layer(placed, now=NOW).set_index("id").loc["AQ2", "state"] == "stale"
    grids = layer.grid_aggregate(placed, now=NOW).set_index("grid_code")
    assert grids.loc["370783001001001", ["sensors", "alarms"]].tolist() == [1, 1]
    assert grids.loc["370783001002001", "pm25_max"] == 13.0
    series = layer.series(placed, "AQ1")
    assert [r["pm25"] for r in series] == [80.0, 80.0, 80.0, 81.0]
    assert np.isclose(frame.geometry["AQ1"].x, lonlat(250, 450)[0])


# --------------------------------------------------------------------------- the bulk machinery

def test_text_times_read_one_by_one_agree_with_pandas():
    """Small batches parse ISO 8601 one by one (datetime.fromisoformat); big ones with pandas: same instants,
    including city time for naive ones and the refusals (impossible dates, wall times the 1986-1991
    summer-time changes skipped or repeated)."""
    from gis.batch_values import _ISO, parse_text_times

    rng = np.random.default_rng(7)
    texts = ["2026-05-01T08:00:00+08:00", "2026-05-01T00:00:00Z", "2026-05-01T08:00:00+0800", "2026-05-01 08:04:00",
             "2026-05-01", "2026-05-01T08:00", "2026-05-01T08:00:00.123456-05:00", "2026-05-01T08:00:00.5",
             "2026-02-30T08:00:00", "2028-02-29T08:00:00", "2028-02-29T23:59:59.999999", "1991-04-14T02:30:00",
             "1991-09-15T01:30:00", "1988-07-01T12:00:00", "2026-05-01T08:00:00+05:45", "2026-05-01T08:00:00+25:00",
             "1950-01-01T00:00:00", "2199-12-31T23:59:59Z", "2026-13-01T00:00:00"]
    for _ in range(300):
        stamp = pd.Timestamp("1950-01-01") + pd.Timedelta(seconds=float(rng.uniform(0, 250 * 365.25 * 86400)))
        zone = rng.choice(["", "Z", "+08:00", "-03:30", "+0545"])
        texts.append(stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:int(rng.choice([16, 19, 21, 23, 26]))] + zone)
    assert all(_ISO.fullmatch(t) for t in texts)  # every one takes the one-by-one path
    one_by_one = parse_text_times(texts, fast=True)
    by_pandas = parse_text_times(texts, fast=False)
    same = (one_by_one == by_pandas) | (np.isnat(one_by_one) & np.isnat(by_pandas))
    assert same.all(), [t for t, s in zip(texts, same, strict=True) if not s]
    assert np.isnat(one_by_one[[8, 11, 12, 15, 18]]).all() and not np.isnat(one_by_one[[9, 10, 13, 14]]).any()
    assert str(one_by_one[3]) == "2026-05-01T00:04:00.000000"  # naive: city time


def test_plain_csv_is_split_as_pandas_reads_it():
    """Small plain CSV is split in Python; anything pandas might read differently goes to pandas."""
    from gis.batch import _csv, _simple_csv

    plain = ["sensor_id,ts,PM2.5\nAQ1,2026-05-01 08:00:00,35\nAQ2,, 7 \n", "a,b\r\n1,2\r\n,\r\n", "Id, TS\nx,y",
             "a,b\n"]
    for body in plain:
        columns, n = _simple_csv(body)
        frame = _csv(body)
        assert n == len(frame) and list(columns) == [c.strip().lower() for c in frame.columns]
        for name, values in zip(columns, frame.columns, strict=True):
            expected = frame[values].to_numpy(dtype=object)
            assert [None if pd.isna(v) else v for v in columns[name]] == [None if pd.isna(v) else v for v in expected]
    for body in ['a,b\n"1,5",2\n', "a,b\n1,2\n\n3,4\n", "a,b\n1,2,3\n", "a,a\n1,2\n", ",b\n1,2\n", "", "a,b\r1,2\r"]:
        assert _simple_csv(body) is None


def test_readings_of_a_retired_sensor_are_refused(placed):
    registry.retire_sensor(placed, "AQ2")
    result = ingest.ingest_readings(placed, rows("AQ2", [10]) + rows("AQ1", [10]), now=NOW)
    assert result.inserted == 1 and result.rejected == [{"row": 1, "reason": "unknown sensor id"}]


def test_a_small_batch_and_a_copied_one_store_the_same_readings(placed, monkeypatch):
    from gis import bulk

    batch = rows("AQ1", [10.5, 0.0, 77.25]) + rows("AQ2", [3, 4], pollutant="co") + rows("AQ2", [99], pollutant="o3")

    def stored():
        return placed.execute(text("SELECT * FROM sensor_readings ORDER BY sensor_id, ts")).all()

    first = ingest.ingest_readings(placed, batch, now=NOW, evaluate=False)
    by_unnest = [tuple(r)[:8] for r in stored()]
    placed.execute(text("DELETE FROM sensor_readings"))
    monkeypatch.setattr(bulk, "UNNEST_MAX_ROWS", 0)
    again = ingest.ingest_readings(placed, batch, now=NOW, evaluate=False)
    assert first.inserted == again.inserted == 5  # the o3 row has the same (sensor, ts) as the first co row
    assert [tuple(r)[:8] for r in stored()] == by_unnest
    assert by_unnest[0][2:4] == (10.5, None)
