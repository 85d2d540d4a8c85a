"""What hangs off a grid follows the grid (网格调整联动): sensors, cameras, worker assignments, grid workers.

A planner's edit (reshape, split, merge, or an import that redraws villages) closes grid rows and opens
new ones. Fixed assets must not keep pointing at closed codes, so :func:`install` registers followers
with the registry's hook (:func:`gis.registry.on_grid_edit`); the registry runs them inside the edit's
own transaction, after its rows are written, and returns what they report in ``EditResult.followed``:

- ``successors``: each closed code → the current codes that took its ground. A code that is opened again
  (a reshape) is its own successor; otherwise every current grid overlapping the closed grid's old
  outline by more than a sliver (at least :data:`SLIVER_M2` and :data:`SLIVER_SHARE` of the smaller of
  the two, measured in the city's Gauss-Krüger zone). So a split maps to every piece and a merge to the
  merged grid. If only slivers overlap, the largest overlap wins; if nothing does, the list is empty
  and whoever held the code keeps it (shown, never silently dropped).
- ``sensors`` and ``cameras``: every one whose point lies in the touched ground (old and new outlines,
  grown by the resolver's snap distance) or whose grid code was closed is resolved again with the
  resolver's own rules (:func:`gis.locate.locate_many` on the session, which sees the uncommitted edit);
  rows whose grid, village, town or district changed are updated and listed (id, old → new codes).
- ``workers``: assignments (``worker_grids``) on a closed code are replaced by its successors, keeping
  the date the worker was first assigned that ground; listed as the worker's grids before → after.
- ``users``: accounts whose ``grid_codes`` (the grid worker role's scope) hold a closed code get its
  successors in its place, so the scope follows the ground and never silently empties.

Open tickets are not moved: a ticket keeps the place frozen at intake (a documented decision), as do
readings, alarms, detections and GPS fixes: they are events, not assets.

``install()`` is called by the API's ``create_app`` and by the CLI's grid commands; it is idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from gis.locate import locate_many
from gis.metric import from_metric, local_epsg, to_metric
from gis.models import Grid
from gis.registry import GridChange, current, on_grid_edit
from gis.settings import grid_settings
from layers.accounts.models import User
from layers.cameras.models import Camera
from layers.sensors.models import Sensor
from layers.workers.models import Assignment

SLIVER_M2 = 100.0  # the topology check's sliver area (gis.topology.validate_grids)
SLIVER_SHARE = 0.05  # ... and at least this share of the smaller grid
PLACE = ("grid_code", "village_code", "town_code", "district_code")

log = logging.getLogger("onemap.follow")


# --------------------------------------------------------------------------- successors

def successors(session: Session, change: GridChange) -> dict[str, list[str]]:
    """Each closed code → the current codes that took its ground (see the module docstring)."""
    if "successors" in change.shared:
        return change.shared["successors"]
    closed = change.closed
    reopened = set(change.opened_codes)
    out: dict[str, list[str]] = {code: [code] for code in closed["code"] if code in reopened}
    gone = closed[~closed["code"].isin(list(reopened))]
    if len(gone):
        out.update(_by_overlap(session, gone))
    change.shared["successors"] = out
    return out


def _by_overlap(session: Session, gone) -> dict[str, list[str]]:
    old = np.asarray(gone.geometry.values, dtype=object)
    envelope = shapely.box(*shapely.total_bounds(old))
    rows = session.execute(
        select(Grid.code, func.ST_AsBinary(Grid.geom))
        .where(current(Grid), func.ST_Intersects(Grid.geom, func.ST_GeomFromWKB(envelope.wkb, 4326)))
        .order_by(Grid.code)).all()
    codes = np.array([r[0] for r in rows], dtype=object)
    if not len(codes):
        return {code: [] for code in gone["code"]}
    new = shapely.from_wkb([bytes(r[1]) for r in rows])
    epsg = local_epsg(np.concatenate([old, new]))
    old_m, new_m = to_metric(old, epsg), to_metric(new, epsg)
    i, j = shapely.STRtree(new_m).query(old_m, predicate="intersects")
    overlap = shapely.area(shapely.intersection(old_m[i], new_m[j]))
    old_area, new_area = shapely.area(old_m), shapely.area(new_m)
    tolerance = grid_settings().tolerance_m2
    out: dict[str, list[str]] = {}
    for k, code in enumerate(gone["code"]):
        mine = i == k
        js, share = j[mine], overlap[mine]
        real = (share >= SLIVER_M2) & (share >= SLIVER_SHARE * np.minimum(old_area[k], new_area[js]))
        if real.any():
            out[code] = sorted(codes[js[real]])
        elif len(share) and share.max() > tolerance:
            out[code] = [codes[js[int(np.argmax(share))]]]
        else:
            out[code] = []
    return out


def follow_successors(session: Session, change: GridChange) -> dict[str, Any]:
    return {"successors": successors(session, change)}


# --------------------------------------------------------------------------- sensors and cameras

def touched_ground(change: GridChange):
    """The old and new outlines grown by the resolver's snap distance (a point there may resolve anew)."""
    geoms = np.concatenate([np.asarray(change.closed.geometry.values, dtype=object),
                            np.asarray(change.opened.geometry.values, dtype=object)])
    if not len(geoms):
        return None
    epsg = local_epsg(geoms)
    grown = shapely.union_all(shapely.buffer(to_metric(geoms, epsg), grid_settings().snap_m + 1.0))
    return from_metric(np.array([grown], dtype=object), epsg)[0]


