"""Shapefile export (one .zip): what older ArcGIS in Chinese offices needs.

* .shp/.shx/.dbf/.prj/.cpg per file; the DBF rules (encodings, short field names, dates, cut text)
  are in :mod:`gis.export_dbf`. The short-name mapping ships in the zip as ``fields.csv`` (layer,
  short_name, full_name, label); every cut text, with the full value, in ``truncated.csv`` (layer,
  file, fid, key, field, bytes, full_value).
* One geometry type per file: a layer holding points and polygons becomes ``<layer>_point.shp`` and
  ``<layer>_polygon.shp``; a single-type layer is just ``<layer>.shp``. Polygon/MultiPolygon share
  the shapefile polygon type, LineString/MultiLineString the polyline type. Rows without geometry
  go, as null shapes, into the layer's first file.
* Each .shp and .dbf must stay under 2 GB (32-bit offsets): checked after every chunk, with an error
  that says to export a GeoPackage or narrow the selection.
"""

from __future__ import annotations

import csv
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.raw import write as ogr_write
from pyproj import CRS

from gis import csvsafe
from gis.coords import WGS84
from gis.errors import InvalidGeometry, InvalidInput
from gis.export_crs import esri_prj, label_crs, output_crs, to_output_crs
from gis.export_dbf import (
    ENCODINGS,
    Cuts,
    DbfColumn,
    Where,
    check_encoding,
    dbf_columns,
    dbf_field_names,
    fit_texts,
)
from gis.export_source import Chunks, Source, Summary, iter_chunks, sources

MAX_PART_BYTES = 2**31 - 1
_FAMILY = {0: "point", 4: "multipoint", 1: "line", 2: "line", 5: "line", 3: "polygon", 6: "polygon"}
_OGR_TYPE = {"point": "Point", "multipoint": "MultiPoint", "line": "MultiLineString",
             "polygon": "MultiPolygon"}
_HINT_FAMILY = {"point": "point", "multipoint": "multipoint", "linestring": "line",
                "multilinestring": "line", "polygon": "polygon", "multipolygon": "polygon"}


def geometry_families(geoms: np.ndarray) -> np.ndarray:
    """Shapefile type per geometry ("point", "multipoint", "line", "polygon"; None when empty)."""
    ids = shapely.get_type_id(geoms)
    empty = shapely.is_empty(geoms) | (ids < 0)
    bad = ~empty & ~np.isin(ids, list(_FAMILY))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidGeometry(f"record {first + 1} is a {geoms[first].geom_type}; a shapefile "
                              "holds points, lines or polygons only")
    families = np.array([_FAMILY.get(int(i)) for i in ids], dtype=object)
    families[empty] = None
    return families


class _ShapefileLayer:
    """One layer's shapefiles in a folder: a file per geometry family, appended chunk by chunk."""

    def __init__(self, source: Source, folder: Path, codec: str, crs: str, cuts: Cuts,
                 max_bytes: int) -> None:
        self.source, self.folder, self.codec, self.crs = source, folder, codec, crs
        self.cuts, self.max_bytes = cuts, max_bytes
        self.counts: dict[str, int] = {}  # family → records written
        self.names: dict[str, str] | None = None
        self.pending: list[gpd.GeoDataFrame] = []  # geometry-less rows before any family is known
        self.template: gpd.GeoDataFrame | None = None  # the schema, for a layer with no rows

    def write(self, chunk: gpd.GeoDataFrame) -> None:
        chunk = to_output_crs(chunk, self.crs)
        geoms = np.asarray(chunk.geometry.values, dtype=object)
        families = geometry_families(geoms)
        if self.names is None:  # the first chunk fixes the schema
            self.template = chunk.iloc[:0]
            attributes = pd.DataFrame(chunk.drop(columns=chunk.geometry.name))
            fulls = [c.full for c in dbf_columns(attributes.head(1000), self.codec)]
            self.names = dbf_field_names(fulls, self.codec)
        for family in [f for f in dict.fromkeys(families) if f is not None]:
            self._append(chunk[families == family], family)
        nulls = chunk[pd.isna(families)]
        if len(nulls):
            first = next(iter(self.counts), None)
            if first is None:
                self.pending.append(nulls)
            else:
                self._append(nulls, first)

    def close(self) -> None:
        """Flush geometry-less rows, write the empty schema if nothing came, name the files."""
        family = next(iter(self.counts), None) or _HINT_FAMILY.get(
            (self.source.geometry_type or "point").lower(), "point")
        for nulls in self.pending:
            self._append(nulls, family)
        if not self.counts:
            empty = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=label_crs(self.crs)))
            self._append(empty if self.template is None else self.template, family)
        if len(self.counts) == 1:
            only = self._stem(next(iter(self.counts)))
            for part in self.folder.glob(f"{only}.*"):
                part.rename(part.with_name(self.source.name + part.suffix))
            final = f"{self.source.name}.shp"
            self.cuts.rows = [(r[0], final, *r[2:]) if r[0] == self.source.name and r[1] == f"{only}.shp"
                              else r for r in self.cuts.rows]

    def stems(self) -> list[str]:
        if len(self.counts) == 1:
            return [self.source.name]
        return [self._stem(f) for f in self.counts]

    def _stem(self, family: str) -> str:
        return f"{self.source.name}_{family}"

    def _append(self, part: gpd.GeoDataFrame, family: str) -> None:
        stem = self._stem(family)
        path = self.folder / f"{stem}.shp"
        offset = self.counts.get(family, 0)
        attributes = pd.DataFrame(part.drop(columns=part.geometry.name))
        columns = dbf_columns(attributes, self.codec) if len(attributes.columns) else []
        keys = part[self.source.key].to_numpy() if self.source.key in part else None
        where = Where(self.source.name, f"{stem}.shp", offset, keys, self.source.key)
        for column in columns:
            fit_texts(column, self.codec, where, self.cuts)
        names = self.names or {}
        if len(columns) == 0 and not names:
            columns = [DbfColumn("fid", np.arange(offset, offset + len(part), dtype="int64"))]
            names = {"fid": "fid"}
        geoms = np.asarray(part.geometry.values, dtype=object)
        if family in ("line", "polygon"):
            geoms = _promote(geoms)
        ogr_write(str(path), shapely.to_wkb(geoms), [c.values for c in columns],
                  [names.get(c.full, c.full) for c in columns], field_mask=[c.mask for c in columns],
                  driver="ESRI Shapefile", geometry_type=_OGR_TYPE[family],
                  crs=CRS.from_user_input(label_crs(self.crs)).to_wkt(),
                  encoding=ENCODINGS[self.codec][0], append=offset > 0)
        self.counts[family] = offset + len(part)
        self._check_size(stem)

    def _check_size(self, stem: str) -> None:
        for suffix in (".shp", ".dbf"):
            size = (self.folder / f"{stem}{suffix}").stat().st_size
            if size > self.max_bytes:
                limit = f"{self.max_bytes:,} bytes" + (" (2 GB)" if self.max_bytes == MAX_PART_BYTES else "")
                raise InvalidInput(
                    f"layer {self.source.name!r}: the {suffix} of its {stem.rsplit('_', 1)[-1]} shapefile "
                    f"passed the shapefile limit of {limit} after {sum(self.counts.values()):,} records; "
                    "export a GeoPackage (format=gpkg) or narrow the area or time range")


