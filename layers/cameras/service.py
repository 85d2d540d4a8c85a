"""The camera registry as a service (摄像头登记): create, update, delete, import CSV, calibrate, rules.

Keyword-only functions over a Session that never commit (the caller owns the transaction), shared by
the API and the CLI. A camera's position is resolved to grid, village, town and district and frozen
with the registry version, like a ticket's.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from gis.coords import to_wgs84
from gis.errors import Conflict, InvalidInput, NotFound
from gis.locate import locate
from layers.accounts.scope import Scope
from layers.cameras import calibration as calib
from layers.cameras.models import SOURCE_KINDS, Camera, CameraRule
from layers.cameras.rules import Rule, make_rule

EDITABLE = ("name", "source", "source_kind", "heading_deg", "fov_deg", "range_m", "sample_fps")
CSV_COLUMNS = ("id", "name", "lon", "lat")


# Each number a camera carries, with the closed range it must lie in (NaN and ±inf lie in none): a
# camera stored with NaN or 1e308 once made GET /cameras fail for everyone (its view wedge).
RANGES = {"heading_deg": (-360.0, 360.0), "fov_deg": (1e-6, 360.0), "range_m": (1e-3, 10_000.0),
          "sample_fps": (1e-3, 120.0)}
MAX_TEXT = {"name": 100, "source": 2000}


def _check(values: dict[str, Any]) -> None:
    if "source_kind" in values and values["source_kind"] not in SOURCE_KINDS:
        raise InvalidInput(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
    for key, (low, high) in RANGES.items():
        if key in values and not low <= float(values[key]) <= high:  # NaN fails every comparison
            raise InvalidInput(f"{key} must be a number in [{low:g}, {high:g}], got {values[key]!r}")
    for key, most in MAX_TEXT.items():
        if key in values and len(str(values[key])) > most:
            raise InvalidInput(f"{key} is longer than {most} characters")


def _place(session: Session, cam: Camera, lon: float, lat: float, crs: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput(f"camera position ({lon}, {lat}) is not a pair of finite numbers")
    x, y = to_wgs84([lon], [lat], crs)
    if not (math.isfinite(float(x[0])) and math.isfinite(float(y[0])) and abs(float(x[0])) <= 180
            and abs(float(y[0])) <= 90):
        raise InvalidInput(f"camera position ({lon}, {lat}) in {crs} is not a place on Earth")
    where = locate(session, float(x[0]), float(y[0]))
    cam.geom = from_shape(Point(float(x[0]), float(y[0])), srid=4326)
    cam.grid_code, cam.village_code = where.grid_code, where.village_code
    cam.town_code, cam.district_code = where.town_code, where.district_code
    cam.registry_version, cam.match = where.registry_version, where.match


def get_camera(session: Session, camera_id: str, *, scope: Scope | None = None) -> Camera:
    """One camera; outside ``scope`` a 404, exactly as for one that does not exist."""
    cam = session.get(Camera, camera_id)
    if cam is None:
        raise NotFound(f"no camera {camera_id}")
    return cam if scope is None else scope.check(cam, f"camera {camera_id}")


def create_camera(session: Session, *, id: str, name: str, lon: float, lat: float, crs: str = "EPSG:4326",
                  **values: Any) -> Camera:
    """Register a camera; its position is resolved to its grid and frozen."""
    camera_id = (id or "").strip()
    if not camera_id or len(camera_id) > 40:
        raise InvalidInput("a camera needs an id of 1-40 characters")
    if session.get(Camera, camera_id) is not None:
        raise Conflict(f"camera {camera_id} already exists")
    values = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
    _check({**values, "name": name})
    now = datetime.now(UTC)
    cam = Camera(id=camera_id, name=name.strip() or camera_id, status="unknown", created_at=now, updated_at=now,
                 **{"source": "", "source_kind": "video", "heading_deg": 0.0, "fov_deg": 60.0, "range_m": 60.0,
                    "sample_fps": 1.0, **values})
    _place(session, cam, lon, lat, crs)
    session.add(cam)
    session.flush()
    return cam


def update_camera(session: Session, camera_id: str, *, lon: float | None = None, lat: float | None = None,
                  crs: str = "EPSG:4326", **values: Any) -> Camera:
    cam = get_camera(session, camera_id)
    values = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
    _check(values)
    for key, value in values.items():
        setattr(cam, key, value)
    if (lon is None) != (lat is None):
        raise InvalidInput("give both lon and lat to move a camera")
    if lon is not None and lat is not None:
        _place(session, cam, lon, lat, crs)
        cam.calibration = None  # a moved camera sees another ground
    cam.updated_at = datetime.now(UTC)
    session.flush()
    return cam


def delete_camera(session: Session, camera_id: str) -> None:
    session.delete(get_camera(session, camera_id))
    session.flush()


def import_csv(session: Session, data: str | bytes) -> list[Camera]:
    """Cameras from CSV (UTF-8, BOM allowed): id,name,lon,lat[,crs,source,source_kind,heading_deg,fov_deg,
    range_m,sample_fps]. All rows or none: the first bad row raises with its line number."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"camera CSV is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    try:
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise InvalidInput(f"camera CSV header cannot be read: {exc}") from exc
    if missing:
        raise InvalidInput(f"camera CSV lacks column(s): {', '.join(missing)}")
    out = []
    rows = enumerate(reader, 2)
    while True:
        try:
            line, row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KB limit
            raise InvalidInput(f"camera CSV line {reader.line_num}: {exc}") from exc
        try:
            extra = {k: (float(row[k]) if k in ("heading_deg", "fov_deg", "range_m", "sample_fps") else row[k])
                     for k in EDITABLE if k not in ("name",) and row.get(k) not in (None, "")}
            out.append(create_camera(session, id=row["id"] or "", name=row["name"] or row["id"] or "", lon=float(row["lon"]),
                                     lat=float(row["lat"]), crs=row.get("crs") or "EPSG:4326", **extra))
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"camera CSV line {line}: {exc}") from exc
        except (InvalidInput, Conflict) as exc:
            raise type(exc)(f"camera CSV line {line}: {exc.message}") from exc
    return out


