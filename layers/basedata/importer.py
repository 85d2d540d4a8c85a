"""Import base data from CSV (导入): all or nothing, with every problem listed by row, column and reason.

Row numbers are the spreadsheet's: the header is row 1, the first record row 2. A file is decoded as
UTF-8 (with or without BOM) or else GBK, which Excel on a Chinese Windows desktop writes. Headers may be
the English column names or their usual Chinese labels (姓名, 身份证号, 网格编码, ...). Each row is placed
by ``grid_code`` or ``lon``/``lat`` and must lie in the importer's area; references (household_id,
building_id) must exist there; household numbers must be new. Nothing is written unless every row is
good. An Excel workbook (.xlsx) is read too (its first sheet, with openpyxl): its row numbers are the
sheet's own, whole numbers typed as numbers (出生年份, 电话) read as written, dates as YYYY-MM-DD.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from gis.locate import locate
from layers.accounts.scope import Scope
from layers.basedata import privacy as P
from layers.basedata.service import PLACE, Kind, Placed, clean, current_grids, kind_of, writable

MAX_ROWS = 50_000
MAX_LISTED = 200
ALIASES = {"姓名": "name", "名称": "name", "身份证号": "id_number", "身份证号码": "id_number", "电话": "phone",
           "手机": "phone", "联系电话": "phone", "网格编码": "grid_code", "性别": "gender", "出生年份": "birth_year",
           "人员类别": "kind", "类别": "kind", "类型": "kind", "与户主关系": "relation", "户号": "household_no",
           "户主姓名": "head_name", "人数": "members", "户内人数": "members", "经度": "lon", "纬度": "lat",
           "地址": "address", "楼层": "floors", "层数": "floors", "房间": "room", "户id": "household_id",
           "统一社会信用代码": "credit_code", "联系人": "contact", "从业人数": "employees", "单位类型": "unit_type",
           "备注": "note"}


class RowErrors(InvalidInput):
    """The file was refused; ``detail["errors"]`` lists {row, column, reason}."""


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is neither UTF-8 nor GBK text: save the sheet as CSV (UTF-8)")


def cell_text(value: Any) -> str:
    """A workbook cell as the text a CSV of it would hold: whole numbers without ".0", dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def workbook_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    """(row number, cell texts) of an .xlsx workbook's first sheet."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"the file starts like an Excel workbook (.xlsx) but cannot be read as one ({exc}): "
                           "save it again as .xlsx, or as CSV (UTF-8)") from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [cell_text(v) for v in values]
    finally:
        book.close()


def _records(data: bytes) -> Iterator[tuple[int, list[str]]]:
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise InvalidInput("this is an old Excel workbook (.xls): save it as .xlsx, or as CSV (UTF-8)")
    if data[:2] == b"PK":
        return workbook_rows(data)
    return enumerate(csv.reader(io.StringIO(decode(data))), start=1)


def read_rows(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """The header (English names, Chinese labels translated) and the records of a CSV or .xlsx file."""
    records = _records(data)
    try:
        _, names = next(records)
    except StopIteration:
        raise InvalidInput("the file is empty: the first row must name the columns") from None
    while names and not names[-1].strip():  # a sheet's empty columns on the right
        names.pop()
    header = [ALIASES.get(h.strip().lower(), ALIASES.get(h.strip(), h.strip().lower())) for h in names]
    rows = []
    for number, values in records:
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header) and not any(v.strip() for v in values[len(header):]):
            values = values[:len(header)]  # a workbook row reaching into empty columns
        if len(values) != len(header):
            rows.append({"__row": str(number), "__width": str(len(values))})
            continue
        rows.append({"__row": str(number), **dict(zip(header, values, strict=True))})
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"more than {MAX_ROWS:,} rows: split the file")
    return header, rows


def _place_row(session: Session, row: dict[str, str], grids: dict[str, tuple[str, str, str]]) -> Placed:
    lon, lat, code = row.get("lon", "").strip(), row.get("lat", "").strip(), row.get("grid_code", "").strip()
    if lon or lat:
        try:
            x, y = float(lon), float(lat)
        except ValueError:
            raise ValueError("lon/lat: not numbers") from None
        loc = locate(session, x, y)
        if loc.grid_code is None:
            raise ValueError(f"lon/lat: ({x}, {y}) is outside every grid")
        if code and code != loc.grid_code:
            raise ValueError(f"grid_code: the point is in grid {loc.grid_code}, not {code}")
        return Placed(loc.grid_code, loc.village_code or "", loc.town_code or "", loc.district_code or "", x, y)
    if not code:
        raise ValueError("grid_code: required (or lon and lat)")
    if code not in grids:
        raise ValueError(f"grid_code: no current grid {code}")
    return Placed(code, *grids[code])


def _existing(session: Session, table: str, column: str, values: set[Any]) -> dict[Any, str]:
    """For reference checks: value → grid code of the rows that exist."""
    if not values:
        return {}
    rows = session.execute(text(f"SELECT {column}, grid_code FROM {table} WHERE {column} = ANY(:v)"),
                           {"v": list(values)}).all()
    return {r[0]: r[1] for r in rows}


def _references(session: Session, kind: Kind, records: list[tuple[int, dict[str, Any], Placed]],
                errors: list[dict[str, Any]]) -> None:
    refs = {"household_id": "households", "building_id": "buildings"}
    for column, table in refs.items():
        if column not in kind.fields:
            continue
        found = _existing(session, table, "id", {r[column] for _, r, _ in records if column in r})
        for number, record, placed in records:
            if column in record and found.get(record[column]) != placed.grid_code:
                reason = "does not exist" if record[column] not in found else "is in another grid"
                errors.append({"row": number, "column": column, "reason": f"{table[:-1]} {record[column]} {reason}"})
    if kind.name == "households":
        numbers = [r["household_no"] for _, r, _ in records]
        taken = _existing(session, "households", "household_no", set(numbers))
        seen: set[str] = set()
        for number, record, _ in records:
            no = record["household_no"]
            if no in taken or no in seen:
                errors.append({"row": number, "column": "household_no",
                               "reason": f"household {no} already {'registered' if no in taken else 'in this file'}"})
            seen.add(no)


def import_csv(session: Session, scope: Scope, kind_name: str, data: bytes, *,
               now: datetime | None = None) -> dict[str, Any]:
    """All rows or none; raises :class:`RowErrors` listing every problem (row, column, reason)."""
    kind, now = kind_of(kind_name), now or datetime.now(UTC)
    if not scope.allows("write"):
        raise P.NotPermitted(f"the {scope.role} role may not import base data")
    P.check_people(scope, kind.table.name)
    header, rows = read_rows(data)
    if not rows:
        raise InvalidInput("the file has a header but no rows")
    grids = current_grids(session, sorted({r.get("grid_code", "").strip() for r in rows} - {""}))
    errors: list[dict[str, Any]] = []
    records: list[tuple[int, dict[str, Any], Placed]] = []
    for row in rows:
        number = int(row.pop("__row"))
        if "__width" in row:
            errors.append({"row": number, "column": None,
                           "reason": f"{row['__width']} values for {len(header)} columns"})
            continue
        values, problems = clean(kind, row)
        errors += [{"row": number, "column": c, "reason": r} for c, r in problems]
        try:
            placed = _place_row(session, row, grids)
        except ValueError as exc:
            column, _, reason = str(exc).partition(": ")
            errors.append({"row": number, "column": column, "reason": reason})
            continue
        if not writable(scope, placed):
            errors.append({"row": number, "column": "grid_code",
                           "reason": f"grid {placed.grid_code} is outside your area"})
            continue
        if not problems:
            records.append((number, values, placed))
    _references(session, kind, records, errors)
    if errors:
        errors.sort(key=lambda e: (e["row"], e["column"] or ""))
        first = "; ".join(f"row {e['row']} {e['column'] or ''}: {e['reason']}" for e in errors[:3])
        raise RowErrors(f"nothing imported: {len(errors)} problem(s) in {len({e['row'] for e in errors})} row(s) — "
                        f"{first}", detail={"errors": errors[:MAX_LISTED], "total": len(errors)})
    rows_in = [{**record, **dict(zip(PLACE, (p.grid_code, p.village_code, p.town_code, p.district_code),
                                    strict=True)),
               "geom": None if p.lon is None else f"SRID=4326;POINT({p.lon} {p.lat})",
               "captured_by": scope.user, "captured_at": now, "updated_by": scope.user, "updated_at": now}
              for _, record, p in records]
    columns = sorted({k for v in rows_in for k in v})
    session.execute(insert(kind.table), [{c: v.get(c) for c in columns} for v in rows_in])
    return {"kind": kind.name, "imported": len(rows_in)}


def template(kind_name: str) -> bytes:
    """An empty CSV with the kind's columns (required first), UTF-8 with BOM for Excel."""
    kind = kind_of(kind_name)
    return (",".join(["grid_code", "lon", "lat", *kind.required, *kind.optional]) + "\n").encode("utf-8-sig")

