"""Read grid and area boundary files (网格/区划边界) for import: Shapefile, zipped Shapefile, GeoPackage, GeoJSON.

Planners hand over whatever their desktop GIS wrote: GBK shapefiles without a .cpg, Gauss-Krüger
coordinates, GCJ-02 lon/lat labelled as WGS84, zips made on Windows. This module turns such a file into
one GeoDataFrame of MultiPolygons in EPSG:4326 with the caller's column names, or refuses it with a
message a person can act on (a gis.errors exception, never a driver traceback). It does not fix
geometries: invalid polygons are topology validation's business, so they pass through untouched.

Here the entry (:func:`read_features`): pick the format, unzip (:mod:`gis.read_zip`), choose the
attribute encoding (:mod:`gis.read_dbf`) and the CRS (:mod:`gis.read_crs`), read through pyogrio with
driver failures turned into messages, then :func:`gis.read_conform.conform`. The result type and the
formats read are in :mod:`gis.read_result`.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio

from gis.errors import InvalidInput
from gis.read_conform import conform
from gis.read_crs import crs_label, resolve_crs
from gis.read_dbf import (
    check_shapefile,
    check_size,
    python_codec,
    shapefile_encoding,
    with_whole_names,
)
from gis.read_result import DRIVERS, MAX_BYTES, Notes, ReadResult, first_line
from gis.read_zip import extract_zip, pick_member

ARCHIVES = {".zip"}


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
        chosen, inner_layer = pick_member(members, Path(tmp), layer, archive.name)
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
    notes = Notes()
    driver = DRIVERS[path.suffix.lower()]
    _check_exists(path)
    codec: str | None
    with ExitStack() as stack:
        if driver == "ESRI Shapefile":
            check_shapefile(path, max_bytes)
            codec = shapefile_encoding(path, encoding, notes)
            path = with_whole_names(path, codec, stack, notes)
        else:
            check_size(path, max_bytes)
            codec = _other_encoding(driver, encoding, notes)
        layer = _pick_layer(path, layer, driver)
        with _driver_errors(path, driver):
            info = pyogrio.read_info(path, layer=layer, encoding=codec)
        source_crs = resolve_crs(info.get("crs"), crs, path.name, notes)  # before the costly read
        with _driver_errors(path, driver):
            frame = _read_frame(path, layer, codec, notes)
    frame = conform(frame, source_crs, fields, path.name, notes, detect)
    return ReadResult(
        frame=frame,
        source_crs=crs_label(source_crs),
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
    path: Path, layer: str | None, codec: str | None, notes: Notes
) -> gpd.GeoDataFrame:
    """Read through pyogrio, turning the driver's Python warnings into notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = gpd.read_file(path, engine="pyogrio", layer=layer, encoding=codec)
    for item in caught:
        notes.add(f"{path.name}: {item.message}")
    return frame


def _other_encoding(driver: str, explicit: str | None, notes: Notes) -> str | None:
    """GeoPackage and GeoJSON are UTF-8 by their specifications; only GeoJSON lets a reader override."""
    if explicit and driver == "GPKG":
        notes.add("GeoPackage text is always UTF-8; the encoding given was ignored")
        return None
    if explicit:
        codec = python_codec(explicit)
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
        raise InvalidInput(f"cannot read {path.name}: {first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"cannot read {path.name}: text is not valid {exc.encoding} ({exc.reason}); pass --encoding"
        ) from exc
    except (
        pyogrio.errors.FieldError,
        pyogrio.errors.GeometryError,
        pyogrio.errors.FeatureError,
    ) as exc:
        raise InvalidInput(f"cannot read {path.name}, it is corrupt: {first_line(exc)}") from exc
    except (RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"cannot read {path.name}: {first_line(exc)}") from exc


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
