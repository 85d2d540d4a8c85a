"""The catalog of exportable layers (可导出图层): one name → one function that selects its features.

Exports, the OGC API and the map report all read layers through here, so the area and time filters
mean the same thing everywhere. A layer is a :class:`Layer` whose ``fetch`` has the signature
``fetch(session, *, area=None, start=None, end=None) -> GeoDataFrame | Iterator[GeoDataFrame]``
(EPSG:4326; an iterator of chunks for big layers, so a year of tickets never sits in memory). It may
also accept ``bbox=`` (WGS84 minx, miny, maxx, maxy), ``limit=`` and ``offset=`` to push those into
SQL; when it does not, :func:`select` applies them afterwards.

How a layer registers itself: the registry layers and tickets are defined below; any other layer
package adds ``layers/<package>/exports.py`` that calls :func:`register` at import, and names the
module in ``PROVIDERS``. The catalog imports providers on first use.

Filter meanings: ``area`` is a 12-digit district, town/street or village/community code that must
exist (else NotFound → 404). ``start``/``end`` is a half-open interval [start, end); naive times are
Asia/Shanghai. Layers with a time column (tickets: ``created_at``) keep rows inside it; registry
layers (grids, areas) are drawn as they stood at ``end`` (now when absent), since grids are versioned.
Personal data (reporters' names and phones) is never in an export.

Scope: :func:`select_chunks` is THE place where the caller's :class:`Scope` narrows a layer (exports,
OGC items and the report all pass through it). A fetch that accepts ``scope=`` filters in SQL (tickets,
sensors); any other layer's chunks are masked with ``scope.mask`` over the layer's code columns
(``Layer.scope_columns`` renames them, e.g. the divisions' ``code`` is matched by prefix). A city-wide
scope (or none: the CLI, run by an operator) changes nothing.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from gis import codes as C
from gis import registry
from gis.errors import InvalidInput, NotFound
from gis.export_source import Source, iter_chunks
from gis.settings import CITY_TZ
from layers.accounts.scope import Scope

CHUNK_ROWS = 10_000
PROVIDERS = ["layers.workers.exports", "layers.vision.exports"]
BBox = tuple[float, float, float, float]
Fetch = Callable[..., gpd.GeoDataFrame | Iterator[gpd.GeoDataFrame]]


@dataclass(frozen=True)
class Layer:
    """One exportable layer: how to select it and how to label it for people."""

    name: str  # URL and file name: ascii, e.g. "grids"
    title: str  # Chinese name: GeoPackage layer name with names=zh, report legend
    fetch: Fetch
    geometry_type: str = "MultiPolygon"
    key: str = "code"  # identifies a feature (OGC feature id, error messages)
    labels: Mapping[str, str] = field(default_factory=dict)  # column → Chinese field name
    temporal: str | None = None  # the column start/end filter on (None: a registry layer)
    description: str = ""
    scope_columns: Mapping[str, str] = field(default_factory=dict)  # scope column → frame column


_LAYERS: dict[str, Layer] = {}
_discovered = False


def register(layer: Layer) -> Layer:
    """Add (or replace) a layer; providers call this when imported."""
    _LAYERS[layer.name] = layer
    return layer


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in PROVIDERS:
        importlib.import_module(module)


def layers() -> dict[str, Layer]:
    _discover()
    return dict(_LAYERS)


def get(name: str) -> Layer:
    """The layer called ``name``; an unknown name is NotFound listing the known ones."""
    known = layers()
    if name not in known:
        raise NotFound(f"unknown layer {name!r}; known layers: {', '.join(sorted(known))}")
    return known[name]


# ------------------------------------------------------------------------------ filters


def check_area(session: Session, area: str | None) -> str | None:
    """A malformed code is a CodeError (400); a well-formed one nobody registered is NotFound (404)."""
    if area is None or area == "":
        return None
    area = area.strip()
    C.validate_area_code(area, C.level_of(area))
    found = registry.load_areas(session, codes=[area])
    if found.empty:
        raise NotFound(f"no area with code {area} is registered (district, town/street or village/community)")
    return area


def local(moment: datetime | None) -> datetime | None:
    """Naive times are Asia/Shanghai wall-clock times, as analysts type them."""
    if moment is None:
        return None
    return moment.replace(tzinfo=CITY_TZ) if moment.tzinfo is None else moment


def check_range(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start, end = local(start), local(end)
    if start is not None and end is not None and start >= end:
        raise InvalidInput(f"the time range is reversed or empty: from {start.isoformat()} "
                           f"is not before to {end.isoformat()}")
    return start, end


def check_bbox(bbox: BBox | None) -> BBox | None:
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise InvalidInput("bbox needs four numbers: minx,miny,maxx,maxy")
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    if minx > maxx or miny > maxy:
        raise InvalidInput(f"bbox {bbox} has min greater than max")
    return minx, miny, maxx, maxy


# ------------------------------------------------------------------------------- select


def _accepts(fetch: Fetch, name: str) -> bool:
    return name in inspect.signature(fetch).parameters


def select_chunks(session: Session, name: str, *, area: str | None = None,
                  start: datetime | None = None, end: datetime | None = None,
                  bbox: BBox | None = None, limit: int | None = None,
                  offset: int = 0, scope: Scope | None = None) -> Iterator[gpd.GeoDataFrame]:
    """The layer's features, filtered and validated the same way for every caller, as chunks —
    only those ``scope`` sees (see the module's docstring)."""
    layer = get(name)
    area = check_area(session, area)
    start, end = check_range(start, end)
    bbox = check_bbox(bbox)
    options: dict[str, Any] = {"area": area, "start": start, "end": end}
    scoped = scope is not None and not scope.city_wide
    in_sql = scoped and _accepts(layer.fetch, "scope")
    if in_sql:
        options["scope"] = scope
    pushed = {k: v for k, v in (("bbox", bbox), ("limit", limit), ("offset", offset))
              if _accepts(layer.fetch, k) and (in_sql or not scoped or k == "bbox")}
    result = layer.fetch(session, **options, **pushed)
    chunks = iter_chunks(result)
    if scope is not None and scoped and not in_sql:
        mask = scope.mask
        chunks = (c[mask(c, **layer.scope_columns)] for c in chunks)
    if bbox is not None and "bbox" not in pushed:
        chunks = (_in_bbox(c, bbox) for c in chunks)
    if "limit" not in pushed and (limit is not None or offset):  # after masking, so pages stay full
        chunks = _paged(chunks, offset, limit)
    return chunks


def select(session: Session, name: str, **filters: Any) -> gpd.GeoDataFrame:
    """The whole selection as one frame (for small layers, the report and the OGC pages)."""
    frames = list(select_chunks(session, name, **filters))
    frames = [f for f in frames if len(f)] or frames[:1]
    if not frames:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry=frames[0].geometry.name, crs=4326)


