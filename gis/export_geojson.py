"""GeoJSON export: RFC 7946 — WGS84 lon/lat only, counter-clockwise outer rings, 7 decimals (about 1 cm).

Written as byte pieces, one per chunk (:func:`geojson_chunks`), so a route can stream it; the OGC API
and reports build their feature texts with :func:`features_json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.coords import WGS84
from gis.errors import InvalidInput
from gis.export_crs import CGCS2000, output_crs, to_output_crs
from gis.export_source import Chunks, Source, Summary, counted, iter_chunks, one_layer
from gis.export_values import is_datetime, iso_local, local_times, plain

_COMPACT = (",", ":")


def geojson_chunks(source: Source, *, precision: int = 7) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection as byte pieces, one piece per chunk (streamable)."""
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for chunk in iter_chunks(source.chunks):
        if not len(chunk):
            continue
        piece = features_json(to_output_crs(chunk, WGS84), source.key, precision)
        yield (b"" if first else b",\n") + piece
        first = False
    yield b"]}\n"


def json_columns(frame: pd.DataFrame) -> list[list]:
    """Each column as a list of JSON-ready values, converted a column at a time (not per cell)."""
    out = []
    for name in frame.columns:
        values = frame[name]
        if is_datetime(values):
            out.append(list(iso_local(local_times(values))))
        elif pd.api.types.is_float_dtype(values):
            out.append([None if v != v else v for v in values.tolist()])
        elif values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            out.append(values.astype(object).where(values.notna(), None).tolist())
        else:
            out.append([plain(v) for v in values])
    return out


def features_json(frame: gpd.GeoDataFrame, key: str | None, precision: int) -> bytes:
    """GeoJSON Feature texts joined by commas: geometry serialised by shapely in one call."""
    geoms = np.asarray(frame.geometry.values, dtype=object)
    present = ~shapely.is_missing(geoms)
    geo_texts = np.full(len(geoms), "null", dtype=object)
    if present.any():
        clean = shapely.orient_polygons(shapely.set_precision(geoms[present], 10 ** -precision,
                                                              mode="pointwise"))
        geo_texts[present] = shapely.to_geojson(clean)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    values = json_columns(frame[columns])
    key_at = columns.index(key) if key in columns else None
    dumps = json.JSONEncoder(ensure_ascii=False, separators=_COMPACT).encode
    parts = []
    for i, row in enumerate(zip(*values, strict=True) if columns else ((),) * len(frame)):
        props = dumps(dict(zip(columns, row, strict=True)))
        ident = "" if key_at is None or row[key_at] is None else f'"id":{dumps(row[key_at])},'
        parts.append(f'{{"type":"Feature",{ident}"properties":{props},"geometry":{geo_texts[i]}}}')
    return ",\n".join(parts).encode("utf-8")


def write_geojson(layers: Mapping[str, Chunks] | Sequence[Source] | Source, out: IO[bytes], *,
                  crs: str = WGS84) -> Summary:
    """One layer as RFC 7946 GeoJSON: WGS84 only (EPSG:4490 gives the same numbers)."""
    crs = output_crs(crs)
    if crs not in (WGS84, CGCS2000):
        raise InvalidInput(f"GeoJSON is WGS84 lon/lat by RFC 7946; {crs} is not allowed: "
                           "use format=gpkg, shp or csv for other coordinate systems")
    (source,) = one_layer(layers, "geojson")
    counting, count = counted(source)
    for piece in geojson_chunks(counting):
        out.write(piece)
    return Summary("geojson", WGS84, rows={source.name: count[0]})
