"""Monthly map reports (月度地图报告): one self-contained folium HTML page for an area and a period.

The page shows the area's grids coloured by the tickets received in the period, the tickets and the
monitoring points (when those layers exist), a legend and a KPI table. It is attached to monthly
reports and opened on office machines without internet, so nothing is fetched at view time: folium's
CDN links (Leaflet, jQuery, Bootstrap, Font Awesome) are dropped and Leaflet's own JS and CSS, installed
from npm at set-up into web/node_modules, are inlined; there is no base map (boundaries carry the page).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import branca
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gis import registry
from gis.errors import InvalidInput
from gis.export_geojson import features_json
from gis.metric import area_m2
from layers import catalog
from layers.incidents.workflow import TERMINAL

LEAFLET = Path(__file__).resolve().parent.parent / "web" / "node_modules" / "leaflet" / "dist"
BINS = [(0, 0, "#f7f7f7"), (1, 2, "#fde0c5"), (3, 5, "#facba6"), (6, 10, "#f59e72"),
        (11, 20, "#e8603c"), (21, None, "#b30000")]  # tickets received per grid
TICKET_COLOUR, SENSOR_COLOUR, BOUNDARY_COLOUR = "#d7301f", "#2b8cbe", "#333333"
CLOSED = [s.value for s in TERMINAL]


@dataclass
class Report:
    """The rendered page and the figures in its KPI table."""

    html: str
    kpis: dict[str, object] = field(default_factory=dict)


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and CSS from the npm install (never a CDN)."""
    js, css = LEAFLET / "leaflet.js", LEAFLET / "leaflet.css"
    if not js.exists() or not css.exists():
        raise InvalidInput(f"Leaflet is not installed in {LEAFLET}: run scripts/setup.sh (npm install) first")
    return js.read_text(encoding="utf-8"), css.read_text(encoding="utf-8")


def _colour(count: int) -> str:
    for low, high, colour in BINS:
        if count >= low and (high is None or count <= high):
            return colour
    return BINS[-1][2]


def _layer_frame(session: Session, name: str, **filters) -> gpd.GeoDataFrame | None:
    """A catalog layer, or None when that layer is not installed."""
    if name not in catalog.layers():
        return None
    return catalog.select(session, name, **filters)


def kpi_table(grids: gpd.GeoDataFrame, tickets: gpd.GeoDataFrame | None,
              sensors: gpd.GeoDataFrame | None) -> dict[str, object]:
    """The figures a monthly report quotes, computed from what the map shows."""
    figures: dict[str, object] = {"网格数": len(grids)}
    if len(grids):
        area = area_m2(grids.geometry.values).sum() / 1e6
        figures["面积（平方公里）"] = round(float(area), 2)
        figures["户数"] = int(pd.to_numeric(grids["households"], errors="coerce").fillna(0).sum())
        figures["人口"] = int(pd.to_numeric(grids["population"], errors="coerce").fillna(0).sum())
    if tickets is not None:
        closed = int(tickets["state"].isin(CLOSED).sum()) if len(tickets) else 0
        figures["受理工单"] = len(tickets)
        figures["已办结"] = closed
        figures["办结率"] = f"{closed / len(tickets):.1%}" if len(tickets) else "—"
        figures["黄牌/红牌"] = (f"{int((tickets['card'] == 'yellow').sum())}/{int((tickets['card'] == 'red').sum())}"
                            if len(tickets) else "0/0")
    if sensors is not None:
        figures["监测点"] = len(sensors)
    return figures


def _town_rates(session: Session, area: str, start: datetime | None, end: datetime | None) -> dict[str, str]:
    """The five assessment rates from layers.incidents.kpis, when the area is a town and it exists."""
    try:
        from layers.incidents import kpis
    except ImportError:
        return {}
    if not area.endswith("000") or area.endswith("000000") or start is None or end is None:
        return {}
    frame = kpis.kpis(session, "town", start=start, end=end, code=area)
    if frame.empty:
        return {}
    row = frame.iloc[0]
    labels = {"timely_sign_rate": "及时签收率", "on_time_completion_rate": "按期办结率",
              "first_time_fix_rate": "一次性完工率", "satisfaction_rate": "群众满意率"}
    return {zh: ("—" if pd.isna(row[k]) else f"{float(row[k]):.1%}") for k, zh in labels.items()}


def _geojson(frame: gpd.GeoDataFrame, columns: list[str]) -> dict:
    data = features_json(frame[[*columns, frame.geometry.name]], None, 6)
    return json.loads(b'{"type":"FeatureCollection","features":[' + data + b"]}")


def _grids_layer(grids: gpd.GeoDataFrame, counts: pd.Series) -> folium.GeoJson:
    frame = grids.copy()
    frame["tickets"] = frame["code"].map(counts).fillna(0).astype(int)
    frame["fill"] = frame["tickets"].map(_colour)
    return folium.GeoJson(
        _geojson(frame, ["code", "name", "village_name", "tickets", "fill"]), name="网格",
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#555555",
                                  "weight": 0.6, "fillOpacity": 0.75},
        tooltip=folium.GeoJsonTooltip(["code", "name", "village_name", "tickets"],
                                      aliases=["网格编码", "网格名称", "村社区", "工单数"]))