def _in_bbox(frame: gpd.GeoDataFrame, bbox: BBox) -> gpd.GeoDataFrame:
    box = shapely.box(*bbox)
    return frame[shapely.intersects(frame.geometry.values, box)]


def _paged(chunks: Iterator[gpd.GeoDataFrame], offset: int, limit: int | None) -> Iterator[gpd.GeoDataFrame]:
    skip, left = offset, limit
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        part = chunk.iloc[skip:] if left is None else chunk.iloc[skip: skip + left]
        skip = 0
        yield part
        if left is not None:
            left -= len(part)
            if left <= 0:
                return


def export_sources(session: Session, names: list[str], *, area: str | None = None,
                   start: datetime | None = None, end: datetime | None = None,
                   zh: bool = False, scope: Scope | None = None) -> list[Source]:
    """gis.export Sources for the named layers (validated now, fetched lazily while writing).

    With ``zh`` the columns and layer names are the Chinese labels (GeoPackage and Excel users);
    the files then still carry the English names' meaning in fields.csv.
    """
    if not names:
        raise InvalidInput(f"no layer named; known layers: {', '.join(sorted(layers()))}")
    found = [get(n) for n in names]
    area = check_area(session, area)
    start, end = check_range(start, end)
    out = []
    for layer in found:
        chunks = _lazy(session, layer.name, area, start, end, scope)
        source = Source(layer.name, chunks, labels=dict(layer.labels), key=layer.key,
                        geometry_type=layer.geometry_type)
        out.append(_in_chinese(source, layer) if zh else source)
    return out


def _lazy(session: Session, name: str, area, start, end, scope=None) -> Iterator[gpd.GeoDataFrame]:
    yield from select_chunks(session, name, area=area, start=start, end=end, scope=scope)


