"""Ground calibration: the homography is recovered, errors are metres, degenerate sets are refused."""

import numpy as np
import pytest

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84, wgs84_to_gcj02
from gis.errors import InvalidInput
from layers.cameras.calibration import Calibration, apply_h, dlt_homography, fit, read_points

LON0, LAT0 = 118.7915, 36.8570  # a street corner in Shouguang
EPSG = f"EPSG:{gauss_kruger_epsg(LON0)}"
# Image corners of a 640x360 frame see a trapezoid on the ground: 8 m wide near, 40 m wide far.
IMAGE = np.array([[0, 360], [640, 360], [640, 120], [0, 120]], float)
GROUND_LOCAL = np.array([[-4, 5], [4, 5], [20, 60], [-20, 60]], float)


def truth():
    """The exact pixel → ground homography, and a function to lon/lat."""
    x0, y0 = from_wgs84([LON0], [LAT0], EPSG)
    h = dlt_homography(IMAGE, GROUND_LOCAL)

    def to_lonlat(px: np.ndarray) -> np.ndarray:
        x, y, _ = apply_h(h, px[:, 0], px[:, 1])
        lon, lat = to_wgs84(x + x0[0], y + y0[0], EPSG)
        return np.column_stack([lon, lat])

    return to_lonlat


PIXELS = np.array([[50, 340], [600, 350], [320, 200], [100, 150], [560, 140], [320, 330]], float)


def test_exact_pairs_fit_with_millimetre_error_and_project_new_pixels():
    to_lonlat = truth()
    cal = fit(PIXELS, to_lonlat(PIXELS))
    assert cal.rms_m < 0.005 and cal.max_m < 0.01
    probe = np.array([[10, 355], [320, 240], [630, 125]], float)
    lon, lat = cal.project(probe[:, 0], probe[:, 1])
    expected = to_lonlat(probe)
    gx, gy = from_wgs84(lon, lat, EPSG)
    ex, ey = from_wgs84(expected[:, 0], expected[:, 1], EPSG)
    np.testing.assert_allclose(np.hypot(gx - ex, gy - ey), 0.0, atol=0.01)


def test_noisy_clicks_report_their_error_in_metres():
    to_lonlat = truth()
    rng = np.random.default_rng(3)
    ground = to_lonlat(PIXELS)
    x, y = from_wgs84(ground[:, 0], ground[:, 1], EPSG)
    x, y = x + rng.normal(0, 0.5, len(x)), y + rng.normal(0, 0.5, len(y))  # 0.5 m survey noise
    lon, lat = to_wgs84(x, y, EPSG)
    cal = fit(PIXELS, np.column_stack([lon, lat]))
    assert 0.1 < cal.rms_m < 1.0
    assert cal.max_m >= cal.rms_m
    assert len(cal.errors_m) == 6


def test_gcj02_map_points_are_converted_before_fitting():
    to_lonlat = truth()
    wgs = to_lonlat(PIXELS)
    glon, glat = wgs84_to_gcj02(wgs[:, 0], wgs[:, 1])
    cal = fit(PIXELS, np.column_stack([glon, glat]), crs="gcj02")
    assert cal.rms_m < 0.01
    lon, lat = cal.project([320.0], [200.0])
    np.testing.assert_allclose([lon[0], lat[0]], wgs[2], atol=1e-7)


def test_round_trip_through_json():
    cal = fit(PIXELS, truth()(PIXELS))
    again = Calibration.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.project([300.0], [300.0]), cal.project([300.0], [300.0]), atol=1e-9)


def test_numpy_dlt_and_the_fit_agree():
    to_lonlat = truth()
    cal = fit(PIXELS, to_lonlat(PIXELS))
    ground = np.column_stack(from_wgs84(*to_lonlat(PIXELS).T, f"EPSG:{cal.epsg}")) - np.array(cal.origin)
    h = dlt_homography(PIXELS, ground)
    a, b, _ = apply_h(h, PIXELS[:, 0], PIXELS[:, 1])
    c, d, _ = apply_h(cal.h, PIXELS[:, 0], PIXELS[:, 1])
    np.testing.assert_allclose(np.column_stack([a, b]), np.column_stack([c, d]), atol=1e-3)


def test_points_above_the_horizon_do_not_land_on_the_map():
    cal = fit(PIXELS, truth()(PIXELS))
    lon, lat = cal.project([320.0], [-2000.0])  # far above the horizon line
    assert np.isnan(lon[0]) and np.isnan(lat[0])


def test_three_points_are_refused():
    with pytest.raises(InvalidInput, match="at least 4 point pairs, got 3"):
        fit(PIXELS[:3], truth()(PIXELS[:3]))


def test_collinear_points_are_refused():
    line = np.array([[0, 100], [100, 150], [200, 200], [300, 250], [400, 300]], float)
    with pytest.raises(InvalidInput, match="image points are collinear"):
        fit(line, truth()(PIXELS[:5]))
    with pytest.raises(InvalidInput, match="map points are collinear"):
        fit(PIXELS[:5], [[LON0 + i * 1e-4, LAT0 + i * 1e-4] for i in range(5)])


def test_three_of_four_collinear_is_refused():
    pixels = np.array([[0, 300], [100, 300], [200, 300], [100, 100]], float)
    with pytest.raises(InvalidInput, match="three of the four image points are collinear"):
        fit(pixels, truth()(PIXELS[:4]))


def test_mismatched_and_malformed_pairs_are_refused():
    with pytest.raises(InvalidInput, match="6 image points but 5 map points"):
        fit(PIXELS, truth()(PIXELS)[:5])
    with pytest.raises(InvalidInput, match="finite"):
        fit([[0, 0, 0]] * 4, [[1, 2]] * 4)


def test_points_file_with_header_and_comments():
    image, ground = read_points("u,v,lon,lat\n# near kerb\n10,20,118.1,36.2\n30\t40\t118.2\t36.3\n")
    assert image == [[10.0, 20.0], [30.0, 40.0]] and ground == [[118.1, 36.2], [118.2, 36.3]]
    with pytest.raises(InvalidInput, match="line 3"):
        read_points("u,v,lon,lat\n1,2,3,4\n1,x,3,4\n")
