"""GeoJSON properties from GeoDataFrames: missing values of any pandas kind are JSON null."""

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point

from api.geojson import GeoJSONResponse, feature_collection


def test_missing_times_and_numbers_are_null_not_strings():
    frame = gpd.GeoDataFrame(
        {"code": ["C1", "C2"], "last_frame_at": pd.to_datetime(["2026-11-23T10:00:00+08:00", None]),
         "reading": [3.5, float("nan")], "name": ["路口东", None]},
        geometry=[Point(118.8, 36.9), Point(118.9, 36.8)], crs=4326)
    props = [f["properties"] for f in feature_collection(frame)["features"]]
    assert props[0] == {"code": "C1", "last_frame_at": "2026-11-23T10:00:00+08:00", "reading": 3.5, "name": "路口东"}
    assert props[1] == {"code": "C2", "last_frame_at": None, "reading": None, "name": None}
    assert b"NaT" not in GeoJSONResponse(feature_collection(frame)).body
