"""Exports analysts open in ArcGIS, QGIS and Excel: zipped Shapefile, GeoPackage, GeoJSON, CSV.

Pure writers over GeoDataFrames in EPSG:4326 (or iterators of such chunks, so a year of tickets never
sits in memory): no database, no web framework. The rules each format follows and why:

Shapefile (one .zip) — what older ArcGIS in Chinese offices needs.
  * .shp/.shx/.dbf/.prj/.cpg per file. Text in UTF-8 (default; .cpg ``UTF-8``) or GBK (.cpg ``936`` and
    the DBF language driver byte 0x4D, the code page ArcGIS and GDAL both recognise).
  * A character the chosen encoding cannot hold (an emoji, a rare 生僻字 outside GBK) is an error naming
    the layer, record, key and field — never a silent ``?``: export with ``encoding=utf-8`` instead.
  * DBF field names hold at most 10 BYTES in the file's encoding (a Chinese character is 3 bytes in
    UTF-8, 2 in GBK). :func:`dbf_field_names` maps each full name to a short one: kept when it fits,
    otherwise cut to whole characters within 10 bytes; a name that then clashes (DBF names compare
    case-insensitively) is cut further and given ``_1``, ``_2``... in column order. The mapping ships
    in the zip as ``fields.csv`` (layer, short_name, full_name, label).
  * One geometry type per file: a layer holding points and polygons becomes ``<layer>_point.shp`` and
    ``<layer>_polygon.shp``; a single-type layer is just ``<layer>.shp``. Polygon/MultiPolygon share
    the shapefile polygon type, LineString/MultiLineString the polyline type. Rows without geometry
    go, as null shapes, into the layer's first file.
  * A date-time column becomes a DBF date (D, the local date in Asia/Shanghai) plus a text column
    ``<name>_time`` with the full local ISO 8601 time, because a D field cannot hold hours.
  * Text longer than 254 bytes is cut at a character boundary; every cut is listed, with the full
    value, in ``truncated.csv`` (layer, file, fid, key, field, bytes, full_value).
  * Each .shp and .dbf must stay under 2 GB (32-bit offsets): checked after every chunk, with an error
    that says to export a GeoPackage or narrow the selection.

GeoPackage: all layers of a selection in one file; layer and field names may be Chinese as given.
GeoJSON: RFC 7946 — WGS84 lon/lat only, counter-clockwise outer rings, 7 decimals (about 1 cm).
CSV: UTF-8 with a BOM (Excel then reads Chinese correctly); geometry as a ``wkt`` column or as
``lon``/``lat`` (``x``/``y`` in a projected CRS; the representative point of a non-point geometry);
times as local ``YYYY-MM-DD HH:MM:SS`` (Asia/Shanghai), which Excel parses.

Output CRS: EPSG:4326 (default), EPSG:4490 (CGCS2000, same numbers as PROJ treats them as equal), a
CGCS2000 Gauss-Krüger zone EPSG:4513-4554, or ``gcj02`` for overlays on Amap. GCJ-02 is an
obfuscation, not a CRS: such files are labelled WGS84 (that is how Amap data circulates) and the file
names carry ``_gcj02``. The .prj is pyproj's ESRI WKT, the dialect ArcGIS matches to its own CRS list.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.raw import write as ogr_write
from pyproj import CRS
from pyproj.enums import WktVersion

from gis import csvsafe
from gis.coords import WGS84, from_wgs84, normalize_crs
from gis.errors import InvalidGeometry, InvalidInput, UnknownCRS

FORMATS = ("shp", "gpkg", "geojson", "csv")
MEDIA_TYPES = {"shp": "application/zip", "gpkg": "application/geopackage+sqlite3",
               "geojson": "application/geo+json", "csv": "text/csv; charset=utf-8"}
SUFFIXES = {"shp": ".zip", "gpkg": ".gpkg", "geojson": ".geojson", "csv": ".csv"}
# encoding → (GDAL name, .cpg text, DBF language driver id)
ENCODINGS = {"utf-8": ("UTF-8", "UTF-8", 0x00), "gbk": ("GBK", "936", 0x4D)}
GK_EPSG = range(4513, 4555)
CGCS2000 = "EPSG:4490"
LOCAL_TZ = "Asia/Shanghai"
DBF_NAME_BYTES = 10
DBF_TEXT_BYTES = 254
MAX_PART_BYTES = 2**31 - 1
BOM = "\ufeff"
_COMPACT = (",", ":")
_FAMILY = {0: "point", 4: "multipoint", 1: "line", 2: "line", 5: "line", 3: "polygon", 6: "polygon"}
_OGR_TYPE = {"point": "Point", "multipoint": "MultiPoint", "line": "MultiLineString",
             "polygon": "MultiPolygon"}
_HINT_FAMILY = {"point": "point", "multipoint": "multipoint", "linestring": "line",
                "multilinestring": "line", "polygon": "polygon", "multipolygon": "polygon"}

Chunks: TypeAlias = gpd.GeoDataFrame | Iterable[gpd.GeoDataFrame]


@dataclass(frozen=True)
class Source:
    """One layer to write: its chunks plus what the files should say about it."""

    name: str
    chunks: Chunks
    labels: Mapping[str, str] = field(default_factory=dict)  # column → Chinese label (fields.csv)
    key: str | None = None  # the column that identifies a record in error messages and truncated.csv
    geometry_type: str | None = None  # schema of an empty layer, e.g. "MultiPolygon"


@dataclass
class Summary:
    """What an export wrote."""

    format: str
    crs: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    truncated: int = 0


# ------------------------------------------------------------------------------------ inputs


def sources(layers: Mapping[str, Chunks] | Sequence[Source] | Source) -> list[Source]:
    """Accept a Source, a list of them, or a plain {name: frame-or-chunks} mapping."""
    if isinstance(layers, Source):
        return [layers]
    if isinstance(layers, Mapping):
        return [Source(name, chunks) for name, chunks in layers.items()]
    return list(layers)


def iter_chunks(chunks: Chunks) -> Iterator[gpd.GeoDataFrame]:
    """A frame is one chunk; anything else is iterated (a generator is consumed once)."""
    if isinstance(chunks, gpd.GeoDataFrame):
        yield chunks
    else:
        yield from iter(chunks)


def check_format(fmt: str) -> str:
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return fmt


def check_encoding(encoding: str | None) -> str:
    text = (encoding or "utf-8").strip().lower().replace("_", "-")
    text = {"utf8": "utf-8", "cp936": "gbk", "936": "gbk"}.get(text, text)
    if text not in ENCODINGS:
        raise InvalidInput(f"unknown shapefile encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    return text


# ---------------------------------------------------------------------------------------- CRS


def output_crs(crs: str | int | None) -> str:
    """'EPSG:4326' (default), 'EPSG:4490', 'EPSG:4513'..'EPSG:4554' or 'gcj02'; anything else → UnknownCRS."""
    name = normalize_crs(crs)
    if name in (WGS84, CGCS2000, "gcj02"):
        return name
    if name.startswith("EPSG:") and name[5:].isdigit() and int(name[5:]) in GK_EPSG:
        return name
    raise UnknownCRS(f"exports are written in EPSG:4326, EPSG:4490, a CGCS2000 Gauss-Krüger zone "
                     f"EPSG:4513-4554 or gcj02; {crs!r} is not one of them")


def label_crs(crs: str) -> str:
    """The CRS written into files: GCJ-02 has none of its own and circulates labelled WGS84."""
    return WGS84 if crs == "gcj02" else crs


def esri_prj(crs: str) -> str:
    """The .prj text ArcGIS recognises: ESRI-flavoured WKT1."""
    return CRS.from_user_input(label_crs(crs)).to_wkt(WktVersion.WKT1_ESRI)


def is_projected(crs: str) -> bool:
    return crs not in (WGS84, CGCS2000, "gcj02")


def to_output_crs(frame: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Reproject a frame (EPSG:4326 unless it says otherwise) into an export CRS, vectorised."""
    if frame.crs is not None and not CRS.from_user_input(frame.crs).equals(WGS84):
        frame = frame.to_crs(WGS84)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if crs not in (WGS84, CGCS2000) and len(geoms):
        geoms = shapely.transform(geoms, _converter(crs))
    out = frame.copy()
    out[frame.geometry.name] = gpd.GeoSeries(geoms, index=frame.index)
    return out.set_geometry(frame.geometry.name).set_crs(label_crs(crs), allow_override=True)


