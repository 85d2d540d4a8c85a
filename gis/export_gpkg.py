"""GeoPackage export: all layers of a selection in one file; layer and field names may be Chinese as given.

Written chunk by chunk through pyogrio; an empty layer still carries its columns and geometry type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from gis.coords import WGS84
from gis.export_crs import label_crs, output_crs, to_output_crs
from gis.export_source import Chunks, Source, Summary, iter_chunks, sources
from gis.export_values import cell_text, is_date, is_datetime


def write_gpkg(layers: Mapping[str, Chunks] | Sequence[Source] | Source, path: str | Path, *,
               crs: str = WGS84) -> Summary:
    """All layers in one GeoPackage (a path: SQLite needs a real file), chunk by chunk.

    The first chunk creates the layer (an empty one still carries the columns and the geometry
    type named by the source), later ones are appended; empty later chunks are skipped.
    """
    crs = output_crs(crs)
    summary = Summary("gpkg", crs)
    path = Path(path)
    path.unlink(missing_ok=True)
    for source in sources(layers):
        count, created = 0, False
        for chunk in iter_chunks(source.chunks):
            if created and not len(chunk):
                continue
            frame = _gpkg_frame(to_output_crs(chunk, crs))
            hint = source.geometry_type if not len(frame) else None
            multi = True if (source.geometry_type or "").lower().startswith("multi") else None
            pyogrio.write_dataframe(frame, path, layer=source.name, driver="GPKG", append=created,
                                    geometry_type=hint, promote_to_multi=multi)
            created, count = True, count + len(frame)
        if not created:
            empty = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=label_crs(crs)))
            pyogrio.write_dataframe(empty, path, layer=source.name, driver="GPKG",
                                    geometry_type=source.geometry_type or "Unknown")
        summary.rows[source.name] = count
    summary.files = [path.name]
    return summary


def _gpkg_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """GeoPackage stores what GDAL maps; lists and dicts become JSON text, date objects dates."""
    out = frame.copy()
    for name in out.columns:
        if name == out.geometry.name:
            continue
        values = out[name]
        if values.dtype == object and not is_datetime(values) and not is_date(values):
            sample = values.dropna()
            if len(sample) and any(isinstance(v, (list, dict, tuple)) for v in sample):
                out[name] = pd.Series([cell_text(v) for v in values], index=values.index, dtype=object)
        elif is_datetime(values) and values.dtype == object:
            out[name] = pd.to_datetime(values, utc=True)
    return out
