"""Base data as a service: list and read (scoped, masked; a reveal is audited), capture and update by
grid workers, the per-grid summary and the objects each worker captured.

The five kinds share one shape: a table with the grid's codes frozen on each row, a few required
fields and validators (``KINDS``). A row is placed by ``grid_code`` or by ``lon``/``lat`` (resolved
to its grid); a caller may write only inside its scope (a grid worker: its own grids).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from gis import codes as C
from gis.errors import InvalidInput, NotFound
from gis.locate import locate
from gis.models import Grid
from gis.registry import current
from layers.accounts.scope import Scope
from layers.basedata import privacy as P
from layers.basedata.models import BaseUnit, Building, Household, KeySite, Resident

PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
PLACE = ("grid_code", "village_code", "town_code", "district_code")
SHOWN_ALWAYS = ("id", *PLACE, "captured_by", "captured_at", "updated_by", "updated_at")


def id_checksum(first17: str) -> str:
    """The GB 11643 check character of an 18-digit citizen ID number."""
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def _text(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("empty")
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters")
        return value
    return check


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.strip() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value.strip()
    return check


def _int(low: int, high: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be {low}..{high}")
        return number
    return check


def _phone(value: str) -> str:
    value = str(value).strip().replace(" ", "")
    if not PHONE.match(value):
        raise ValueError("not a phone number (11-digit mobile or area code + number)")
    return value


def _id_number(value: str) -> str:
    value = str(value).strip().upper()
    if not ID_NUMBER.match(value):
        raise ValueError("an ID number has 18 characters: 17 digits and a digit or X")
    if id_checksum(value[:17]) != value[17]:
        raise ValueError("check digit does not match (GB 11643): a digit was mistyped")
    return value


def _credit_code(value: str) -> str:
    value = str(value).strip().upper()
    if not re.match(r"^[0-9A-HJ-NPQRTUWXY]{18}$", value):
        raise ValueError("a unified social credit code has 18 characters (digits and capitals)")
    return value


@dataclass(frozen=True)
class Kind:
    """One kind of base data: its table, required and optional fields with their checks."""

    name: str
    title: str
    model: Any
    required: dict[str, Callable[[str], Any]]
    optional: dict[str, Callable[[str], Any]] = field(default_factory=dict)

    @property
    def table(self) -> Table:
        return self.model.__table__

    @property
    def fields(self) -> dict[str, Callable[[str], Any]]:
        return {**self.required, **self.optional}


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("buildings", "楼栋房屋", Building, {"name": _text(100), "kind": _choice(
        "residential", "house", "commercial", "industrial", "public")},
        {"floors": _int(1, 200), "address": _text(300)}),
    Kind("households", "户", Household, {"household_no": _text(30), "head_name": _text(50),
                                        "members": _int(0, 100), "kind": _choice("registered", "resident", "floating")},
         {"phone": _phone, "room": _text(30), "address": _text(300), "building_id": _int(1, 2**62)}),
    Kind("residents", "人口", Resident, {"name": _text(50), "kind": _choice("registered", "resident", "floating")},
         {"gender": _choice("男", "女"), "birth_year": _int(1900, 2100), "id_number": _id_number, "phone": _phone,
          "relation": _text(10), "household_id": _int(1, 2**62)}),
    Kind("units", "企业和组织", BaseUnit, {"unit_type": _choice("business", "organisation"), "name": _text(200),
                                      "kind": _text(20)},
         {"credit_code": _credit_code, "contact": _text(50), "phone": _phone, "employees": _int(0, 1_000_000),
          "address": _text(300), "building_id": _int(1, 2**62)}),
    Kind("key_sites", "重点场所", KeySite, {"name": _text(200), "kind": _choice(
        "hazchem", "farm_park", "market", "school", "hospital", "other")}, {"note": _text(2000)}),
]}


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        raise NotFound(f"no base-data kind {name!r}; kinds are {', '.join(KINDS)}")
    return KINDS[name]


# ----------------------------------------------------------------------------- places

@dataclass(frozen=True)
class Placed:
    grid_code: str
    village_code: str
    town_code: str
    district_code: str
    lon: float | None = None
    lat: float | None = None


def current_grids(session: Session, codes: list[str]) -> dict[str, tuple[str, str, str]]:
    rows = session.execute(select(Grid.code, Grid.village_code, Grid.town_code, Grid.district_code)
                           .where(current(Grid), Grid.code.in_(codes))).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def place(session: Session, *, grid_code: str | None = None, lon: float | None = None,
          lat: float | None = None) -> Placed:
    """A row's grid: the given grid code (checked, current) or the grid of the point."""
    if lon is not None and lat is not None:
        loc = locate(session, float(lon), float(lat))
        if loc.grid_code is None:
            raise InvalidInput(f"point ({lon}, {lat}) is outside every grid")
        if grid_code and grid_code != loc.grid_code:
            raise InvalidInput(f"point ({lon}, {lat}) is in grid {loc.grid_code}, not {grid_code}")
        return Placed(loc.grid_code, loc.village_code or "", loc.town_code or "", loc.district_code or "",
                      float(lon), float(lat))
    if not grid_code:
        raise InvalidInput("give grid_code, or lon and lat")
    C.validate_grid_code(grid_code)
    found = current_grids(session, [grid_code]).get(grid_code)
    if found is None:
        raise InvalidInput(f"no current grid {grid_code}")
    return Placed(grid_code, *found)


