"""Read grid and area boundary files (网格/区划边界) for import: Shapefile, zipped Shapefile, GeoPackage, GeoJSON.

Planners hand over whatever their desktop GIS wrote: GBK shapefiles without a .cpg, Gauss-Krüger
coordinates, GCJ-02 lon/lat labelled as WGS84, zips made on Windows. This module turns such a file into
one GeoDataFrame of MultiPolygons in EPSG:4326 with the caller's column names, or refuses it with a
message a person can act on (a gis.errors exception, never a driver traceback). It does not fix
geometries: invalid polygons are topology validation's business, so they pass through untouched.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gis.cleaning import Fix, clean_artefacts, repair_reprojected
from gis.columns import ColumnChoice, detect_area_columns, detect_grid_columns
from gis.coords import SPECIAL, WGS84, normalize_crs, to_wgs84
from gis.errors import InvalidGeometry, InvalidInput

DRIVERS = {".shp": "ESRI Shapefile", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
ARCHIVES = {".zip"}
MAX_BYTES = 512 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed; legitimate DBFs with wide text fields reach ~40
RATIO_FLOOR = 1024 * 1024  # members smaller than this cannot bomb anything, whatever their ratio
CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)
LONLAT_SAME = {"EPSG:4326", "EPSG:4490"}  # WGS84 and CGCS2000 are treated as equal, as PROJ does
_POLYGON, _MULTIPOLYGON = 3, 6
_KIND = {0: "point", 4: "point", 1: "line", 2: "line", 5: "line", 7: "geometry-collection"}
_CODEPAGES = {"65001": "utf-8", "936": "gbk", "54936": "gb18030", "20936": "gb2312", "950": "big5"}
# UTF-8 first: GB18030 would accept most UTF-8 byte runs, as mojibake
_DETECT_ORDER = ("utf-8", "gb18030")
_CHUNK_RECORDS = 65536
_CUT_REASONS = {"unexpected end of data", "incomplete multibyte sequence"}


@dataclass(frozen=True)
class ReadResult:
    """What a boundary file held, ready for validation: ``frame`` is EPSG:4326 MultiPolygons."""

    frame: gpd.GeoDataFrame
    source_crs: str  # "EPSG:4528", "gcj02", "bd09", or the file's WKT when it names no EPSG code
    detected_encoding: str | None  # the codec used for attribute text
    driver: str
    n_features: int
    warnings: tuple[str, ...] = ()
    layer: str | None = None
    columns: ColumnChoice | None = None  # the column mapping chosen (when asked to detect one)
    fixes: tuple[Fix, ...] = ()  # sub-m² artefacts cleaned, polygons repaired after conversion
    name: str = ""  # the file's name, for messages


@dataclass
class _Notes:
    """Warnings gathered along the way, handed back in ReadResult.warnings (and what was cleaned)."""

    items: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    columns: ColumnChoice | None = None

    def add(self, text: str) -> None:
        self.items.append(text)


# --------------------------------------------------------------------------------------------- entry


def read_features(
    path: str | Path,
    *,
    crs: str | None = None,
    fields: dict[str, str] | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    max_bytes: int = MAX_BYTES,
    detect: str | None = None,
) -> ReadResult:
    """Read a boundary file into EPSG:4326 MultiPolygons with ``fields`` (target → source) renamed.

    ``detect`` ("grids" or "areas") also recognises the other columns by name and content
    (:mod:`gis.columns`); ``fields`` then overrides that choice, which ReadResult.columns describes.

    ``crs`` (EPSG code, "gcj02" or "bd09") is required when the file carries none; when both are
    present they must agree, except that gcj02/bd09 may override a lon/lat label (Amap exports are
    GCJ-02 written out as "WGS84"). ``encoding`` overrides the .cpg and the detection of DBF text.
    """
    source = Path(path)
    _check_exists(source)
    suffix = source.suffix.lower()
    if suffix in ARCHIVES:
        return _read_zip(
            source, crs=crs, fields=fields, encoding=encoding, layer=layer, max_bytes=max_bytes,
            detect=detect,
        )
    if suffix not in DRIVERS:
        raise InvalidInput(
            f"{source.name}: unsupported file type {source.suffix or '(none)'!r}; "
            "expected .shp, .zip (zipped shapefile), .gpkg, .geojson or .json"
        )
    return _read_file(
        source, crs=crs, fields=fields, encoding=encoding, layer=layer, max_bytes=max_bytes,
        detect=detect,
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if not path.is_file():
        raise InvalidInput(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name} is empty (0 bytes)")


def _read_zip(archive: Path, *, layer: str | None, max_bytes: int, **options: Any) -> ReadResult:
    with tempfile.TemporaryDirectory(prefix="onemap-import-") as tmp:
        members = extract_zip(archive, Path(tmp), max_bytes=max_bytes)
        chosen, inner_layer = _pick_member(members, Path(tmp), layer, archive.name)
        result = _read_file(chosen, layer=inner_layer, max_bytes=max_bytes, **options)
    return result


def _read_file(
    path: Path,
    *,
    crs: str | None,
    fields: dict[str, str] | None,
    encoding: str | None,
    layer: str | None,
    max_bytes: int,
    detect: str | None = None,
) -> ReadResult:
    notes = _Notes()
    driver = DRIVERS[path.suffix.lower()]
    _check_exists(path)
    codec: str | None
    with ExitStack() as stack:
        if driver == "ESRI Shapefile":
            _check_shapefile(path, max_bytes)
            codec = shapefile_encoding(path, encoding, notes)
            path = _with_whole_names(path, codec, stack, notes)
        else:
            _check_size(path, max_bytes)
            codec = _other_encoding(driver, encoding, notes)
        layer = _pick_layer(path, layer, driver)
        with _driver_errors(path, driver):
            info = pyogrio.read_info(path, layer=layer, encoding=codec)
        source_crs = resolve_crs(info.get("crs"), crs, path.name, notes)  # before the costly read
        with _driver_errors(path, driver):
            frame = _read_frame(path, layer, codec, notes)
    frame = _finish(frame, source_crs, fields, path.name, notes, detect)
    return ReadResult(
        frame=frame,
        source_crs=_crs_label(source_crs),
        detected_encoding=codec,
        driver=driver,
        n_features=len(frame),
        warnings=tuple(notes.items),
        layer=layer,
        columns=notes.columns,
        fixes=tuple(notes.fixes),
        name=path.name,
    )


def _read_frame(
    path: Path, layer: str | None, codec: str | None, notes: _Notes
) -> gpd.GeoDataFrame:
    """Read through pyogrio, turning the driver's Python warnings into notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = gpd.read_file(path, engine="pyogrio", layer=layer, encoding=codec)
    for item in caught:
        notes.add(f"{path.name}: {item.message}")
    return frame


