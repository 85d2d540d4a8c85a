import numpy as np
import pytest

from gis import coords
from gis.errors import UnknownCRS

RNG = np.random.default_rng(3)
LON = RNG.uniform(73.5, 135.0, 20_000)
LAT = RNG.uniform(18.0, 53.5, 20_000)


def _metres(lon1, lat1, lon2, lat2):
    dx = (lon1 - lon2) * 111_320 * np.cos(np.radians(lat1))
    return np.hypot(dx, (lat1 - lat2) * 110_540)


def test_gcj02_shift_near_shouguang_is_hundreds_of_metres():
    glon, glat = coords.wgs84_to_gcj02(118.79, 36.86)
    shift = _metres(118.79, 36.86, glon, glat)
    assert 300 < float(shift) < 700


@pytest.mark.parametrize("forward, inverse", [
    (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84),
    (coords.wgs84_to_bd09, coords.bd09_to_wgs84),
    (coords.gcj02_to_bd09, coords.bd09_to_gcj02),
])
def test_inverse_round_trips_within_a_centimetre(forward, inverse):
    back_lon, back_lat = inverse(*forward(LON, LAT))
    assert _metres(LON, LAT, back_lon, back_lat).max() < 0.01


def test_points_outside_china_are_left_unshifted():
    lon, lat = np.array([2.35, -74.0]), np.array([48.85, 40.7])
    for fn in (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84, coords.wgs84_to_bd09, coords.bd09_to_wgs84):
        out = fn(lon, lat)
        assert np.array_equal(out[0], lon) and np.array_equal(out[1], lat)


def test_gauss_kruger_zone_and_epsg_round_trip():
    assert coords.gauss_kruger_epsg(118.8) == 4528  # zone 40, central meridian 120°E
    assert coords.gauss_kruger_epsg(113.1) == 4526  # Foshan: zone 38, 114°E
    x, y = coords.from_wgs84([118.8], [36.9], "EPSG:4528")
    assert 40_300_000 < x[0] < 40_500_000  # false easting carries the zone number
    lon, lat = coords.to_wgs84(x, y, 4528)
    assert _metres(118.8, 36.9, lon[0], lat[0]) < 1e-3


@pytest.mark.parametrize("text, expected", [
    ("gcj02", "gcj02"), ("GCJ-02", "gcj02"), ("bd09", "bd09"), ("4490", "EPSG:4490"),
    ("epsg:4528", "EPSG:4528"), (None, "EPSG:4326"), ("wgs84", "EPSG:4326"),
])
def test_normalize_crs(text, expected):
    assert coords.normalize_crs(text) == expected


@pytest.mark.parametrize("bad", ["EPSG:999999", "nonsense", "12345678"])
def test_unknown_crs_is_refused(bad):
    with pytest.raises(UnknownCRS, match="unknown coordinate reference system"):
        coords.normalize_crs(bad)


def test_transformers_are_rebuilt_from_their_pipeline_when_that_is_exact():
    """pyproj rebuilds a transformer in every new thread; from the two CRSs that searches PROJ's
    database again (a server's thread pool paid it as start-up stalls), from a pipeline it does not.
    Where PROJ has one operation (Gauss-Krüger zones) the pipeline is used and gives the same numbers
    as a transformer made from the CRSs, in a new thread too; where it has several (Beijing 1954 →
    WGS84: chosen per point), the full transformer is kept."""
    import threading

    from pyproj import Transformer

    from gis.coords import _transformer, from_wgs84

    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(117.6, 120.9, 500), rng.uniform(35.5, 38.5, 500)
    reference = Transformer.from_crs("EPSG:4326", "EPSG:4528", always_xy=True).transform(lon, lat)
    got = {}
    worker = threading.Thread(target=lambda: got.update(xy=from_wgs84(lon, lat, "EPSG:4528")))
    worker.start()
    worker.join()
    assert np.abs(np.array(got["xy"]) - np.array(reference)).max() < 1e-6
    assert type(_transformer("EPSG:4326", "EPSG:4528")._transformer_maker).__name__ == "TransformerFromPipeline"
    assert type(_transformer("EPSG:4214", "EPSG:4326")._transformer_maker).__name__ == "TransformerFromCRS"