def _in_chinese(source: Source, layer: Layer) -> Source:
    labels = dict(layer.labels)

    def renamed() -> Iterator[gpd.GeoDataFrame]:
        for chunk in iter_chunks(source.chunks):
            yield chunk.rename(columns=labels)
    return replace(source, name=layer.title, chunks=renamed(), key=labels.get(layer.key, layer.key),
                   labels={v: k for k, v in labels.items()})


# ------------------------------------------------------------------------- registry layers

GRID_LABELS = {"code": "网格编码", "name": "网格名称", "kind": "网格类型", "village_code": "村社区编码",
               "village_name": "村社区名称", "town_code": "镇街道编码", "town_name": "镇街道名称",
               "district_code": "区县编码", "households": "户数", "population": "人口",
               "valid_from": "生效时间"}
AREA_LABELS = {"code": "区划代码", "name": "名称", "level": "层级", "kind": "类型",
               "parent_code": "上级代码", "valid_from": "生效时间"}
_AREA_FILTER = {C.Level.DISTRICT: "district", C.Level.TOWN: "town", C.Level.VILLAGE: "village"}


AREA_SCOPE = {"grid_code": "code"}  # a division is seen by the areas it lies in: its code's prefix


def fetch_grids(session: Session, *, area: str | None = None, start: datetime | None = None,
                end: datetime | None = None) -> gpd.GeoDataFrame:
    """Grids (网格) with their village and town names, as they stood at ``end`` (or now)."""
    filters = {_AREA_FILTER[C.level_of(area)]: area} if area else {}
    frame = registry.load_grids(session, as_of=end, **filters)
    names = registry.area_names(session)
    frame["village_name"] = frame["village_code"].map(names)
    frame["town_name"] = frame["town_code"].map(names)
    frame["households"] = frame["households"].astype("Int64")
    frame["population"] = frame["population"].astype("Int64")
    return frame[[*GRID_LABELS, "geometry"]]


def _fetch_areas(level: str | None) -> Fetch:
    def fetch(session: Session, *, area: str | None = None, start: datetime | None = None,
              end: datetime | None = None) -> gpd.GeoDataFrame:
        frame = registry.load_areas(session, level=level, as_of=end)
        if area:
            prefix = {C.Level.DISTRICT: 6, C.Level.TOWN: 9, C.Level.VILLAGE: 12}[C.level_of(area)]
            frame = frame[frame["code"].str[:prefix] == area[:prefix]]
        return frame[[*AREA_LABELS, "geometry"]].reset_index(drop=True)
    return fetch


register(Layer("grids", "网格", fetch_grids, labels=GRID_LABELS,
               description="Grids (网格) with their 15-digit codes, villages/communities and towns."))
register(Layer("areas", "行政区划", _fetch_areas(None), labels=AREA_LABELS, scope_columns=AREA_SCOPE,
               description="District, towns/streets and villages/communities (12-digit codes)."))
register(Layer("towns", "镇街道", _fetch_areas("town"), labels=AREA_LABELS, scope_columns=AREA_SCOPE,
               description="Towns and streets (镇/街道)."))
register(Layer("villages", "村社区", _fetch_areas("village"), labels=AREA_LABELS, scope_columns=AREA_SCOPE,
               description="Villages and communities (村/社区)."))


# ---------------------------------------------------------------------------------- tickets

TICKET_LABELS = {"id": "工单编号", "channel": "来源渠道", "category": "事件小类", "category_name": "事件名称",
                 "severity": "紧急程度", "state": "状态", "card": "督办", "description": "事件描述",
                 "address": "地址", "grid_code": "网格编码", "village_code": "村社区编码",
                 "town_code": "镇街道编码", "district_code": "区县编码", "department": "责任部门",
                 "match": "定位方式", "created_at": "受理时间", "complete_due": "办结时限",
                 "closed_at": "办结时间"}


def _ticket_model():
    try:
        from layers.incidents.models import Ticket
    except ImportError:  # the tickets layer is not installed
        return None
    return Ticket


def _category_names() -> dict[str, str]:
    try:
        from layers.incidents.categories import load_categories
        return {code: c.name for code, c in load_categories().items()}
    except (ImportError, OSError, ValueError):
        return {}


