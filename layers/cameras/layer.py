"""What the map draws for cameras: cameras with alarm state and view wedge, detections, heat per hour.

The view wedge (视域) is built in the city's Gauss-Krüger metres, so a 60 m range is 60 m on the
ground whatever the latitude, for every camera at once (one pyproj call for all arc points).
"""

from __future__ import annotations

from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from layers.accounts.scope import Scope
from layers.cameras.models import Camera

ARC_STEPS = 12
DEFAULT_LIMIT = 1000
MAX_LIMIT = 50_000


def wedges(lon, lat, heading_deg, fov_deg, range_m) -> np.ndarray:
    """View wedges (apex at the camera, arc at ``range_m``) as lon/lat polygons, vectorised.

    Heading is a compass bearing (0 = north, clockwise); a 360° field of view gives a circle."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    n = len(lon)
    if n == 0:
        return np.array([], dtype=object)
    epsg = f"EPSG:{gauss_kruger_epsg(float(np.mean(lon)))}"
    x, y = from_wgs84(lon, lat, epsg)
    fov = np.clip(np.asarray(fov_deg, float), 1.0, 360.0)
    steps = np.linspace(-0.5, 0.5, ARC_STEPS + 1)
    bearings = np.radians(np.asarray(heading_deg, float)[:, None] + fov[:, None] * steps[None, :])
    r = np.asarray(range_m, float)[:, None]
    ax, ay = x[:, None] + r * np.sin(bearings), y[:, None] + r * np.cos(bearings)
    ring_x = np.column_stack([x, ax, x])  # apex, arc, apex
    ring_y = np.column_stack([y, ay, y])
    rlon, rlat = to_wgs84(ring_x.ravel(), ring_y.ravel(), epsg)
    coords = np.stack([rlon.reshape(n, -1), rlat.reshape(n, -1)], axis=-1)
    return shapely.polygons(coords)


_CAMERAS = """
SELECT c.id, c.name, c.source_kind, c.status, c.status_note, c.last_frame_at,
       round(extract(epoch FROM now() - c.last_frame_at)::numeric, 1)::float AS frame_age_s, c.heading_deg, c.fov_deg,
       c.range_m, c.sample_fps, c.grid_code, c.village_code, c.town_code, c.district_code, c.match,
       c.calibration IS NOT NULL AS calibrated, (c.calibration ->> 'rms_m')::float AS calibration_rms_m,
       coalesce(a.active, 0) AS active_alarms, a.latest_kind AS alarm_kind, a.latest_ticket AS alarm_ticket,
       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
FROM cameras c
LEFT JOIN LATERAL (
    SELECT count(*) AS active, (array_agg(kind ORDER BY started_at DESC))[1] AS latest_kind,
           (array_agg(ticket_id ORDER BY started_at DESC))[1] AS latest_ticket
    FROM alarms WHERE camera_id = c.id AND state = 'active') a ON true
WHERE c.geom IS NOT NULL AND (CAST(:town AS text) IS NULL OR c.town_code = :town)
  AND (CAST(:ids AS text[]) IS NULL OR c.id = ANY(CAST(:ids AS text[])))
ORDER BY c.id
"""


def scoped_ids(session: Session, scope: Scope | None) -> list[str] | None:
    """The cameras ``scope`` sees (by the camera's grid/town codes); None when it sees them all.
    Detections, heat and key frames follow their camera."""
    if scope is None or scope.city_wide:
        return None
    return list(session.scalars(scope.filter(select(Camera.id), Camera)))


def cameras_frame(session: Session, *, town: str | None = None, scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Cameras as points with status, ``last_frame_at`` and ``frame_age_s`` (seconds since the
    runner's last frame: a viewer can tell a stalled camera), alarm state (``alarm`` / ``ok``, with
    the active alarms' count, latest kind and ticket) and the view wedge as GeoJSON."""
    params = {"town": town, "ids": scoped_ids(session, scope)}
    df = pd.DataFrame(session.execute(text(_CAMERAS), params).mappings().all())
    if df.empty:
        return gpd.GeoDataFrame({"id": [], "geometry": []}, geometry="geometry", crs=4326)
    df["alarm_state"] = np.where(df["active_alarms"] > 0, "alarm", "ok")
    polys = wedges(df["lon"], df["lat"], df["heading_deg"], df["fov_deg"], df["range_m"])
    df["wedge"] = [shapely.geometry.mapping(shapely.set_precision(p, 1e-7)) for p in polys]
    geom = shapely.points(df["lon"].to_numpy(), df["lat"].to_numpy())
    return gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=geom, crs=4326)