def _finish(
    frame: gpd.GeoDataFrame,
    source_crs: str | CRS,
    fields: dict[str, str] | None,
    name: str,
    notes: _Notes,
    detect: str | None = None,
) -> gpd.GeoDataFrame:
    """The checks and conversions every format shares, in the order that gives the clearest message.

    Validity is judged and artefacts are cleaned in the file's own coordinates, before conversion
    (see :mod:`gis.cleaning`); lon/lat only has to keep what was valid valid.
    """
    if len(frame) == 0:
        raise InvalidInput(f"{name} holds no features")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    check_geometries(geoms, name)
    if shapely.has_z(geoms).any():
        notes.add(f"{name}: 3-D coordinates found; heights dropped")
    source = shapely.force_2d(geoms)
    lonlat = reproject(source, source_crs)
    check_in_china(lonlat, name, source_crs)
    source, fixes = clean_artefacts(source, metric=_is_metric(source_crs),
                                    to_lonlat=lambda g: reproject(g, source_crs))
    lonlat = reproject(source, source_crs) if fixes else lonlat
    lonlat, repaired = repair_reprojected(source, lonlat)
    for fix in (*fixes, *repaired):
        notes.fixes.append(fix)
        notes.add(fix.text(name, _crs_label(source_crs)))
    geoms = lonlat
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    if detect is not None:
        choose = detect_grid_columns if detect == "grids" else detect_area_columns
        notes.columns = choose(attributes, fields)
        fields = notes.columns.mapping
    attributes = apply_fields(attributes, fields, name, notes)
    attributes = codes_as_text(attributes, notes)
    return gpd.GeoDataFrame(attributes, geometry=to_multipolygons(geoms), crs=WGS84)


