"""What reading a boundary file hands back, and the vocabulary the reading modules share.

:data:`DRIVERS` are the formats read (by suffix), :data:`MAX_BYTES` the size limit; :class:`ReadResult`
is the answer of :func:`gis.readers.read_features`; :class:`Notes` gathers the warnings (and cleaning
fixes) made along the way, which end up in ``ReadResult.warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd

from gis.cleaning import Fix
from gis.columns import ColumnChoice

DRIVERS = {".shp": "ESRI Shapefile", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
MAX_BYTES = 512 * 1024 * 1024


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
class Notes:
    """Warnings gathered along the way, handed back in ReadResult.warnings (and what was cleaned)."""

    items: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    columns: ColumnChoice | None = None

    def add(self, text: str) -> None:
        self.items.append(text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (drivers and PROJ write several), for a message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
