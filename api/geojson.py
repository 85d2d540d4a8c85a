"""GeoJSON responses built from GeoDataFrames (RFC 7946: WGS84 lon/lat)."""

from __future__ import annotations

import json
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from fastapi.responses import JSONResponse


def _plain(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None  # missing, whatever pandas made of it (NaN, NaT), is JSON null, never "NaT"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def feature_collection(frame: gpd.GeoDataFrame, *, precision: int = 7, id_column: str | None = "code") -> dict:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    geoms = shapely.to_geojson(shapely.set_precision(frame.geometry.values, 10 ** -precision, mode="pointwise")) if len(frame) else []
    features = []
    for i, row in enumerate(frame[columns].itertuples(index=False)):
        props = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        feature = {"type": "Feature", "properties": props, "geometry": json.loads(geoms[i])}
        if id_column and id_column in props:
            feature["id"] = props[id_column]
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


class GeoJSONResponse(JSONResponse):
    """GeoJSON (RFC 7946) as compact UTF-8 JSON; a JSONResponse, so the OpenAPI describes it as JSON."""

    media_type = "application/geo+json"

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