def _converter(crs: str) -> Callable[[np.ndarray], np.ndarray]:
    def convert(coords: np.ndarray) -> np.ndarray:
        x, y = from_wgs84(coords[:, 0], coords[:, 1], crs)
        return np.column_stack([x, y])
    return convert


def file_stem(name: str, crs: str) -> str:
    """A download name that says when the coordinates are shifted (GCJ-02) or projected."""
    if crs == "gcj02":
        return f"{name}_gcj02"
    return name if crs == WGS84 else f"{name}_{crs.split(':')[1]}"


# ------------------------------------------------------------------------------ field values


def local_times(values: pd.Series) -> pd.Series:
    """Datetime values as Asia/Shanghai wall-clock times (naive input is taken as already local)."""
    series = pd.to_datetime(values, utc=False)
    if getattr(series.dt, "tz", None) is None:
        return series.dt.tz_localize(LOCAL_TZ)
    return series.dt.tz_convert(LOCAL_TZ)


def is_datetime(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if values.dtype != object:
        return False
    sample = values.dropna()
    return bool(len(sample)) and all(isinstance(v, datetime) for v in sample.iloc[:50])


def is_date(values: pd.Series) -> bool:
    sample = values.dropna()
    return (values.dtype == object and bool(len(sample))
            and all(isinstance(v, date) and not isinstance(v, datetime) for v in sample.iloc[:50]))


def iso_local(local: pd.Series) -> np.ndarray:
    """Local times as ISO 8601 text with the offset (2026-11-01T08:00:00+08:00), vectorised.

    numpy formats the wall-clock time in C; the offset is appended as text when it is the same for
    every row (always +08:00 in Shanghai since 1991), else pandas' slower strftime is used.
    """
    wall = local.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    utc = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    offsets = np.unique((wall - utc)[~np.isnat(wall)].astype("timedelta64[m]").astype(int))
    if len(offsets) > 1:
        text = local.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        return (text.str[:-2] + ":" + text.str[-2:]).to_numpy(dtype=object, na_value=None)
    minutes = int(offsets[0]) if len(offsets) else 0
    sign = "+" if minutes >= 0 else "-"
    suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = np.char.add(np.datetime_as_string(wall, unit="s").astype(object).astype(str), suffix)
    out = text.astype(object)
    out[np.isnat(wall)] = None
    return out


def texts(values: pd.Series) -> np.ndarray:
    """A column as an object array of str or None; only non-string objects go through :func:`plain`."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.to_numpy(dtype=object, na_value=None)
    return np.array([_text(v) for v in values], dtype=object)


def plain(value: Any) -> Any:
    """A JSON/CSV-ready scalar: numpy scalars unwrapped, NaN/NaT → None, times as local ISO."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize(LOCAL_TZ) if stamp.tzinfo is None else stamp.tz_convert(LOCAL_TZ)
        return stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, ensure_ascii=False, default=str))
    return value


