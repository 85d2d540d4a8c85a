"""Who answers for a place (责任人): the names and phones a commander asks for on the big screen.

A detail card on the wall must say who is responsible, not print 15-digit codes: for a grid, its
name, village/community and town, and the workers assigned to it (grid chief first, with phones as
the caller may see them); for a town (属地) and a department (职能部门), their names. One call answers
every code a card or the feed needs, so the screen never asks once per code.

Scope: names of places are the map's shared frame (as ``GET /areas``); workers are those the caller
sees (as ``GET /workers`` lists them), phones masked unless the caller's role may see them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis import registry
from gis.codes import validate_grid_code
from gis.errors import InvalidInput
from layers.accounts.scope import Scope

MAX_CODES = 200
ROLE_ORDER = {"grid_chief": 0, "full_time": 1, "specialist": 2, "helper": 3}

_GRIDS = """
SELECT g.code, g.name, g.village_code, v.name AS village_name, g.town_code, t.name AS town_name
FROM grids g
LEFT JOIN areas v ON v.code = g.village_code AND v.valid_to IS NULL
LEFT JOIN areas t ON t.code = g.town_code AND t.valid_to IS NULL
WHERE g.valid_to IS NULL AND g.code = ANY(:codes)
"""

_WORKERS = """
SELECT a.grid_code, w.id, w.name, w.role, w.phone, w.on_duty
FROM worker_grids a JOIN workers w ON w.id = a.worker_id
WHERE w.active AND a.grid_code = ANY(:codes) AND (CAST(:ids AS text[]) IS NULL OR w.id = ANY(CAST(:ids AS text[])))
ORDER BY a.grid_code, w.id
"""


def _codes(values: Iterable[str], what: str) -> list[str]:
    out = sorted({v.strip() for v in values if v and v.strip()})
    if len(out) > MAX_CODES:
        raise InvalidInput(f"at most {MAX_CODES} {what} codes in one request, got {len(out)}")
    return out


def _visible_workers(session: Session, scope: Scope | None) -> list[str] | None:
    if scope is None or scope.city_wide:
        return None
    from layers.workers.models import Assignment, Worker

    return list(session.scalars(scope.filter(select(Worker.id), Worker, via=(Worker.id, Assignment.worker_id))))


def _has(session: Session, table: str) -> bool:
    return session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}) is True


def grid_duty(session: Session, codes: list[str], scope: Scope | None) -> dict[str, dict]:
    """Each current grid's names and its workers (grid chief first)."""
    from layers.workers.models import ROLES

    for code in codes:
        validate_grid_code(code)
    out = {r.code: {**dict(r._mapping), "workers": []}
           for r in session.execute(text(_GRIDS), {"codes": codes})}
    if out and _has(session, "worker_grids"):
        rows = session.execute(text(_WORKERS), {"codes": list(out), "ids": _visible_workers(session, scope)})
        for r in rows:
            phone = r.phone if scope is None else scope.phone(r.phone)
            out[r.grid_code]["workers"].append({"id": r.id, "name": r.name, "role": r.role,
                                                "role_name": ROLES.get(r.role, r.role), "phone": phone,
                                                "on_duty": r.on_duty})
        for grid in out.values():
            grid["workers"].sort(key=lambda w: (ROLE_ORDER.get(w["role"], 9), w["id"]))
    return out


def department_names(codes: list[str]) -> dict[str, str]:
    from layers.incidents.categories import load_departments

    known = load_departments()
    return {c: known[c].name for c in codes if c in known}


def duty(session: Session, *, grids: Iterable[str] = (), areas: Iterable[str] = (),
         departments: Iterable[str] = (), scope: Scope | None = None) -> dict:
    """Names (and for grids, the responsible workers) of the given codes; unknown codes are left out,
    so the caller can tell "no such code" from "nobody assigned" (a grid with ``workers: []``)."""
    grid_codes = _codes(grids, "grid")
    area_codes = _codes(areas, "area")
    dept_codes = _codes(departments, "department")
    return {"grids": grid_duty(session, grid_codes, scope) if grid_codes else {},
            "areas": registry.area_names(session, area_codes) if area_codes else {},
            "departments": department_names(dept_codes)}