def fetch_tickets(session: Session, *, area: str | None = None, start: datetime | None = None,
                  end: datetime | None = None, bbox: BBox | None = None, limit: int | None = None,
                  offset: int = 0, scope: Scope | None = None) -> Iterator[gpd.GeoDataFrame]:
    """Tickets (事件工单) received in [start, end), streamed from a server-side cursor in chunks."""
    Ticket = _ticket_model()
    columns = [c for c in TICKET_LABELS if c != "category_name"]
    stmt = sql_select(*[getattr(Ticket, c) for c in columns], func.ST_AsBinary(Ticket.geom))
    stmt = stmt.where(Ticket.duplicate_of.is_(None))
    if scope is not None:
        stmt = scope.filter(stmt, Ticket)
    if area:
        column = {C.Level.DISTRICT: Ticket.district_code, C.Level.TOWN: Ticket.town_code,
                  C.Level.VILLAGE: Ticket.village_code}[C.level_of(area)]
        stmt = stmt.where(column == area)
    if start is not None:
        stmt = stmt.where(Ticket.created_at >= start)
    if end is not None:
        stmt = stmt.where(Ticket.created_at < end)
    if bbox is not None:
        stmt = stmt.where(func.ST_Intersects(Ticket.geom, func.ST_MakeEnvelope(*bbox, 4326)))
    stmt = stmt.order_by(Ticket.id).offset(offset or None).limit(limit)
    result = session.execute(stmt.execution_options(yield_per=CHUNK_ROWS))
    names = _category_names()
    empty = True
    for rows in result.partitions():
        empty = False
        yield _ticket_frame(rows, columns, names)
    if empty:
        yield _ticket_frame([], columns, names)


def _ticket_frame(rows, columns: list[str], names: dict[str, str]) -> gpd.GeoDataFrame:
    data = pd.DataFrame([tuple(r[:-1]) for r in rows], columns=columns)
    data.insert(3, "category_name", data["category"].map(names))
    for col in ("created_at", "complete_due", "closed_at"):
        data[col] = pd.to_datetime(data[col], utc=True)
    wkb = [None if r[-1] is None else bytes(r[-1]) for r in rows]
    geoms = shapely.from_wkb(wkb) if wkb else []
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=4326))


if _ticket_model() is not None:
    register(Layer("tickets", "事件工单", fetch_tickets, geometry_type="Point", key="id",
                   labels=TICKET_LABELS, temporal="created_at",
                   description="Event tickets (事件工单) by time received; reporters' names and phones "
                               "are left out."))



# ---------------------------------------------------------------------------------- sensors

SENSOR_LABELS = {"id": "监测点编号", "name": "名称", "kind": "类型", "owner": "所属企业", "status": "状态",
                 "grid_code": "网格编码", "village_code": "村社区编码", "town_code": "镇街道编码",
                 "district_code": "区县编码", "created_at": "登记时间"}


def _sensor_model():
    try:
        from layers.sensors.models import Sensor
    except ImportError:
        return None
    return Sensor


def fetch_sensors(session: Session, *, area: str | None = None, start: datetime | None = None,
                  end: datetime | None = None, scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Monitoring points (监测点) registered before ``end``; a stand-in until layers/sensors registers its own."""
    Sensor = _sensor_model()
    stmt = sql_select(*[getattr(Sensor, c) for c in SENSOR_LABELS], func.ST_AsBinary(Sensor.geom))
    if scope is not None:
        stmt = scope.filter(stmt, Sensor)
    if area:
        column = {C.Level.DISTRICT: Sensor.district_code, C.Level.TOWN: Sensor.town_code,
                  C.Level.VILLAGE: Sensor.village_code}[C.level_of(area)]
        stmt = stmt.where(column == area)
    if end is not None:
        stmt = stmt.where(Sensor.created_at < end)
    rows = session.execute(stmt.order_by(Sensor.id)).all()
    data = pd.DataFrame([tuple(r[:-1]) for r in rows], columns=list(SENSOR_LABELS))
    data["created_at"] = pd.to_datetime(data["created_at"], utc=True)
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=4326))


if _sensor_model() is not None:
    register(Layer("sensors", "监测点", fetch_sensors, geometry_type="Point", key="id",
                   labels=SENSOR_LABELS, description="Environmental and IoT monitoring points (监测点)."))