def fit_text(text: str, encoding: str, limit: int = DBF_TEXT_BYTES) -> tuple[str, int]:
    """``text`` cut to whole characters within ``limit`` bytes, and its full length in bytes."""
    raw = text.encode(encoding)
    if len(raw) <= limit:
        return text, len(raw)
    return raw[:limit].decode(encoding, errors="ignore"), len(raw)


# --------------------------------------------------------------------------- DBF field names


def _cut(name: str, encoding: str, limit: int) -> str:
    out = ""
    for char in name:
        if len((out + char).encode(encoding)) > limit:
            break
        out += char
    return out


def dbf_field_names(columns: Sequence[str], encoding: str = "utf-8") -> dict[str, str]:
    """Full column name → DBF name of at most 10 bytes in ``encoding``, unique ignoring case.

    Deterministic (the same columns always get the same names) so analysts can rely on them month
    after month; see the module docstring for the rule.
    """
    codec = check_encoding(encoding)
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    for name in columns:
        _encodable_name(name, codec)
        short = _cut(name, codec, DBF_NAME_BYTES) or "field"
        n = 0
        while short.upper() in taken:
            n += 1
            suffix = f"_{n}"
            short = _cut(name, codec, DBF_NAME_BYTES - len(suffix)) + suffix
        taken.add(short.upper())
        mapping[name] = short
    return mapping