def _ground(change: GridChange):
    if "ground" not in change.shared:
        change.shared["ground"] = touched_ground(change)
    return change.shared["ground"]


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def relocate(session: Session, change: GridChange, model) -> list[dict[str, Any]]:
    """Resolve again the points of ``model`` (Sensor or Camera) the edit may move; update those that moved."""
    ground = _ground(change)
    near = [model.grid_code.in_(change.closed_codes)]
    if ground is not None:
        near.append(func.ST_Intersects(model.geom, func.ST_GeomFromWKB(ground.wkb, 4326)))
    rows = session.execute(
        select(model.id, *(getattr(model, c) for c in PLACE), func.ST_X(model.geom), func.ST_Y(model.geom))
        .where(model.geom.is_not(None), or_(*near)).order_by(model.id)).all()
    if not rows:
        return []
    where = locate_many(session, np.array([r[5] for r in rows], dtype=float), np.array([r[6] for r in rows], dtype=float))
    moved = []
    now = datetime.now(UTC)
    for row, new in zip(rows, where.itertuples(index=False), strict=True):
        old_place = tuple(row[1:5])
        new_place = tuple(_text(getattr(new, c)) for c in PLACE)
        if old_place == new_place:
            continue
        obj = session.get(model, row[0])
        for column, value in zip(PLACE, new_place, strict=True):
            setattr(obj, column, value)
        obj.match = new.match
        obj.registry_version = change.edit_id
        if hasattr(obj, "updated_at"):
            obj.updated_at = now
        moved.append({"id": row[0], "old_grid": old_place[0], "new_grid": new_place[0],
                      "old_town": old_place[2], "new_town": new_place[2]})
    session.flush()
    return moved


def follow_sensors(session: Session, change: GridChange) -> dict[str, Any]:
    return {"sensors": relocate(session, change, Sensor)}


def follow_cameras(session: Session, change: GridChange) -> dict[str, Any]:
    return {"cameras": relocate(session, change, Camera)}


# --------------------------------------------------------------------------- workers and accounts

def follow_assignments(session: Session, change: GridChange) -> dict[str, Any]:
    """Workers' grids on a closed code → its successors (the earliest ``since`` of what they replace)."""
    closed = change.closed_codes
    stale = session.scalars(select(Assignment).where(Assignment.grid_code.in_(closed))
                            .order_by(Assignment.worker_id, Assignment.grid_code)).all() if closed else []
    if not stale:
        return {"workers": []}
    mapping = successors(session, change)
    workers = sorted({a.worker_id for a in stale})
    held: dict[str, set[str]] = {w: set() for w in workers}
    for worker_id, code in session.execute(select(Assignment.worker_id, Assignment.grid_code)
                                           .where(Assignment.worker_id.in_(workers))):
        held[worker_id].add(code)
    before = {w: sorted(codes) for w, codes in held.items()}
    added: dict[tuple[str, str], datetime] = {}  # (worker, successor) → since
    for a in stale:
        new = mapping.get(a.grid_code) or []
        if not new or new == [a.grid_code]:
            continue  # no successor: the worker keeps the code (listed under successors as [])
        session.delete(a)
        held[a.worker_id].discard(a.grid_code)
        for code in new:
            key = (a.worker_id, code)
            if key in added:  # two closed grids handed the worker the same ground (a merge)
                added[key] = min(added[key], a.since)
            elif code not in held[a.worker_id]:  # not already the worker's grid
                added[key] = a.since
                held[a.worker_id].add(code)
    session.add_all([Assignment(worker_id=w, grid_code=c, since=since) for (w, c), since in sorted(added.items())])
    session.flush()
    return {"workers": [{"worker_id": w, "old": before[w], "new": sorted(held[w])}
                        for w in workers if before[w] != sorted(held[w])]}


def follow_grid_workers(session: Session, change: GridChange) -> dict[str, Any]:
    """Accounts scoped by grid codes (role grid_worker): closed codes → their successors, in place."""
    closed = change.closed_codes
    users = session.scalars(select(User).where(User.grid_codes.op("&&")(cast(closed, ARRAY(String))))
                            .order_by(User.username)).all() if closed else []
    if not users:
        return {"users": []}
    mapping = successors(session, change)
    moved = []
    now = datetime.now(UTC)
    for user in users:
        old = list(user.grid_codes or [])
        new: list[str] = []
        for code in old:
            for successor in mapping.get(code) or [code]:  # no successor: kept, never an empty scope
                if successor not in new:
                    new.append(successor)
        if new != old:
            user.grid_codes = new
            user.updated_at = now
            moved.append({"username": user.username, "role": user.role, "old": old, "new": new})
    session.flush()
    return {"users": moved}


# --------------------------------------------------------------------------- wiring

FOLLOWERS = (follow_successors, follow_sensors, follow_cameras, follow_assignments, follow_grid_workers)


def install() -> None:
    """Register the followers with the registry (idempotent): every grid edit in this process follows."""
    for follower in FOLLOWERS:
        on_grid_edit(follower)


def describe(followed: dict[str, Any]) -> list[str]:
    """The summary as lines for a terminal (the CLI prints them)."""
    lines = []
    for old, new in sorted((followed.get("successors") or {}).items()):
        if new != [old]:
            lines.append(f"grid {old} → {', '.join(new) if new else '(no successor: holders keep it)'}")
    for key, label in (("sensors", "sensor"), ("cameras", "camera")):
        for m in followed.get(key) or []:
            lines.append(f"{label} {m['id']}: {m['old_grid'] or '-'} → {m['new_grid'] or '-'}")
    for m in followed.get("workers") or []:
        lines.append(f"worker {m['worker_id']}: {';'.join(m['old'])} → {';'.join(m['new'])}")
    for m in followed.get("users") or []:
        lines.append(f"user {m['username']}: {';'.join(m['old'])} → {';'.join(m['new'])}")
    return lines
