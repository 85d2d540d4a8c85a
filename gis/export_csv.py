"""CSV export: what Excel opens correctly.

UTF-8 with a BOM (Excel then reads Chinese correctly); geometry as a ``wkt`` column or as ``lon``/``lat``
(``x``/``y`` in a projected CRS; the representative point of a non-point geometry); times as local
``YYYY-MM-DD HH:MM:SS`` (Asia/Shanghai), which Excel parses. Cells are made safe from formula
injection by :mod:`gis.csvsafe`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis import csvsafe
from gis.coords import WGS84
from gis.errors import InvalidInput
from gis.export_crs import is_projected, output_crs, to_output_crs
from gis.export_source import Chunks, Source, Summary, counted, iter_chunks, one_layer
from gis.export_values import cell_text, is_datetime, local_times

BOM = "\ufeff"


def csv_chunks(source: Source, *, crs: str = WGS84, geometry: str = "wkt") -> Iterator[bytes]:
    """CSV as UTF-8 byte pieces with a BOM first; geometry as ``wkt`` or lon/lat (x/y) columns."""
    crs = output_crs(crs)
    if geometry not in ("wkt", "lonlat"):
        raise InvalidInput(f"csv geometry must be 'wkt' or 'lonlat', not {geometry!r}")
    header_done = False
    for chunk in iter_chunks(source.chunks):
        frame = _csv_frame(to_output_crs(chunk, crs), crs, geometry)
        buffer = io.StringIO()
        if not header_done:
            buffer.write(BOM)
        csvsafe.frame(frame).to_csv(buffer, index=False, header=not header_done, lineterminator="\r\n")
        header_done = True
        yield buffer.getvalue().encode("utf-8")
    if not header_done:
        yield (BOM + ",".join(_geometry_columns(crs, geometry)) + "\r\n").encode("utf-8")


def _geometry_columns(crs: str, geometry: str) -> list[str]:
    if geometry == "wkt":
        return ["wkt"]
    return ["x", "y"] if is_projected(crs) else ["lon", "lat"]


def _csv_frame(frame: gpd.GeoDataFrame, crs: str, geometry: str) -> pd.DataFrame:
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    for name in out.columns:
        if is_datetime(out[name]):
            local = local_times(out[name])
            out[name] = local.dt.strftime("%Y-%m-%d %H:%M:%S").where(local.notna(), None)
        elif out[name].dtype == object:
            out[name] = pd.Series([cell_text(v) for v in out[name]], index=out.index, dtype=object)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    digits = 3 if is_projected(crs) else 7
    if geometry == "wkt":
        out["wkt"] = shapely.to_wkt(geoms, rounding_precision=digits, trim=True)
    else:
        points = shapely.point_on_surface(geoms)
        x_name, y_name = _geometry_columns(crs, geometry)
        out[x_name] = np.round(shapely.get_x(points), digits)
        out[y_name] = np.round(shapely.get_y(points), digits)
    return out


def write_csv(layers: Mapping[str, Chunks] | Sequence[Source] | Source, out: IO[bytes], *,
              crs: str = WGS84, geometry: str = "wkt") -> Summary:
    (source,) = one_layer(layers, "csv")
    counting, count = counted(source)
    for piece in csv_chunks(counting, crs=crs, geometry=geometry):
        out.write(piece)
    return Summary("csv", output_crs(crs), rows={source.name: count[0]})