def _encodable_name(name: str, codec: str) -> None:
    try:
        name.encode(codec)
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"field name {name!r} cannot be written in {codec.upper()} "
                           f"(character {name[exc.start]!r}); export with encoding=utf-8") from exc


# ------------------------------------------------------------------------------ DBF columns


@dataclass
class _Column:
    full: str
    values: np.ndarray
    mask: np.ndarray | None = None


@dataclass
class _Cuts:
    """Text cut to fit a DBF field, to be listed in truncated.csv."""

    rows: list[tuple] = field(default_factory=list)


def dbf_columns(frame: pd.DataFrame, codec: str) -> list[_Column]:
    """Each attribute column as an array GDAL writes into the DBF type it should have."""
    columns: list[_Column] = []
    for name in frame.columns:
        values = frame[name]
        if is_datetime(values):
            local = local_times(values)
            days = local.dt.tz_localize(None).values.astype("datetime64[D]")
            columns += [_Column(name, days), _Column(f"{name}_time", iso_local(local))]
        elif is_date(values):
            columns.append(_Column(name, pd.to_datetime(values).values.astype("datetime64[D]")))
        else:
            columns.append(_number_or_text(name, values))
    return columns


def _number_or_text(name: str, values: pd.Series) -> _Column:
    if pd.api.types.is_bool_dtype(values) and values.dtype != object:
        return _Column(name, values.to_numpy(dtype="int32", na_value=0), _mask(values))
    if pd.api.types.is_integer_dtype(values):
        return _Column(name, values.to_numpy(dtype="int64", na_value=0), _mask(values))
    if pd.api.types.is_float_dtype(values):
        return _Column(name, values.to_numpy(dtype="float64", na_value=np.nan))
    sample = values.dropna()
    if len(sample) and all(isinstance(v, (bool, np.bool_)) for v in sample):
        return _Column(name, values.map(lambda v: int(v) if v is not None else 0).to_numpy("int32"),
                       _mask(values))
    if len(sample) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sample):
        return _Column(name, values.fillna(0).to_numpy(dtype="int64"), _mask(values))
    if len(sample) and all(isinstance(v, (float, int, np.number)) for v in sample):
        return _Column(name, values.to_numpy(dtype="float64", na_value=np.nan))
    return _Column(name, texts(values))


def _mask(values: pd.Series) -> np.ndarray | None:
    mask = values.isna().to_numpy()
    return mask if mask.any() else None