def calibrate(session: Session, camera_id: str, image_points, map_points, *, crs: str = "EPSG:4326") -> calib.Calibration:
    """Fit and store the camera's ground calibration; returns it (with its error in metres)."""
    cam = get_camera(session, camera_id)
    result = calib.fit(image_points, map_points, crs=crs)
    cam.calibration = result.to_dict()
    cam.updated_at = datetime.now(UTC)
    session.flush()
    return result


def add_rule(session: Session, camera_id: str, kind: str, **values: Any) -> tuple[CameraRule, Rule]:
    """Add a checked rule to a camera (the class names are checked against the model when it runs)."""
    get_camera(session, camera_id)
    rule = make_rule(kind, **values)
    row = CameraRule(camera_id=camera_id, name=rule.name, kind=rule.kind.value, classes=list(rule.classes),
                     roi=None if rule.roi is None else [list(p) for p in rule.roi], min_count=rule.min_count,
                     min_dwell_s=rule.min_dwell_s, cooldown_s=rule.cooldown_s, clear_s=rule.clear_s,
                     stationary_s=rule.stationary_s, stationary_px=rule.stationary_px, category=rule.category,
                     severity=rule.severity, enabled=True)
    session.add(row)
    session.flush()
    return row, rule


def rules_of(session: Session, camera_id: str) -> list[CameraRule]:
    return list(session.scalars(select(CameraRule).where(CameraRule.camera_id == camera_id).order_by(CameraRule.id)))


def rule_of(row: CameraRule) -> Rule:
    """The rule engine's :class:`Rule` for a stored rule row (the runner and the demo's simulated alarms)."""
    return make_rule(row.kind, classes=tuple(row.classes), roi=row.roi, min_count=row.min_count,
                     min_dwell_s=row.min_dwell_s, cooldown_s=row.cooldown_s, clear_s=row.clear_s,
                     stationary_s=row.stationary_s, stationary_px=row.stationary_px, category=row.category,
                     severity=row.severity, name=row.name, id=row.id)


def camera_dict(cam: Camera) -> dict[str, Any]:
    pt = to_shape(cam.geom) if cam.geom is not None else None
    out = {c: getattr(cam, c) for c in ("id", "name", "source", "source_kind", "heading_deg", "fov_deg", "range_m",
                                         "sample_fps", "grid_code", "village_code", "town_code", "district_code",
                                         "match", "status", "status_note", "last_frame_at")}
    out["lon"], out["lat"] = (pt.x, pt.y) if pt is not None else (None, None)
    out["calibration"] = None if not cam.calibration else {k: cam.calibration[k] for k in ("rms_m", "max_m", "epsg")}
    return out