def writable(scope: Scope, placed: Placed) -> bool:
    """Whether ``scope`` may write in this grid (a grid worker: only its own grids)."""
    if scope.role == "grid_worker":
        return placed.grid_code in scope.grid_codes
    return scope.sees(dict(zip(PLACE, (placed.grid_code, placed.village_code, placed.town_code,
                                       placed.district_code), strict=True)))


def _check_write(scope: Scope, kind: Kind, placed: Placed) -> None:
    if not scope.allows("write"):
        raise P.NotPermitted(f"the {scope.role} role may not capture base data")
    P.check_people(scope, kind.table.name)
    if not writable(scope, placed):
        raise NotFound(f"no grid {placed.grid_code} in your area")


# ----------------------------------------------------------------------------- capture and update

def clean(kind: Kind, values: dict[str, Any], *, partial: bool = False) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Checked values and the problems as (column, reason); unknown columns are problems too."""
    out, problems = {}, []
    for name in values:
        if name not in kind.fields and name not in ("grid_code", "lon", "lat"):
            problems.append((name, f"unknown column for {kind.name}; columns are "
                                   f"{', '.join([*kind.fields, 'grid_code', 'lon', 'lat'])}"))
    for name, check in kind.fields.items():
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in kind.required and not partial:
                problems.append((name, "required"))
            continue
        try:
            out[name] = check(value if isinstance(value, str) else str(value))
        except ValueError as exc:
            problems.append((name, str(exc)))
    return out, problems


def _problems_error(problems: list[tuple[str, str]]) -> InvalidInput:
    text_ = "; ".join(f"{c}: {r}" for c, r in problems)
    return InvalidInput(f"not captured: {text_}", detail={"problems": [{"column": c, "reason": r}
                                                                         for c, r in problems]})


def _geom(placed: Placed) -> str | None:
    return None if placed.lon is None else f"SRID=4326;POINT({placed.lon} {placed.lat})"


def capture(session: Session, scope: Scope, kind_name: str, values: dict[str, Any], *,
            now: datetime | None = None) -> dict[str, Any]:
    """A new row captured by the caller (采集): ``captured_by`` is the signed-in user (the worker id)."""
    kind, now = kind_of(kind_name), now or datetime.now(UTC)
    checked, problems = clean(kind, values)
    if problems:
        raise _problems_error(problems)
    placed = place(session, grid_code=values.get("grid_code"), lon=values.get("lon"), lat=values.get("lat"))
    _check_write(scope, kind, placed)
    row = {**checked, **dict(zip(PLACE, (placed.grid_code, placed.village_code, placed.town_code,
                                         placed.district_code), strict=True)),
           "geom": _geom(placed), "captured_by": scope.user, "captured_at": now, "updated_by": scope.user,
           "updated_at": now}
    new_id = session.execute(insert(kind.table).values(**row).returning(kind.table.c.id)).scalar_one()
    return read(session, scope, kind_name, new_id)


def change(session: Session, scope: Scope, kind_name: str, row_id: int, values: dict[str, Any], *,
           now: datetime | None = None) -> dict[str, Any]:
    """Update the given fields of one row (核实更新) in the caller's area; the place does not move."""
    kind, now = kind_of(kind_name), now or datetime.now(UTC)
    existing = _one(session, scope, kind, row_id)
    checked, problems = clean(kind, values, partial=True)
    problems += [(k, "the place of a row is not changed here: capture it again in its new grid")
                 for k in ("grid_code", "lon", "lat") if k in values]
    if problems:
        raise _problems_error(problems)
    _check_write(scope, kind, Placed(*(existing[k] for k in PLACE)))
    session.execute(update(kind.table).where(kind.table.c.id == row_id)
                    .values(**checked, updated_by=scope.user, updated_at=now))
    return read(session, scope, kind_name, row_id)


# ----------------------------------------------------------------------------- reads

def _columns(kind: Kind) -> list[Any]:
    return [c for c in kind.table.c if c.name != "geom"] + [
        func.ST_X(kind.table.c.geom).label("lon"), func.ST_Y(kind.table.c.geom).label("lat")]


def _scoped(stmt: Any, scope: Scope, kind: Kind) -> Any:
    if scope.role == "grid_worker":
        return stmt.where(kind.table.c.grid_code.in_(scope.grid_codes))
    return scope.filter(stmt, kind.model)