# ------------------------------------------------------------------------------------------ zips


def extract_zip(archive: Path, dest: Path, *, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Extract ``archive`` into ``dest`` after refusing unsafe names and bombs; return the files.

    The header sizes are checked first (cheap) and then enforced while copying, because a crafted
    archive can declare small sizes and inflate to far more.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{archive.name} is not a readable zip archive ({exc})") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if not members:
            raise InvalidInput(f"{archive.name} is an empty zip archive")
        names = [_safe_member_name(m, archive.name) for m in members]
        _check_bomb(members, archive.name, max_bytes)
        budget = [max_bytes]
        try:
            return [
                _extract_member(zf, m, dest / n, budget, archive.name)
                for m, n in zip(members, names, strict=True)
            ]
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidInput(f"{archive.name} is corrupt ({exc})") from exc
        except NotImplementedError as exc:
            raise InvalidInput(
                f"{archive.name} uses a compression method that cannot be read ({exc}); "
                "zip it again with ordinary deflate"
            ) from exc


def _member_name(info: zipfile.ZipInfo) -> str:
    """Zips made on Chinese Windows store GBK names without the UTF-8 flag; Python reads them as cp437."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    for codec in _DETECT_ORDER:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return name


def _safe_member_name(info: zipfile.ZipInfo, archive: str) -> PurePosixPath:
    name = _member_name(info).replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise InvalidInput(
            f"{archive}: refused, member {name!r} would be written outside the folder"
        )
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise InvalidInput(f"{archive}: refused, member {name!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise InvalidInput(
            f"{archive}: member {name!r} is encrypted; unzip it yourself and give the .shp"
        )
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def _check_bomb(members: list[zipfile.ZipInfo], archive: str, max_bytes: int) -> None:
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise InvalidInput(
            f"{archive}: refused, it would unpack to {total:,} bytes, above the limit of {max_bytes:,}"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise InvalidInput(
                f"{archive}: refused, member {m.filename!r} is compressed {ratio:.0f}:1 "
                f"(limit {MAX_RATIO}:1), which is how zip bombs look"
            )


def _extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int], archive: str
) -> Path:
    """Copy one member in chunks, stopping as soon as it exceeds its declared size or the budget."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while chunk := src.read(1024 * 1024):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > info.file_size or budget[0] < 0:
                raise InvalidInput(
                    f"{archive}: refused, member {info.filename!r} inflates beyond its declared size"
                )
            dst.write(chunk)
    return target


def _pick_member(
    files: list[Path], root: Path, layer: str | None, archive: str
) -> tuple[Path, str | None]:
    """Find the one readable file in an unpacked zip; ``layer`` names it when there are several."""
    candidates = [
        f
        for f in files
        if f.suffix.lower() in DRIVERS and "__MACOSX" not in f.parts and not f.name.startswith("._")
    ]
    shapefiles = [f for f in candidates if f.suffix.lower() == ".shp"]
    candidates = shapefiles or candidates
    if not candidates:
        raise InvalidInput(f"{archive} holds no .shp (nor .gpkg/.geojson) file")
    labels = [f.relative_to(root).as_posix() for f in candidates]
    if len(candidates) == 1:
        only = candidates[0]
        if (
            layer is not None
            and only.suffix.lower() == ".shp"
            and layer not in (only.stem, labels[0])
        ):
            raise InvalidInput(f"{archive}: no layer {layer!r}; it holds {labels[0]!r}")
        return only, (layer if only.suffix.lower() != ".shp" else None)
    matches = [f for f, label in zip(candidates, labels, strict=True) if layer in (f.stem, label)]
    if layer is None or len(matches) != 1:
        what = "several" if layer is None else f"no single match for layer {layer!r} among"
        raise InvalidInput(
            f"{archive}: {what} layers: {', '.join(labels)}; choose one with layer (--layer)"
        )
    return matches[0], None


# ------------------------------------------------------------------------------------- shapefiles


def _sidecar(shp: Path, ext: str) -> Path | None:
    """The .dbf/.shx/.prj/.cpg next to ``shp``, whatever the case of its extension."""
    for candidate in (shp.with_suffix(ext), shp.with_suffix(ext.upper())):
        if candidate.exists():
            return candidate
    return None


def _check_shapefile(shp: Path, max_bytes: int) -> Path:
    """Refuse missing parts and truncated .shp files: GDAL reads those as null geometries, silently."""
    missing = [ext for ext in (".shx", ".dbf") if _sidecar(shp, ext) is None]
    if missing:
        raise InvalidInput(
            f"{shp.name} comes without its {' and '.join(missing)} file: give all parts"
        )
    _check_size(shp, max_bytes, _sidecar(shp, ".dbf"))
    with open(shp, "rb") as f:
        header = f.read(100)
    size = shp.stat().st_size
    if len(header) < 100 or struct.unpack(">i", header[:4])[0] != 9994:
        raise InvalidInput(f"{shp.name} is not a shapefile (bad header)")
    declared = struct.unpack(">i", header[24:28])[0] * 2
    if declared != size:
        raise InvalidInput(
            f"{shp.name} is truncated or corrupt: its header says {declared:,} bytes, the file has {size:,}"
        )
    return shp


def _check_size(first: Path, max_bytes: int, *others: Path | None) -> None:
    total = sum(p.stat().st_size for p in (first, *others) if p is not None)
    if total > max_bytes:
        raise InvalidInput(
            f"{first.name}: {total:,} bytes, above the import limit of {max_bytes:,}"
        )


def shapefile_encoding(shp: Path, explicit: str | None, notes: _Notes | None = None) -> str:
    """Choose the codec for the DBF text: explicit, else the .cpg, else detected from the bytes.

    Every choice is checked against the bytes, so a wrong guess is refused instead of read as mojibake.
    """
    notes = notes or _Notes()
    layout = DbfLayout.read(_sidecar(shp, ".dbf"))
    if explicit:
        codec = _python_codec(explicit)
        if codec is None:
            raise InvalidInput(f"unknown encoding {explicit!r}: try UTF-8, GBK or GB18030")
        _require_decodes(layout, codec, shp.name)
        return codec
    cpg = _sidecar(shp, ".cpg")
    if cpg is not None:
        declared = cpg.read_text(encoding="ascii", errors="replace").strip()
        codec = _python_codec(declared)
        if codec is not None and layout.problem(codec) is None:
            return codec
        notes.add(
            f"{shp.name}: the .cpg says {declared!r} but the attributes do not decode so; detecting"
        )
    codec = detect_encoding(layout, shp.name)
    if cpg is None:
        notes.add(f"{shp.name}: no .cpg; attribute text detected as {codec}")
    return codec


def _python_codec(name: str) -> str | None:
    """Map .cpg spellings ("UTF-8", "GBK", "936", "ANSI 936", "CP936") to a Python codec name."""
    text = name.strip().upper().removeprefix("ANSI").strip().removeprefix("CP").strip()
    text = _CODEPAGES.get(text, f"cp{text}" if text.isdigit() else name.strip())
    try:
        return codecs.lookup(text).name
    except LookupError:
        return None


def detect_encoding(layout: DbfLayout, name: str) -> str:
    """UTF-8 if every text value decodes strictly as UTF-8, else GB18030 (⊇ GBK, GB2312), else refuse."""
    problems = []
    for codec in _DETECT_ORDER:
        problem = layout.problem(codec)
        if problem is None:
            return codec
        problems.append(f"{codec}: {problem}")
    raise InvalidInput(
        f"{name}: cannot tell the text encoding of the attributes (no .cpg, and neither UTF-8 nor "
        f"GB18030 fits: {'; '.join(problems)}); pass the encoding (--encoding)"
    )


def _require_decodes(layout: DbfLayout, codec: str, name: str) -> None:
    problem = layout.problem(codec)
    if problem is not None:
        raise InvalidInput(
            f"{name}: the attributes do not decode as {codec} ({problem}); check --encoding"
        )


@dataclass(frozen=True)
class DbfLayout:
    """The parts of a dBASE header needed to find every text value without a driver."""

    path: Path
    n_records: int
    header_len: int
    record_len: int
    names: tuple[bytes, ...]
    text_fields: tuple[tuple[bytes, int, int], ...]  # (raw name, offset in record, width)

    @classmethod
    def read(cls, path: Path | None) -> DbfLayout:
        if path is None:
            raise InvalidInput("shapefile without its .dbf file")
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 32:
                raise InvalidInput(f"{path.name} is truncated (no dBASE header)")
            n, header_len, record_len = struct.unpack("<IHH", head[4:12])
            descriptors = f.read(max(header_len - 32, 0))
        names, text, offset = [], [], 1  # byte 0 of each record is the deletion flag
        for start in range(0, len(descriptors) - 31, 32):
            desc = descriptors[start : start + 32]
            if desc[0] == 0x0D:
                break
            raw_name, kind, width = desc[:11].split(b"\0")[0], chr(desc[11]), desc[16]
            names.append(raw_name)
            if kind == "C":
                text.append((raw_name, offset, width))
            offset += width
        return cls(path, n, header_len, record_len, tuple(names), tuple(text))

    def problem(self, codec: str) -> str | None:
        """Why the field names or text values do not decode strictly with ``codec`` (None: they do)."""
        for raw in self.names:
            try:
                _decode_name(raw, codec)
            except UnicodeDecodeError:
                return f"field name {raw!r}"
        for raw_name, width, records, column in self._text_columns():
            try:
                column.decode(codec)
            except UnicodeDecodeError as exc:
                record = int(records[exc.start // width]) + 1
                return f"record {record}, field {raw_name.decode(codec, errors='replace')!r}"
        return None

    def _text_columns(self) -> Iterator[tuple[bytes, int, np.ndarray, bytes]]:
        """Each text field's values, chunk by chunk, as one byte string (deleted records left out).

        Yields (raw name, width, the 0-based record numbers in the chunk, the bytes).
        """
        if not self.text_fields or self.record_len == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(self.header_len)
            for first in range(0, self.n_records, _CHUNK_RECORDS):
                count = min(_CHUNK_RECORDS, self.n_records - first)
                raw = f.read(count * self.record_len)
                if len(raw) < self.record_len:
                    return  # the header promised more records than the file holds
                usable = len(raw) // self.record_len * self.record_len
                rows = np.frombuffer(raw[:usable], dtype=np.uint8).reshape(-1, self.record_len)
                live = np.flatnonzero(rows[:, 0] != 0x2A)
                for raw_name, offset, width in self.text_fields:
                    column = np.ascontiguousarray(rows[live, offset : offset + width]).tobytes()
                    yield raw_name, width, first + live, column


def _decode_name(raw: bytes, codec: str) -> str:
    """Field names are 10 bytes at most; writers cut long names mid-character, so forgive a cut tail."""
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        cut = exc.end == len(raw) and exc.reason in _CUT_REASONS
        if not cut:
            raise
        return raw[: exc.start].decode(codec)


def _with_whole_names(shp: Path, codec: str, stack: ExitStack, notes: _Notes) -> Path:
    """A copy of the shapefile whose DBF field names no longer end in half a UTF-8 character.

    GDAL and others cut names to the DBF's 10 bytes, so 网格编码 (12 bytes) becomes 网格编 plus one
    stray byte, which no reader can decode. Only the header of a copy is patched; the original stays.
    """
    layout = DbfLayout.read(_sidecar(shp, ".dbf"))
    fixes = {i: _decode_name(raw, codec).encode(codec) for i, raw in enumerate(layout.names)}
    fixes = {i: fixed for i, fixed in fixes.items() if fixed != layout.names[i]}
    if not fixes:
        return shp
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="onemap-dbf-")))
    for part in shp.parent.glob(glob_escape(shp.stem) + ".*"):
        if part.suffix.lower() != ".dbf":
            _link_or_copy(part, folder / part.name)
    copy = folder / f"{shp.stem}.dbf"
    shutil.copyfile(layout.path, copy)
    with open(copy, "r+b") as f:
        for i, fixed in fixes.items():
            f.seek(32 + 32 * i)
            f.write(fixed.ljust(11, b"\0"))
            notes.add(
                f"{shp.name}: field name {layout.names[i]!r} was cut mid-character; read as {fixed.decode(codec)!r}"
            )
    return folder / shp.name


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, target)