def _text(value: Any) -> str | None:
    value = plain(value)
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def fit_texts(column: _Column, codec: str, where: _Where, cuts: _Cuts) -> None:
    """Check every text value can be encoded and cut the long ones, recording each cut.

    One encode of the whole column answers "can GBK hold all of it" at C speed; only on failure is
    the column walked to name the record. Only strings long enough to pass 254 bytes are measured.
    """
    values = column.values
    if values.dtype != object:
        return
    present = [v for v in values if v is not None]
    if codec != "utf-8":
        try:
            "\x00".join(present).encode(codec)
        except UnicodeEncodeError:
            _name_unencodable(column, codec, where)
    lengths = pd.Series(values, dtype=object).str.len().fillna(0).to_numpy()
    widest = 4 if codec == "utf-8" else 2  # bytes per character at most
    for i in np.flatnonzero(lengths > DBF_TEXT_BYTES // widest):
        text = values[i]
        cut, size = fit_text(text, codec)
        if cut != text:
            values[i] = cut
            cuts.rows.append((where.layer, where.file, where.offset + int(i), where.key_of(int(i)),
                              column.full, size, text))


def _name_unencodable(column: _Column, codec: str, where: _Where) -> None:
    for i, text in enumerate(column.values):
        if text is None:
            continue
        try:
            text.encode(codec)
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{where.describe(i)}, field {column.full!r}: character "
                               f"{text[exc.start]!r} cannot be written in {codec.upper()}; "
                               "export with encoding=utf-8") from exc


@dataclass
class _Where:
    """Names a record in messages: layer, file, FID, and its key value when the layer has one."""

    layer: str
    file: str
    offset: int
    keys: np.ndarray | None
    key: str | None

    def key_of(self, i: int) -> str:
        return "" if self.keys is None else str(plain(self.keys[i]))

    def describe(self, i: int) -> str:
        text = f"layer {self.layer!r}, record {self.offset + i + 1} (FID {self.offset + i}"
        if self.keys is not None:
            text += f", {self.key} {self.key_of(i)}"
        return text + ")"


# --------------------------------------------------------------------------- geometry types


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


# ------------------------------------------------------------------------------- shapefile


class _ShapefileLayer:
    """One layer's shapefiles in a folder: a file per geometry family, appended chunk by chunk."""

    def __init__(self, source: Source, folder: Path, codec: str, crs: str, cuts: _Cuts,
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
        where = _Where(self.source.name, f"{stem}.shp", offset, keys, self.source.key)
        for column in columns:
            fit_texts(column, self.codec, where, self.cuts)
        names = self.names or {}
        if len(columns) == 0 and not names:
            columns = [_Column("fid", np.arange(offset, offset + len(part), dtype="int64"))]
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
    cuts = _Cuts()
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


# ------------------------------------------------------------------------------- GeoPackage


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
                out[name] = pd.Series([_text(v) for v in values], index=values.index, dtype=object)
        elif is_datetime(values) and values.dtype == object:
            out[name] = pd.to_datetime(values, utc=True)
    return out


# ---------------------------------------------------------------------------------- GeoJSON


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
    (source,) = _one(layers, "geojson")
    counting, count = _counted(source)
    for piece in geojson_chunks(counting):
        out.write(piece)
    return Summary("geojson", WGS84, rows={source.name: count[0]})


def _counted(source: Source) -> tuple[Source, list[int]]:
    """The same source whose chunks add their row count to the returned one-item list."""
    count = [0]

    def chunks() -> Iterator[gpd.GeoDataFrame]:
        for chunk in iter_chunks(source.chunks):
            count[0] += len(chunk)
            yield chunk
    return replace(source, chunks=chunks()), count


def _one(layers: Mapping[str, Chunks] | Sequence[Source] | Source, fmt: str) -> list[Source]:
    found = sources(layers)
    if len(found) != 1:
        raise InvalidInput(f"{fmt} holds one layer; got {len(found)} ({', '.join(s.name for s in found)}): "
                           "use format=gpkg or shp for several layers in one download")
    return found


# -------------------------------------------------------------------------------------- CSV


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
            out[name] = pd.Series([_text(v) for v in out[name]], index=out.index, dtype=object)
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
    (source,) = _one(layers, "csv")
    counting, count = _counted(source)
    for piece in csv_chunks(counting, crs=crs, geometry=geometry):
        out.write(piece)
    return Summary("csv", output_crs(crs), rows={source.name: count[0]})


# ------------------------------------------------------------------------------------ entry


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

