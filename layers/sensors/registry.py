"""The sensor registry (监测点台账): create, edit, retire, import from CSV, list.

A sensor's place is resolved once, at registration (or when it is moved), and the grid, village, town
and district codes with the registry version are frozen on its row, as every located record is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis.batch import Batch, read_table
from gis.batch_values import blank
from gis.coords import to_wgs84
from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.locate import locate_many
from gis.registry import registry_version
from layers.accounts.scope import Scope
from layers.sensors.models import KINDS, POLLUTANTS, STATUSES, Sensor

ALIASES = {"pm2.5": "pm25", "pm2_5": "pm25", "pm25": "pm25", "pm10": "pm10", "no2": "no2", "so2": "so2",
           "o3": "o3", "co": "co"}
FIELDS = ["id", "name", "kind", "pollutants", "owner", "status", "lon", "lat", "grid_code", "village_code",
          "town_code", "district_code", "match", "registry_version"]


def pollutant_name(raw: str) -> str:
    """'PM2.5' → 'pm25'; refuses names the system does not measure."""
    key = str(raw).strip().lower().replace(" ", "")
    if key not in ALIASES:
        raise InvalidInput(f"unknown pollutant {raw!r}: use one of PM2.5, PM10, NO2, SO2, O3, CO")
    return ALIASES[key]


def pollutant_list(raw) -> list[str]:
    parts = raw if isinstance(raw, list | tuple) else str(raw).replace("|", ";").replace(",", ";").split(";")
    names = [pollutant_name(p) for p in parts if str(p).strip()]
    return sorted(set(names), key=POLLUTANTS.index) or list(POLLUTANTS)


def _placed(session: Session, lon: np.ndarray, lat: np.ndarray, crs: str) -> pd.DataFrame:
    x, y = to_wgs84(lon, lat, crs)
    where = locate_many(session, x, y)
    where["lon"], where["lat"] = x, y
    return where


def _check_rows(batch: Batch) -> None:
    frame = batch.frame
    for col in ("id", "name", "lon", "lat"):
        if col not in frame:
            frame[col] = None
    batch.reject(blank(frame["id"]), "missing sensor id")
    batch.reject(blank(batch.frame["name"]), "missing name")
    for col in ("lon", "lat"):
        values = pd.to_numeric(batch.frame[col], errors="coerce")
        batch.reject(~np.isfinite(values.to_numpy(dtype=float)), f"non-numeric coordinate ({col})")
    frame = batch.frame
    kinds = frame.get("kind", pd.Series("air", index=frame.index)).fillna("air").astype(str).str.strip()
    batch.frame["kind"] = kinds.where(kinds != "", "air")
    batch.reject(~batch.frame["kind"].isin(KINDS).to_numpy(), f"kind must be one of {', '.join(KINDS)}")


def _pollutants_or_reject(batch: Batch) -> None:
    raw = batch.frame.get("pollutants", pd.Series("", index=batch.frame.index)).fillna("")
    names, bad = [], np.zeros(len(raw), dtype=bool)
    for i, value in enumerate(raw):
        try:
            names.append(pollutant_list(value))
        except InvalidInput:
            names.append([])
            bad[i] = True
    batch.frame["pollutants"] = names
    batch.reject(bad, "unknown pollutant (use PM2.5, PM10, NO2, SO2, O3, CO)")


def import_sensors(session: Session, data, *, crs: str = "EPSG:4326", fmt: str | None = None) -> dict:
    """Register or update sensors from CSV / JSON lines (id, name, kind, pollutants, lon, lat, owner).

    Existing ids are updated in place (re-resolved); bad rows come back with their row number.
    """
    batch = Batch(read_table(data, fmt=fmt))
    _check_rows(batch)
    _pollutants_or_reject(batch)
    batch.reject(batch.frame["id"].astype(str).str.strip().duplicated().to_numpy(), "duplicate sensor id in file")
    frame = batch.frame
    if frame.empty:
        return {"imported": 0, "rejected": batch.rejected}
    where = _placed(session, frame["lon"].astype(float).to_numpy(), frame["lat"].astype(float).to_numpy(), crs)
    version = registry_version(session)
    rows = [_row(r, where.iloc[i], version) for i, r in enumerate(frame.itertuples(index=False))]
    _upsert(session, rows)
    return {"imported": len(rows), "rejected": batch.rejected}


def _row(r, w, version: int) -> dict:
    status = getattr(r, "status", None)
    owner = getattr(r, "owner", None)
    return {"id": str(r.id).strip(), "name": str(r.name).strip(), "kind": r.kind, "pollutants": r.pollutants,
            "owner": None if owner is None or pd.isna(owner) or not str(owner).strip() else str(owner).strip(),
            "status": status if isinstance(status, str) and status in STATUSES else "active",
            "wkb": shapely.to_wkb(shapely.points(w["lon"], w["lat"]), hex=True),
            "grid_code": w["grid_code"], "village_code": w["village_code"], "town_code": w["town_code"],
            "district_code": w["district_code"], "match": w["match"], "version": version}


def _upsert(session: Session, rows: list[dict]) -> None:
    session.execute(text(
        "INSERT INTO sensors (id, name, kind, pollutants, owner, status, geom, grid_code, village_code, town_code, "
        "district_code, match, registry_version) VALUES (:id, :name, :kind, :pollutants, :owner, :status, "
        "ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326), :grid_code, :village_code, :town_code, "
        ":district_code, :match, :version) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
        "kind = EXCLUDED.kind, pollutants = EXCLUDED.pollutants, owner = EXCLUDED.owner, "
        "status = EXCLUDED.status, geom = EXCLUDED.geom, grid_code = EXCLUDED.grid_code, "
        "village_code = EXCLUDED.village_code, town_code = EXCLUDED.town_code, "
        "district_code = EXCLUDED.district_code, match = EXCLUDED.match, "
        "registry_version = EXCLUDED.registry_version"), rows)


def create_sensor(session: Session, *, id: str, name: str, lon: float, lat: float, crs: str = "EPSG:4326",
                  kind: str = "air", pollutants: list[str] | None = None, owner: str | None = None) -> dict:
    """Register one sensor; an id already registered is a conflict."""
    if session.scalar(text("SELECT 1 FROM sensors WHERE id = :id"), {"id": id}):
        raise Conflict(f"sensor {id} is already registered")
    result = import_sensors(session, [{"id": id, "name": name, "lon": lon, "lat": lat, "kind": kind,
                                       "pollutants": ";".join(pollutants or POLLUTANTS), "owner": owner}], crs=crs)
    if result["rejected"]:
        raise InvalidInput(f"sensor {id}: {result['rejected'][0]['reason']}")
    return get_sensor(session, id)


def scoped_ids(session: Session, scope: Scope | None) -> list[str] | None:
    """The ids of the sensors ``scope`` sees (by their grid/town codes); None when it sees them all."""
    if scope is None or scope.city_wide:
        return None
    return list(session.scalars(scope.filter(select(Sensor.id), Sensor)))


def get_sensor(session: Session, sensor_id: str, *, scope: Scope | None = None) -> dict:
    """One sensor; outside ``scope`` a 404, exactly as for one that does not exist."""
    row = session.execute(text(
        "SELECT id, name, kind, pollutants, owner, status, ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code, "
        "village_code, town_code, district_code, match, registry_version FROM sensors WHERE id = :id"),
        {"id": sensor_id}).mappings().first()
    if row is None:
        raise NotFound(f"no sensor {sensor_id!r}")
    return dict(row) if scope is None else scope.check(dict(row), f"sensor {sensor_id!r}")


def update_sensor(session: Session, sensor_id: str, *, crs: str = "EPSG:4326", **changes) -> dict:
    """Change name, kind, pollutants, owner, status or place (a move re-resolves the grid)."""
    current = get_sensor(session, sensor_id)
    if "status" in changes and changes["status"] not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
    moved = "lon" in changes or "lat" in changes
    if not moved:
        crs = "EPSG:4326"
    row = {**merged, "pollutants": ";".join(pollutant_list(merged["pollutants"]))}
    result = import_sensors(session, [{k: row[k] for k in ("id", "name", "kind", "pollutants", "owner", "status",
                                                           "lon", "lat")}], crs=crs)
    if result["rejected"]:
        raise InvalidInput(f"sensor {sensor_id}: {result['rejected'][0]['reason']}")
    return get_sensor(session, sensor_id)


def retire_sensor(session: Session, sensor_id: str) -> dict:
    """Retire rather than delete: its readings and alarms stay readable."""
    get_sensor(session, sensor_id)
    session.execute(text("UPDATE sensors SET status = 'retired' WHERE id = :id"), {"id": sensor_id})
    return get_sensor(session, sensor_id)


def known_ids(session: Session, ids: list[str] | None = None, *, active_only: bool = True) -> set[str]:
    """Sensor ids (in service only, unless ``active_only`` is off); with ``ids``, only those of them
    that are — one indexed query, what an ingest batch asks."""
    clause = " AND status <> 'retired'" if active_only else ""
    if ids is not None:
        return set(session.scalars(text("SELECT id FROM sensors WHERE id = ANY(:ids)" + clause), {"ids": list(ids)}))
    return set(session.scalars(text("SELECT id FROM sensors WHERE true" + clause)))


def known_in_scope(session: Session, scope: Scope | None, ids: list[str]) -> set[str]:
    """:func:`known_ids` for an ingest batch sent by ``scope``: a batch naming a sensor registered in
    another area is refused whole (Forbidden, the offending ids in ``detail``) rather than stored for
    someone else or silently dropped. Unknown ids are left to the caller (refused row by row)."""
    found = known_ids(session, ids)
    if scope is None or scope.city_wide or not found:
        return found
    visible = set(session.scalars(scope.filter(select(Sensor.id).where(Sensor.id.in_(sorted(found))), Sensor)))
    foreign = sorted(found - visible)
    if foreign:
        raise Forbidden(f"sensor(s) outside your area: {', '.join(foreign[:20])}"
                        + (f" and {len(foreign) - 20} more" if len(foreign) > 20 else "")
                        + "; nothing was stored", detail={"ids": foreign})
    return found