def _promote(geoms: np.ndarray) -> np.ndarray:
    """Single parts to multi so GDAL writes one layer type (the shapefile itself does not care)."""
    ids = shapely.get_type_id(geoms)
    out = geoms.copy()
    for single, multi in ((1, shapely.MultiLineString), (3, shapely.MultiPolygon)):
        pick = ids == single
        if pick.any():
            out[pick] = [multi([g]) for g in geoms[pick]]
    return out


def _finish_shapefile(folder: Path, stem: str, codec: str, crs: str) -> None:
    """Our own .prj (ESRI WKT) and .cpg, and the DBF language driver byte for GBK."""
    (folder / f"{stem}.prj").write_text(esri_prj(crs), encoding="ascii")
    (folder / f"{stem}.cpg").write_text(ENCODINGS[codec][1], encoding="ascii")
    with open(folder / f"{stem}.dbf", "r+b") as dbf:
        dbf.seek(29)
        dbf.write(bytes([ENCODINGS[codec][2]]))


def write_shapefile_zip(layers: Mapping[str, Chunks] | Sequence[Source] | Source, out: str | Path | IO[bytes],
                        *, crs: str = WGS84, encoding: str = "utf-8",
                        max_part_bytes: int = MAX_PART_BYTES) -> Summary:
    """One zip with each layer's shapefile(s), fields.csv and (when anything was cut) truncated.csv."""
    codec, crs = check_encoding(encoding), output_crs(crs)
    summary = Summary("shp", crs)
    cuts = Cuts()
    with tempfile.TemporaryDirectory(prefix="onemap-shp-") as tmp:
        folder = Path(tmp)
        field_rows: list[tuple] = []
        for source in sources(layers):
            writer = _ShapefileLayer(source, folder, codec, crs, cuts, max_part_bytes)
            for chunk in iter_chunks(source.chunks):
                writer.write(chunk)
            writer.close()
            for stem in writer.stems():
                _finish_shapefile(folder, stem, codec, crs)
            summary.rows[source.name] = sum(writer.counts.values())
            field_rows += [(source.name, short, full, _label(source.labels, full))
                           for full, short in (writer.names or {}).items()]
        _write_csv(folder / "fields.csv", ("layer", "short_name", "full_name", "label"), field_rows)
        if cuts.rows:
            _write_csv(folder / "truncated.csv",
                       ("layer", "file", "fid", "key", "field", "bytes", "full_value"), cuts.rows)
        summary.truncated = len(cuts.rows)
        summary.files = _zip_folder(folder, out)
    return summary


def _label(labels: Mapping[str, str], full: str) -> str:
    if full in labels:
        return labels[full]
    if full.endswith("_time") and full[:-5] in labels:
        return f"{labels[full[:-5]]}（时间）"
    return ""


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(csvsafe.row(header))
        writer.writerows(csvsafe.row(r) for r in rows)


def _zip_folder(folder: Path, out: str | Path | IO[bytes]) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        for name in names:
            archive.write(folder / name, arcname=name)
    return names