def _points_layer(frame: gpd.GeoDataFrame, name: str, colour: str, fields: list[str],
                  aliases: list[str]) -> folium.GeoJson:
    frame = frame[~frame.geometry.isna()]
    return folium.GeoJson(
        _geojson(frame, fields), name=name,
        marker=folium.CircleMarker(radius=4, color=colour, fill=True, fill_color=colour, fill_opacity=0.9,
                                   weight=1),
        tooltip=folium.GeoJsonTooltip(fields, aliases=aliases))


def _legend(has_tickets: bool, has_sensors: bool) -> str:
    rows = []
    for low, high, colour in BINS:
        label = f"{low}" if low == high else (f"{low}+" if high is None else f"{low}–{high}")
        rows.append(f'<div><i style="background:{colour}"></i>{label} 件</div>')
    if has_tickets:
        rows.append(f'<div><i class="dot" style="background:{TICKET_COLOUR}"></i>事件工单</div>')
    if has_sensors:
        rows.append(f'<div><i class="dot" style="background:{SENSOR_COLOUR}"></i>监测点</div>')
    return ('<div class="onemap-legend"><b>网格工单数</b>' + "".join(rows) + "</div>")


def _kpi_html(figures: dict[str, object]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in figures.items())
    return f'<div class="onemap-kpis"><table>{cells}</table></div>'


STYLE = """
.onemap-title{position:absolute;top:10px;left:60px;z-index:1000;background:#fff;padding:6px 12px;
  font:16px/1.4 sans-serif;border:1px solid #999;border-radius:4px}
.onemap-legend,.onemap-kpis{position:absolute;z-index:1000;background:#fff;padding:8px 10px;
  font:13px/1.5 sans-serif;border:1px solid #999;border-radius:4px}
.onemap-legend{bottom:20px;left:10px}.onemap-kpis{top:10px;right:10px}
.onemap-legend i{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;
  border:1px solid #777}.onemap-legend i.dot{border-radius:7px}
.onemap-kpis th{text-align:left;padding-right:12px;font-weight:normal;color:#444}
.onemap-kpis td{text-align:right;font-weight:bold}
"""


def _offline_map(bounds: list[float]) -> folium.Map:
    """A folium map with no tiles and no CDN links; Leaflet inlined in the page head."""
    fmap = folium.Map(tiles=None, control_scale=True, zoom_control=True, prefer_canvas=False)
    fmap.default_js, fmap.default_css = [], []
    js, css = leaflet_assets()
    root: branca.element.Figure = fmap.get_root()  # type: ignore[assignment]
    head = root.header
    head.add_child(branca.element.Element(f"<style>{css}</style><style>{STYLE}</style>"), name="leaflet_css")
    head.add_child(branca.element.Element(f"<script>{js}</script>"), name="leaflet_js")
    minx, miny, maxx, maxy = bounds
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    return fmap


def build_report(session: Session, *, area: str, start: datetime | None = None,
                 end: datetime | None = None) -> Report:
    """The report page for ``area`` (a town usually) over [start, end)."""
    checked = catalog.check_area(session, area)
    if checked is None:
        raise InvalidInput("a report needs an area: a 12-digit town, village or district code")
    area = checked
    start, end = catalog.check_range(start, end)
    grids = catalog.select(session, "grids", area=area, end=end)
    if grids.empty:
        raise InvalidInput(f"area {area} has no grids to draw")
    tickets = _layer_frame(session, "tickets", area=area, start=start, end=end)
    sensors = _layer_frame(session, "sensors", area=area, end=end)
    counts = tickets["grid_code"].value_counts() if tickets is not None and len(tickets) else pd.Series(dtype=int)
    fmap = _offline_map(list(np.round(grids.total_bounds, 6)))
    _grids_layer(grids, counts).add_to(fmap)
    outline = registry.load_areas(session, codes=[area])
    folium.GeoJson(_geojson(outline, ["code", "name"]), name="边界",
                   style_function=lambda f: {"color": BOUNDARY_COLOUR, "weight": 2.5, "fill": False}).add_to(fmap)
    if tickets is not None and len(tickets):
        _points_layer(tickets, "事件工单", TICKET_COLOUR, ["id", "category_name", "state", "grid_code"],
                      ["工单", "事件", "状态", "网格"]).add_to(fmap)
    if sensors is not None and len(sensors):
        _points_layer(sensors, "监测点", SENSOR_COLOUR, ["id", "name", "status"], ["编号", "名称", "状态"]).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    figures = kpi_table(grids, tickets, sensors) | _town_rates(session, area, start, end)
    name = str(outline["name"].iloc[0])
    period = " – ".join(d.strftime("%Y-%m-%d") for d in (start, end) if d is not None) or "当前"
    title = f"{name}（{area}）网格与事件报告 · {period}"
    root: branca.element.Figure = fmap.get_root()  # type: ignore[assignment]
    root.html.add_child(branca.element.Element(f'<div class="onemap-title">{html.escape(title)}</div>'))
    root.html.add_child(branca.element.Element(_legend(tickets is not None, sensors is not None)))
    root.html.add_child(branca.element.Element(_kpi_html(figures)))
    root.title = title
    return Report(root.render(), figures)


def write_report(session: Session, out: str | Path, **options) -> Report:
    report = build_report(session, **options)
    Path(out).write_text(report.html, encoding="utf-8")
    return report
