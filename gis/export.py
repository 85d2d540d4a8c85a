"""Exports analysts open in ArcGIS, QGIS and Excel: zipped Shapefile, GeoPackage, GeoJSON, CSV.

Pure writers over GeoDataFrames in EPSG:4326 (or iterators of such chunks, so a year of tickets never
sits in memory): no database, no web framework. Here the one entry the CLI and API use,
:func:`export`, and the formats it knows. Each format's rules are in its own module:
:mod:`gis.export_shp` (with :mod:`gis.export_dbf` for the attributes), :mod:`gis.export_gpkg`,
:mod:`gis.export_geojson`, :mod:`gis.export_csv`. The layers written are :mod:`gis.export_source`
Sources; output coordinate systems are :mod:`gis.export_crs`, attribute values
:mod:`gis.export_values`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gis.errors import InvalidInput
from gis.export_crs import output_crs
from gis.export_csv import write_csv
from gis.export_dbf import check_encoding
from gis.export_geojson import write_geojson
from gis.export_gpkg import write_gpkg
from gis.export_shp import MAX_PART_BYTES, write_shapefile_zip
from gis.export_source import Chunks, Source, Summary

FORMATS = ("shp", "gpkg", "geojson", "csv")
MEDIA_TYPES = {"shp": "application/zip", "gpkg": "application/geopackage+sqlite3",
               "geojson": "application/geo+json", "csv": "text/csv; charset=utf-8"}
SUFFIXES = {"shp": ".zip", "gpkg": ".gpkg", "geojson": ".geojson", "csv": ".csv"}


def check_format(fmt: str) -> str:
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return fmt


def export(layers: Mapping[str, Chunks] | Sequence[Source] | Source, fmt: str, out: str | Path, *,
           crs: str | None = None, encoding: str | None = None, geometry: str = "wkt",
           max_part_bytes: int = MAX_PART_BYTES) -> Summary:
    """Write ``layers`` to the file ``out`` in ``fmt`` (shp → a zip). The one entry the CLI and API use."""
    fmt, crs = check_format(fmt), output_crs(crs)
    if fmt != "shp" and encoding and check_encoding(encoding) != "utf-8":
        raise InvalidInput(f"encoding={encoding} applies to shapefiles only; {fmt} is always UTF-8")
    out = Path(out)
    if fmt == "shp":
        return write_shapefile_zip(layers, out, crs=crs, encoding=encoding or "utf-8",
                                   max_part_bytes=max_part_bytes)
    if fmt == "gpkg":
        return write_gpkg(layers, out, crs=crs)
    with open(out, "wb") as handle:
        if fmt == "geojson":
            return write_geojson(layers, handle, crs=crs)
        return write_csv(layers, handle, crs=crs, geometry=geometry)