def _other_encoding(driver: str, explicit: str | None, notes: _Notes) -> str | None:
    """GeoPackage and GeoJSON are UTF-8 by their specifications; only GeoJSON lets a reader override."""
    if explicit and driver == "GPKG":
        notes.add("GeoPackage text is always UTF-8; the encoding given was ignored")
        return None
    if explicit:
        codec = _python_codec(explicit)
        if codec is None:
            raise InvalidInput(f"unknown encoding {explicit!r}: try UTF-8, GBK or GB18030")
        return codec
    return None


# ---------------------------------------------------------------------------------- driver errors


def _pick_layer(path: Path, layer: str | None, driver: str) -> str | None:
    with _driver_errors(path, driver):
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    if not names:
        raise InvalidInput(f"{path.name} holds no layers")
    if layer is None:
        if len(names) > 1:
            raise InvalidInput(
                f"{path.name} holds several layers: {', '.join(names)}; choose one with layer (--layer)"
            )
        return names[0] if driver == "GPKG" else None
    if layer not in names:
        raise InvalidInput(f"{path.name} has no layer {layer!r}; it holds: {', '.join(names)}")
    return layer if driver == "GPKG" else None


@contextmanager
def _driver_errors(path: Path, driver: str) -> Iterator[None]:
    """Turn GDAL/pyogrio failures into one readable InvalidInput naming the file."""
    try:
        yield
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        if driver == "GeoJSON":
            problem = json_problem(path)
            if problem is not None:
                raise InvalidInput(f"{path.name} is {problem}") from exc
        raise InvalidInput(f"cannot read {path.name}: {_first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"cannot read {path.name}: text is not valid {exc.encoding} ({exc.reason}); pass --encoding"
        ) from exc
    except (
        pyogrio.errors.FieldError,
        pyogrio.errors.GeometryError,
        pyogrio.errors.FeatureError,
    ) as exc:
        raise InvalidInput(f"cannot read {path.name}, it is corrupt: {_first_line(exc)}") from exc
    except (RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"cannot read {path.name}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def json_problem(path: Path) -> str | None:
    """Where a would-be GeoJSON file stops being JSON (None when it parses, or is not GeoJSON-shaped)."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except UnicodeDecodeError:
        return "not valid JSON: the text is not UTF-8"
    if not isinstance(data, dict) or "type" not in data:
        return 'valid JSON but not GeoJSON (no "type": "FeatureCollection" object)'
    return None


# ---------------------------------------------------------------------------------------------- CRS


def resolve_crs(
    file_crs: str | None, given: str | None, name: str, notes: _Notes | None = None
) -> str | CRS:
    """The CRS to read coordinates in: the file's, or ``given``; refusing none and conflicts.

    Returns "EPSG:n", "gcj02"/"bd09", or a pyproj CRS when the file's CRS has no EPSG equivalent.
    """
    notes = notes or _Notes()
    if given is None:
        if not file_crs:
            raise InvalidInput(
                f"{name} has no coordinate reference system (no .prj): pass it (--crs), "
                "e.g. EPSG:4528 for CGCS2000 Gauss-Krüger zone 40, EPSG:4326, gcj02 or bd09"
            )
        return _file_crs(file_crs, name)
    wanted = normalize_crs(given)
    if not file_crs:
        return wanted
    found = _file_crs(file_crs, name)
    if wanted in SPECIAL and _is_lonlat(found):
        notes.add(
            f"{name}: the file says {_crs_label(found)}; its lon/lat are read as {wanted} as asked"
        )
        return wanted
    if wanted not in SPECIAL and _equivalent(found, wanted):
        return wanted
    raise InvalidInput(
        f"{name}: ambiguous CRS, the file says {_crs_label(found)} but {given!r} was given; "
        "remove the .prj or drop --crs"
    )


def _file_crs(text: str, name: str) -> str | CRS:
    try:
        parsed = CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidInput(
            f"{name}: its .prj cannot be understood ({_first_line(exc)}); pass --crs"
        ) from exc
    code = parsed.to_epsg(min_confidence=70)
    return f"EPSG:{code}" if code else parsed


def _as_crs(value: str | CRS) -> CRS:
    return value if isinstance(value, CRS) else CRS.from_user_input(value)


def _is_lonlat(value: str | CRS) -> bool:
    if isinstance(value, str) and value in LONLAT_SAME:
        return True
    return _as_crs(value).is_geographic


def _equivalent(a: str | CRS, b: str | CRS) -> bool:
    if isinstance(a, str) and isinstance(b, str) and (a == b or {a, b} <= LONLAT_SAME):
        return True
    return _as_crs(a).equals(_as_crs(b), ignore_axis_order=True)


def _is_metric(value: str | CRS) -> bool:
    """A projected CRS in metres (Gauss-Krüger and the like): areas can be measured in it directly."""
    if isinstance(value, str) and (value in SPECIAL or value in LONLAT_SAME):
        return False
    crs = _as_crs(value)
    return crs.is_projected and all(
        (axis.unit_name or "").lower() in ("metre", "meter") for axis in crs.axis_info
    )


def _crs_label(value: str | CRS) -> str:
    return value if isinstance(value, str) else value.to_wkt()


def reproject(geoms: np.ndarray, source: str | CRS) -> np.ndarray:
    """All vertices to WGS84 lon/lat in one vectorised pass (GCJ-02/BD-09 through gis.coords)."""
    if isinstance(source, str) and source in LONLAT_SAME:
        return geoms
    if isinstance(source, CRS):
        transformer = Transformer.from_crs(source, WGS84, always_xy=True)

        def convert(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    else:

        def convert(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], source))

    return shapely.transform(geoms, convert)


# ----------------------------------------------------------------------------------------- geometry


def check_geometries(geoms: np.ndarray, name: str) -> None:
    """Refuse null/empty geometries (with row numbers) and anything that is not a polygon."""
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if missing.size:
        raise InvalidGeometry(f"{name}: features without geometry at rows {_rows(missing)}")
    ids = shapely.get_type_id(geoms)
    wrong = np.flatnonzero((ids != _POLYGON) & (ids != _MULTIPOLYGON))
    if wrong.size == 0:
        return
    kinds = sorted({_KIND.get(int(i), "non-polygon") for i in ids[wrong]})
    counts = Counter(g.geom_type for g in geoms[wrong])
    types = ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items()))
    if wrong.size == len(geoms):
        raise InvalidGeometry(
            f"{name}: {'/'.join(kinds)} layer given as grids: expected polygons (found {types})"
        )
    raise InvalidGeometry(f"{name}: expected polygons, but rows {_rows(wrong)} are {types}")


def check_in_china(geoms: np.ndarray, name: str, source: str | CRS) -> None:
    """After reprojection every vertex must be in China; if not, the CRS was almost surely wrong."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    lon, lat = coords[:, 0], coords[:, 1]
    inside = (
        (lon >= CHINA_LON[0])
        & (lon <= CHINA_LON[1])
        & (lat >= CHINA_LAT[0])
        & (lat <= CHINA_LAT[1])
    )
    if inside.all():
        return
    rows = np.unique(index[~inside])
    with np.errstate(invalid="ignore"):
        extent = f"lon {np.nanmin(lon):.4f}…{np.nanmax(lon):.4f}, lat {np.nanmin(lat):.4f}…{np.nanmax(lat):.4f}"
    raise InvalidGeometry(
        f"{name}: read as {_crs_label(source)}, rows {_rows(rows)} fall outside China ({extent}); "
        "the CRS is probably wrong: a Gauss-Krüger file without its .prj, or a wrong EPSG code, looks like this"
    )


def to_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Storage holds MultiPolygons only: wrap each Polygon as a one-part MultiPolygon."""
    out = np.array(geoms, dtype=object)
    polygons = shapely.get_type_id(out) == _POLYGON
    if polygons.any():
        out[polygons] = shapely.multipolygons(out[polygons][:, np.newaxis])
    return out


def _rows(index: np.ndarray, limit: int = 10) -> str:
    """1-based row numbers, the way a person counts features in a desktop GIS table."""
    shown = ", ".join(str(int(i) + 1) for i in index[:limit])
    return shown + (f" … and {len(index) - limit} more" if len(index) > limit else "")


# --------------------------------------------------------------------------------------- attributes


def apply_fields(
    frame: pd.DataFrame, fields: dict[str, str] | None, name: str, notes: _Notes
) -> pd.DataFrame:
    """Rename source columns to target names (target → source), targets first; refuse missing ones."""
    if not fields:
        return frame
    available = [str(c) for c in frame.columns]
    sources = {target: _find_column(available, source, notes) for target, source in fields.items()}
    missing = [fields[t] for t, s in sources.items() if s is None]
    if missing:
        raise InvalidInput(
            f"{name}: column(s) {', '.join(map(repr, missing))} not found; available: {', '.join(available) or '(none)'}"
        )
    used = set(sources.values())
    clashes = [c for c in available if c in sources and c not in used]
    for column in clashes:
        notes.add(
            f"{name}: column {column!r} dropped, its name is taken by the mapped field {sources[column]!r}"
        )
    rest = [c for c in available if c not in used and c not in clashes and c not in sources]
    out = pd.DataFrame(
        {target: frame[source] for target, source in sources.items()}, index=frame.index
    )
    return pd.concat([out, frame[rest]], axis=1)


def _find_column(available: list[str], wanted: str, notes: _Notes) -> str | None:
    """Exact name, else a unique case-insensitive match (some tools upper-case DBF field names)."""
    if wanted in available:
        return wanted
    folded = [c for c in available if c.casefold() == wanted.casefold()]
    if len(folded) == 1:
        notes.add(f"column {wanted!r} matched {folded[0]!r} ignoring case")
        return folded[0]
    return None


def codes_as_text(frame: pd.DataFrame, notes: _Notes) -> pd.DataFrame:
    """Code columns ("code", "*_code") as stripped strings; numbers are kept as the text of the number.

    Leading zeros lost when a tool stored codes as numbers cannot be recovered: the code validation
    that follows rejects such codes rather than this reader guessing a padding.
    """
    out = frame.copy()
    for column in [c for c in out.columns if str(c) == "code" or str(c).endswith("_code")]:
        values = out[column]
        if any(not isinstance(v, str) for v in values if not _is_null(v)):
            notes.add(
                f"column {column!r} holds numbers; converted to text, but leading zeros lost in the file "
                "cannot be recovered (store codes as text)"
            )
        out[column] = pd.Series([_code_text(v) for v in values], index=out.index, dtype=object)
    return out


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _code_text(value: Any) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value).strip()
    return text or None
