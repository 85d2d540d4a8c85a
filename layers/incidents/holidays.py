"""Next year's official holiday schedule (节假日安排), loaded by an admin until chinese-calendar knows it.

Why: the ``chinese_calendar`` package only knows the years the State Council has announced when the
package was released (1.11: 2004-2026). A deadline in a later year must not silently count Monday to
Friday: ``sla.is_workday`` refuses (``CalendarNotCovered``) unless the year's schedule was loaded here.

``onemap holidays load FILE`` reads one of two simple formats and stores the years in the holiday file
(``ONEMAP_HOLIDAYS_FILE``, default ``.onemap/holidays.json``), which every server process re-reads
when it changes. The package wins for the years it knows (its data is the reviewed one).

JSON::

    {"year": 2027, "source": "国务院办公厅关于2027年部分节假日安排的通知",
     "holidays": [{"date": "2027-01-01", "name": "元旦"}, "2027-02-06", ...],
     "workdays": [{"date": "2027-02-20", "name": "春节调休上班"}]}

CSV (UTF-8, header ``date,kind,name``; kind ``holiday``/``休`` or ``workday``/``班``)::

    date,kind,name
    2027-01-01,holiday,元旦
    2027-02-20,workday,春节调休上班

A holiday is a day off even on a weekday; a make-up working day (调休上班) is a weekend day worked;
every other day is a working day Monday to Friday. A file must cover whole years: each year it names
needs at least one holiday, and a date may not be both.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gis.errors import InvalidInput

KINDS = {"holiday": "holiday", "休": "holiday", "假": "holiday", "workday": "workday", "班": "workday"}
RECHECK_S = 1.0  # how often a process looks at the file's modification time


@dataclass
class YearSchedule:
    """One year's days off and make-up working days."""

    year: int
    holidays: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)
    source: str = ""

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def as_json(self) -> dict[str, Any]:
        return {"year": self.year, "source": self.source,
                "holidays": [{"date": d.isoformat(), "name": n} for d, n in sorted(self.holidays.items())],
                "workdays": [{"date": d.isoformat(), "name": n} for d, n in sorted(self.workdays.items())]}


def holidays_file() -> Path:
    explicit = os.environ.get("ONEMAP_HOLIDAYS_FILE")
    if explicit:
        return Path(explicit)
    from gis.settings import database_settings

    return database_settings().data_dir / "holidays.json"


# ----------------------------------------------------------------------------- parsing


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{where}: {value!r} is not a date like 2027-01-01") from None


def _entries(items: Any, where: str) -> list[tuple[date, str]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidInput(f"{where} must be a list of dates")
    out = []
    for i, item in enumerate(items, 1):
        if isinstance(item, dict):
            out.append((_date(item.get("date"), f"{where} #{i}"), str(item.get("name") or "")))
        else:
            out.append((_date(item, f"{where} #{i}"), ""))
    return out


def _from_json(text: str) -> tuple[list[tuple[date, str, str]], str, set[int]]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    docs = body if isinstance(body, list) else [body]
    rows: list[tuple[date, str, str]] = []
    declared: set[int] = set()
    source = ""
    for doc in docs:
        if not isinstance(doc, dict):
            raise InvalidInput('expected an object {"year", "holidays", "workdays"} (or a list of them)')
        if "year" in doc:
            try:
                declared.add(int(doc["year"]))
            except (TypeError, ValueError):
                raise InvalidInput(f"year {doc['year']!r} is not a number") from None
        source = source or str(doc.get("source") or "")
        rows += [(d, "holiday", n) for d, n in _entries(doc.get("holidays"), "holidays")]
        rows += [(d, "workday", n) for d, n in _entries(doc.get("workdays"), "workdays")]
    return rows, source, declared


def _from_csv(text: str) -> list[tuple[date, str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or not {"date", "kind"} <= {f.strip() for f in reader.fieldnames}:
        raise InvalidInput("a CSV needs the header date,kind,name (kind: holiday or workday)")
    rows = []
    for i, row in enumerate(reader, 2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        kind = KINDS.get(row.get("kind", "").lower())
        if kind is None:
            raise InvalidInput(f"line {i}: kind {row.get('kind')!r} must be holiday (休) or workday (班)")
        rows.append((_date(row.get("date"), f"line {i}"), kind, row.get("name", "")))
    return rows


def parse(text: str, *, fmt: str | None = None, source: str = "") -> list[YearSchedule]:
    """Read a schedule (JSON or CSV) into checked years; raises InvalidInput with the reason."""
    fmt = fmt or ("json" if text.lstrip("\ufeff \r\n\t").startswith(("{", "[")) else "csv")
    if fmt == "json":
        rows, named, declared = _from_json(text)
        source = source or named
    else:
        rows, declared = _from_csv(text), set()
    if not rows:
        raise InvalidInput("the schedule lists no dates")
    years: dict[int, YearSchedule] = {}
    seen: dict[date, str] = {}
    for day, kind, name in rows:
        if declared and day.year not in declared:
            raise InvalidInput(f"{day} is outside the year(s) {sorted(declared)} the file declares")
        if day in seen and seen[day] != kind:
            raise InvalidInput(f"{day} is listed both as a holiday and as a make-up working day")
        seen[day] = kind
        if kind == "workday" and day.weekday() < 5:
            raise InvalidInput(f"make-up working day {day} is a weekday already; only weekends are made up")
        ys = years.setdefault(day.year, YearSchedule(day.year, source=source))
        (ys.holidays if kind == "holiday" else ys.workdays)[day] = name
    for year in sorted(declared | set(years)):
        if year not in years or not years[year].holidays:
            raise InvalidInput(f"the schedule for {year} lists no holiday: not a whole year's schedule")
    return [years[y] for y in sorted(years)]


def read_file(path: Path) -> list[YearSchedule]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    fmt = "csv" if path.suffix.lower() == ".csv" else "json" if path.suffix.lower() == ".json" else None
    return parse(text, fmt=fmt, source=f"{path.name}")


# ----------------------------------------------------------------------------- the stored years


def _read_store(path: Path) -> dict[int, YearSchedule]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    out = {}
    for doc in body.get("years", []):
        (ys,) = parse(json.dumps(doc), fmt="json")
        ys.source = str(doc.get("source") or "")
        out[ys.year] = ys
    return out


def store(years: list[YearSchedule], *, path: Path | None = None) -> Path:
    """Add (or replace) these years in the holiday file, atomically (write then rename)."""
    path = path or holidays_file()
    current = _read_store(path)
    for ys in years:
        current[ys.year] = ys
    path.parent.mkdir(parents=True, exist_ok=True)
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    body = {"loaded_at": loaded_at,
            "years": [current[y].as_json() for y in sorted(current)]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    _CACHE.clear()
    return path


class _Cache:
    """The holiday file's years in this process, re-read when the file changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.path: Path | None = None
        self.mtime: float | None = None
        self.checked = 0.0
        self.years: dict[int, YearSchedule] = {}

    def get(self) -> dict[int, YearSchedule]:
        with self.lock:
            now = time.monotonic()
            path = holidays_file()
            if path == self.path and now - self.checked < RECHECK_S:
                return self.years
            self.checked = now
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                mtime = None
            if path != self.path or mtime != self.mtime:
                self.path, self.mtime = path, mtime
                self.years = {} if mtime is None else _read_store(path)
            return self.years


_CACHE = _Cache()


def loaded_years() -> dict[int, YearSchedule]:
    """The years an admin loaded (empty when none)."""
    return _CACHE.get()


def forget() -> None:
    """Drop this process's copy (tests, or after editing the file by hand)."""
    _CACHE.clear()