def wedge_frame(cameras: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The wedges as their own layer (polygons), for clients that style them apart."""
    if cameras.empty:
        return gpd.GeoDataFrame({"id": [], "geometry": []}, geometry="geometry", crs=4326)
    polys = [shapely.geometry.shape(w) for w in cameras["wedge"]]
    return gpd.GeoDataFrame(cameras[["id", "name", "status", "alarm_state"]].copy(), geometry=polys, crs=4326)


def detections_frame(session: Session, *, camera: str | None = None, class_name: str | None = None,
                     since: datetime | None = None, until: datetime | None = None, limit: int = DEFAULT_LIMIT,
                     scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Newest detections first; geometry is the map point (None when the camera is not calibrated)."""
    rows = session.execute(text("""
        SELECT d.id, d.camera_id, d.at, d.class_name, d.confidence, d.x1, d.y1, d.x2, d.y2, d.track_id,
               d.grid_code, ST_AsBinary(d.geom) AS wkb
        FROM detections d
        WHERE (CAST(:camera AS text) IS NULL OR d.camera_id = :camera)
          AND (CAST(:cls AS text) IS NULL OR d.class_name = :cls)
          AND (CAST(:since AS timestamptz) IS NULL OR d.at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR d.at < :until)
          AND (CAST(:ids AS text[]) IS NULL OR d.camera_id = ANY(CAST(:ids AS text[])))
        ORDER BY d.at DESC, d.id DESC LIMIT :limit"""),
        {"camera": camera, "cls": class_name, "since": since, "until": until, "limit": min(max(1, limit), MAX_LIMIT),
         "ids": scoped_ids(session, scope)}).mappings().all()
    df = pd.DataFrame(rows, columns=["id", "camera_id", "at", "class_name", "confidence", "x1", "y1", "x2",
                                     "y2", "track_id", "grid_code", "wkb"])
    geom = shapely.from_wkb([None if w is None else bytes(w) for w in df["wkb"]])
    df["box"] = df[["x1", "y1", "x2", "y2"]].round(1).values.tolist()
    df["track_id"] = pd.Series([None if pd.isna(v) else int(v) for v in df["track_id"]], index=df.index,
                               dtype=object)  # ints, null when untracked (not floats from NaN)
    return gpd.GeoDataFrame(df.drop(columns=["wkb", "x1", "y1", "x2", "y2"]), geometry=geom, crs=4326)


def heat(session: Session, *, class_name: str | None = None, since: datetime | None = None,
         until: datetime | None = None, cell_deg: float = 0.0005, scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Detections counted per class, per hour and per ~50 m cell (cell centre as the point)."""
    rows = session.execute(text("""
        SELECT class_name, date_trunc('hour', at) AS hour, count(*) AS count,
               ST_X(c) AS lon, ST_Y(c) AS lat
        FROM (SELECT class_name, at,
                     ST_SnapToGrid(geom, :cell) AS c
              FROM detections
              WHERE geom IS NOT NULL
                AND (CAST(:cls AS text) IS NULL OR class_name = :cls)
                AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
                AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
                AND (CAST(:ids AS text[]) IS NULL OR camera_id = ANY(CAST(:ids AS text[])))) d
        GROUP BY class_name, hour, c ORDER BY hour, class_name, count DESC"""),
        {"cls": class_name, "since": since, "until": until, "cell": cell_deg,
         "ids": scoped_ids(session, scope)}).mappings().all()
    df = pd.DataFrame(rows, columns=["class_name", "hour", "count", "lon", "lat"])
    geom = shapely.points(df["lon"].to_numpy(float), df["lat"].to_numpy(float)) if len(df) else []
    return gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=geom, crs=4326)


def latest_key_frame(session: Session, camera_id: str) -> str | None:
    """Path of the newest annotated key frame of a camera."""
    return session.execute(text("SELECT path FROM key_frames WHERE camera_id = :c ORDER BY at DESC, id DESC "
                                "LIMIT 1"), {"c": camera_id}).scalar()