def _one(session: Session, scope: Scope, kind: Kind, row_id: int) -> dict[str, Any]:
    stmt = _scoped(select(*_columns(kind)).where(kind.table.c.id == row_id), scope, kind)
    row = session.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"no {kind.name[:-1]} {row_id}")
    return dict(row)


def read(session: Session, scope: Scope, kind_name: str, row_id: int, *, reveal: bool = False,
         path: str = "") -> dict[str, Any]:
    """One row, masked unless ``reveal`` (permitted roles only; audited)."""
    kind = kind_of(kind_name)
    P.check_people(scope, kind.table.name)
    fields = P.check_reveal(scope, kind.table.name) if reveal else ()
    row = _one(session, scope, kind, row_id)
    P.audit_reveal(session, scope, kind.table.name, [row_id], fields, path=path or f"/basedata/{kind_name}/{row_id}")
    return P.present([row], kind.table.name, fields)[0]


def search(session: Session, scope: Scope, kind_name: str, *, grid: str | None = None, village: str | None = None,
           town: str | None = None, q: str | None = None, household_id: int | None = None, reveal: bool = False,
           limit: int = 50, offset: int = 0, path: str = "") -> tuple[int, list[dict[str, Any]]]:
    """Rows the caller may see, filtered; masked unless ``reveal`` (audited, with the ids shown)."""
    kind = kind_of(kind_name)
    P.check_people(scope, kind.table.name)
    fields = P.check_reveal(scope, kind.table.name) if reveal else ()
    t = kind.table
    stmt = _scoped(select(*_columns(kind)), scope, kind)
    for column, value in (("grid_code", grid), ("village_code", village), ("town_code", town),
                          ("household_id", household_id)):
        if value is not None and column in t.c:
            stmt = stmt.where(t.c[column] == value)
    if q:
        name = t.c["head_name"] if "head_name" in t.c else t.c["name"]
        stmt = stmt.where(name.contains(q, autoescape=True))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = [dict(r) for r in session.execute(stmt.order_by(t.c.id).limit(limit).offset(offset)).mappings()]
    P.audit_reveal(session, scope, t.name, [r["id"] for r in rows], fields, path=path or f"/basedata/{kind_name}")
    return int(total or 0), P.present(rows, t.name, fields)


_SUMMARY = text("""
SELECT
  (SELECT count(*) FROM households WHERE grid_code = :g) AS households,
  (SELECT coalesce(sum(greatest(h.members, coalesce(r.n, 0))), 0) FROM households h
     LEFT JOIN (SELECT household_id, count(*) AS n FROM residents WHERE grid_code = :g
                AND household_id IS NOT NULL GROUP BY 1) r ON r.household_id = h.id
     WHERE h.grid_code = :g)
   + (SELECT count(*) FROM residents WHERE grid_code = :g AND household_id IS NULL) AS residents,
  (SELECT count(*) FROM buildings WHERE grid_code = :g) AS buildings,
  (SELECT count(*) FROM base_units WHERE grid_code = :g AND unit_type = 'business') AS businesses,
  (SELECT count(*) FROM base_units WHERE grid_code = :g AND unit_type = 'organisation') AS organisations,
  (SELECT count(*) FROM key_sites WHERE grid_code = :g) AS key_sites
""")
SUMMARY_KEYS = ("households", "residents", "buildings", "businesses", "organisations", "key_sites")


def base_summary(session: Session, scope: Scope, grid_code: str) -> dict[str, Any]:
    """Counts of the grid's base data (contract: ``GET /grids/{code}/base-summary``); 404 for a grid the
    caller cannot see or one with no base data loaded. ``residents`` counts people living there: each
    household's members (or its recorded residents, if more) plus residents recorded without a household."""
    C.validate_grid_code(grid_code)
    found = current_grids(session, [grid_code]).get(grid_code)
    place_ = None if found is None else dict(zip(PLACE, (grid_code, *found), strict=True))
    if place_ is None or not (grid_code in scope.grid_codes if scope.role == "grid_worker" else scope.sees(place_)):
        raise NotFound(f"no grid {grid_code}")
    counts = session.execute(_SUMMARY, {"g": grid_code}).mappings().one()
    if not any(counts[k] for k in SUMMARY_KEYS):
        raise NotFound(f"no base data loaded for grid {grid_code}")
    return {"grid_code": grid_code, **{k: int(counts[k]) for k in SUMMARY_KEYS}}


_CAPTURED = """
SELECT captured_by, count(*) FROM (
  {union}
) x WHERE captured_by = ANY(:w) AND captured_at >= :a AND captured_at < :b GROUP BY 1
"""


def captured_counts(session: Session, workers: list[str], start: datetime, end: datetime) -> dict[str, int]:
    """Objects captured (采集对象) per worker in [start, end), over all five kinds."""
    union = " UNION ALL ".join(f"SELECT captured_by, captured_at FROM {k.table.name}" for k in KINDS.values())
    rows = session.execute(text(_CAPTURED.format(union=union)), {"w": workers, "a": start, "b": end}).all()
    return {r[0]: int(r[1]) for r in rows}

