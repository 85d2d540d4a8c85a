"""The demo city's base data (人、地、事、物、组织), generated deterministically and loaded with COPY.

Per grid, the counts the registry already carries: ``grids.households`` households (300–500 in a basic
grid) and ``grids.population`` people shared among them (1–7 each, about 2.7 on average). Communities
(村/社区 code part 001–199) and dedicated grids live in six-storey blocks of 24 flats (2 units × 6
floors × 2 doors); villages in one house per household. Each building stands at a random point inside
its grid and is attached to the nearest standard address when that address lies in the same grid.
Every household has its head of household as a resident row (name, gender, birth year, an 18-digit ID
number with a valid GB 11643 check digit, a phone); the other members are counted in ``members`` but
not listed, which keeps the load to about a million rows. Businesses (a dozen or more per community
grid, a few per village grid), the grid's organisations (party branch, residents'/villagers'
committee, some associations) and a handful of key sites (hazardous-chemical plants in the coastal
towns, farm parks) with the cameras and sensors in their grids complete it.

Run by the demo load as the schema owner (``scripts/demo_load.load_demo``) or alone: ``python -m scripts.demo_basedata``.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.db import psycopg_connection
from layers.basedata.service import ID_CHECK, ID_WEIGHTS

log = logging.getLogger("onemap.demo")
SEED = 17
FLATS_PER_BLOCK = 24
CAPTURED_BY = "demo-import"
SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶"
                "阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红玉兰凤云海成林东文斌波辉鹏飞宇浩俊")
MOBILE = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182", "183",
          "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "180", "181", "189")
SHOPS = (("超市", "零售"), ("便利店", "零售"), ("饭店", "餐饮"), ("面馆", "餐饮"), ("五金店", "零售"),
         ("农资店", "零售"), ("药店", "医药"), ("诊所", "医疗"), ("理发店", "生活服务"), ("汽修厂", "修理"),
         ("蔬菜批发部", "批发"), ("物流有限公司", "物流"), ("食品有限公司", "制造"), ("建材店", "零售"),
         ("快递服务站", "物流"), ("幼儿园", "教育"))
WORDS = ("鑫源", "宏达", "兴隆", "金海", "惠民", "鸿运", "福瑞", "祥和", "盛世", "永安", "新兴", "顺发", "华康", "众诚",
         "圣城", "弥河", "渤海", "丰收", "绿野", "农圣")
KEY_SITES = (  # name, kind, the town whose grid holds it (name), or a dedicated grid's name
    ("山东海化集团羊口盐化工厂", "hazchem", "羊口镇"), ("寿光鲁清石化有限公司", "hazchem", "羊口镇"),
    ("羊口渔港危化品仓储区", "hazchem", "羊口镇"), ("侯镇海洋化工园区氯碱装置", "hazchem", "侯镇"),
    ("台头镇精细化工厂", "hazchem", "台头镇"), ("寿光农产品物流园", "farm_park", "寿光农产品物流园专属网格"),
    ("寿光蔬菜高科技示范园", "farm_park", "洛城街道"), ("三元朱村冬暖式大棚园区", "farm_park", "孙家集街道"),
    ("双王城生态农业园", "farm_park", "双王城镇"),
)


def _grids(session: Session, codes: Iterable[str] | None) -> pd.DataFrame:
    sql = ("SELECT g.code, g.kind, g.village_code, g.town_code, g.district_code, coalesce(g.households, 0) AS h, "
           "coalesce(g.population, 0) AS p, g.name, v.name AS village, t.name AS town, ST_AsBinary(g.geom) AS wkb "
           "FROM grids g LEFT JOIN areas v ON v.code = g.village_code AND v.valid_to IS NULL "
           "LEFT JOIN areas t ON t.code = g.town_code AND t.valid_to IS NULL WHERE g.valid_to IS NULL")
    params: dict = {}
    if codes is not None:
        sql += " AND g.code = ANY(:c)"
        params["c"] = list(codes)
    frame = pd.DataFrame(session.execute(text(sql + " ORDER BY g.code"), params).mappings().all())
    frame["geometry"] = shapely.from_wkb([bytes(b) for b in frame.pop("wkb")])
    frame["urban"] = (frame.village_code.str[9:].astype(int) < 200) | (frame.kind == "dedicated")
    return frame


def _points(rng: np.random.Generator, polygon, n: int) -> np.ndarray:
    """``n`` random points inside ``polygon`` (rejection sampling in its bounds, vectorised)."""
    minx, miny, maxx, maxy = polygon.bounds
    shapely.prepare(polygon)
    out = np.empty((0, 2))
    while len(out) < n:
        xy = np.column_stack([rng.uniform(minx, maxx, 2 * n + 8), rng.uniform(miny, maxy, 2 * n + 8)])
        out = np.vstack([out, xy[shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])]])
    return out[:n]


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    sur = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    first = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    second = np.where(rng.random(n) < 0.7, np.array(GIVEN)[rng.integers(0, len(GIVEN), n)], "")
    return np.char.add(np.char.add(sur, first), second)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    prefix = np.array(MOBILE)[rng.integers(0, len(MOBILE), n)]
    return np.char.add(prefix, np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8))


def _id_numbers(rng: np.random.Generator, region: np.ndarray, year: np.ndarray, male: np.ndarray) -> np.ndarray:
    """18-digit ID numbers: region, birth date, sequence (odd for men), GB 11643 check digit."""
    n = len(year)
    month, day = rng.integers(1, 13, n), rng.integers(1, 29, n)
    seq = rng.integers(0, 500, n) * 2 + male.astype(int)
    body = pd.Series(region).str.cat([pd.Series(year.astype(str)), pd.Series(month.astype(str)).str.zfill(2),
                                      pd.Series(day.astype(str)).str.zfill(2), pd.Series(seq.astype(str)).str.zfill(3)])
    digits = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(n, 17) - 48
    check = np.array(list(ID_CHECK))[(digits.astype(int) @ np.array(ID_WEIGHTS)) % 11]
    return (body + pd.Series(check)).to_numpy()


def _copy(session: Session, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame in as CSV written by Arrow (fast, in C++): strings quoted, NULL an empty unquoted
    field, geometry as EWKT text."""
    raw = psycopg_connection(session)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                    pacsv.WriteOptions(include_header=False))
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


@contextmanager
def _bulk(session: Session, table: str, fresh: bool) -> Iterator[None]:
    """Into an empty table, load the way the PostgreSQL manual advises ("Populating a Database"): drop
    the table's foreign keys and secondary indexes, COPY, then create them again from their saved
    definitions — one validating join and one sort each instead of a check and an index insert per row
    (in this transaction; the table is locked until commit). Into a table with rows, or as a role that
    does not own the table (the application's role), COPY as it is."""
    owns = session.scalar(text("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
                               "WHERE oid = CAST(:t AS regclass)"), {"t": table})
    if not fresh or not owns:
        yield
        return
    keys = session.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f'"), {"t": table}).all()
    indexes = session.execute(text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = CAST(:t AS regclass) AND NOT x.indisprimary"), {"t": table}).all()
    for name, _ in keys:
        session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        session.execute(text(f'DROP INDEX "{name}"'))
    yield
    for _, definition in indexes:
        session.execute(text(definition))
    for name, definition in keys:
        session.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))


def _take_ids(session: Session, table: str, n: int) -> np.ndarray:
    """``n`` ids from the table's own sequence (nextval needs only USAGE, which the app role has)."""
    rows = session.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                                "FROM generate_series(1, :n)"), {"n": n}).scalars().all()
    return np.asarray(rows, dtype=np.int64)


def _ewkt(xy: np.ndarray) -> pd.Series:
    return "SRID=4326;POINT(" + pd.Series(xy[:, 0].round(7).astype(str)) + " " + pd.Series(
        xy[:, 1].round(7).astype(str)) + ")"


def _nearest_addresses(session: Session, xy: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The id of each point's nearest standard address when it lies in the same grid, else empty."""
    rows = session.execute(text("SELECT id, grid_code, ST_X(geom), ST_Y(geom) FROM standard_addresses")).all()
    out = np.full(len(xy), None, dtype=object)
    if not rows:
        return out
    ids = np.array([r[0] for r in rows])
    grids = np.array([r[1] for r in rows], dtype=object)
    tree = shapely.STRtree(shapely.points([(r[2], r[3]) for r in rows]))
    _, nearest = tree.query_nearest(shapely.points(xy), return_distance=False, all_matches=False)
    same = grids[nearest] == grid
    out[same] = ids[nearest][same]
    return out


def _columns(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One frame from per-grid dicts of equal-length arrays (concatenated once, not frame by frame)."""
    return pd.DataFrame({k: np.concatenate([np.asarray(p[k], dtype=object if k not in ("x", "y") else float)
                                            for p in parts]) for k in parts[0]})


def _place(g, n: int) -> dict[str, np.ndarray]:
    return {c: np.full(n, getattr(g, c), dtype=object) for c in ("village_code", "town_code", "district_code")} | {
        "grid_code": np.full(n, g.code, dtype=object)}


def _buildings(rng, grids: pd.DataFrame, first_id: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Buildings per grid and, per household, the index of its building (in the frame)."""
    parts, owner = [], []
    offset = 0
    for g in grids.itertuples(index=False):
        if g.h <= 0:
            continue
        n = -(-g.h // FLATS_PER_BLOCK) if g.urban else g.h
        xy = _points(rng, g.geometry, n)
        place = g.village or g.name
        names = np.char.add(np.char.add(place, np.arange(1, n + 1).astype(str)), "号楼" if g.urban else "号")
        parts.append({"name": names, "kind": np.full(n, "residential" if g.urban else "house"),
                      "floors": np.full(n, 6 if g.urban else 1), "address": np.char.add(g.town or "", names),
                      "x": xy[:, 0], "y": xy[:, 1], **_place(g, n)})
        per = np.arange(g.h) // FLATS_PER_BLOCK if g.urban else np.arange(g.h)
        owner.append(per + offset)
        offset += n
    frame = _columns(parts)
    frame.insert(0, "id", np.arange(first_id, first_id + len(frame)))
    return frame, np.concatenate(owner)


def _members(rng: np.random.Generator, grids: pd.DataFrame) -> np.ndarray:
    """People per household: the grid's population shared out, at least one each."""
    parts = []
    for g in grids.itertuples(index=False):
        if g.h > 0:
            extra = max(int(g.p) - int(g.h), 0)
            parts.append(1 + rng.multinomial(extra, np.full(g.h, 1.0 / g.h)))
    return np.concatenate(parts)


def _households(rng, grids: pd.DataFrame, buildings: pd.DataFrame, owner: np.ndarray,
                first_id: int) -> pd.DataFrame:
    live = grids[grids.h > 0]
    n = int(live.h.sum())
    grid_rows = np.repeat(np.arange(len(live)), live.h.to_numpy())
    seq = np.concatenate([np.arange(1, h + 1) for h in live.h])
    b = buildings.iloc[owner]
    flat = np.arange(n) % FLATS_PER_BLOCK
    urban = live.urban.to_numpy()[grid_rows]
    room = np.where(urban, pd.Series(flat // 12 + 1).astype(str) + "单元" + pd.Series(flat % 12 // 2 + 1).astype(str)
                    + "0" + pd.Series(flat % 2 + 1).astype(str), None)
    return pd.DataFrame({
        "id": np.arange(first_id, first_id + n),
        "household_no": (pd.Series(live.code.to_numpy()[grid_rows]) + "-" + pd.Series(seq.astype(str)).str.zfill(4)),
        "head_name": _names(rng, n), "members": _members(rng, live),
        "kind": np.array(["registered", "resident", "floating"])[rng.choice(3, n, p=[0.8, 0.15, 0.05])],
        "phone": _phones(rng, n), "room": room,
        "address": np.where(urban, b.address.to_numpy() + pd.Series(room).fillna("").to_numpy(), b.address.to_numpy()),
        "building_id": b.id.to_numpy(), "address_id": b.address_id.to_numpy(),
        "x": b.x.to_numpy(), "y": b.y.to_numpy(),
        **{c: b[c].to_numpy() for c in ("grid_code", "village_code", "town_code", "district_code")}})


def _residents(rng, households: pd.DataFrame) -> pd.DataFrame:
    n = len(households)
    male = rng.random(n) < 0.55
    year = rng.integers(1945, 1998, n)
    return pd.DataFrame({
        "household_id": households.id, "name": households.head_name, "gender": np.where(male, "男", "女"),
        "birth_year": year, "id_number": _id_numbers(rng, households.district_code.str[:6].to_numpy(), year, male),
        "phone": households.phone, "relation": "户主", "kind": households.kind,
        **{c: households[c] for c in ("grid_code", "village_code", "town_code", "district_code")}})


def _units(rng, grids: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for g in grids.itertuples(index=False):
        shops = int(rng.integers(12, 31)) if g.urban else int(rng.integers(2, 7))
        pick = rng.integers(0, len(SHOPS), shops)
        place = g.village or g.name
        is_community = int(g.village_code[9:]) < 200
        orgs = ([(f"{place}党委" if is_community else f"{place}党支部", "党组织"),
                 (f"{place}居民委员会" if is_community else f"{place}村民委员会", "自治组织")]
                + ([(f"{place}老年人协会", "社会组织")] if rng.random() < 0.4 else []))
        words = np.array(WORDS)[rng.integers(0, len(WORDS), shops)]
        names = [f"寿光市{w}{SHOPS[i][0]}" for w, i in zip(words, pick, strict=True)] + [o[0] for o in orgs]
        n = len(names)
        xy = _points(rng, g.geometry, n)
        letters = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))[rng.integers(0, 31, (shops, 10))]
        parts.append({
            "unit_type": ["business"] * shops + ["organisation"] * len(orgs), "name": names,
            "kind": [SHOPS[i][1] for i in pick] + [o[1] for o in orgs],
            "credit_code": ["91370783" + "".join(row) for row in letters] + [None] * len(orgs),
            "contact": _names(rng, n), "phone": _phones(rng, n), "employees": rng.integers(1, 60, n),
            "address": np.full(n, (g.town or "") + place), "x": xy[:, 0], "y": xy[:, 1], **_place(g, n)})
    return _columns(parts)


def _key_sites(session: Session, rng, grids: pd.DataFrame) -> pd.DataFrame:
    watched = {r[0] for r in session.execute(text(
        "SELECT grid_code FROM cameras UNION SELECT grid_code FROM sensors")).all()}
    rows = []
    for name, kind, where in KEY_SITES:
        match = grids[(grids.name == where) | ((grids.town == where) & (grids.kind == "basic"))]
        if match.code.isin(watched).any():  # a site under watch: a grid with cameras or sensors in it
            match = match[match.code.isin(watched)]
        if match.empty:
            continue
        g = match.iloc[int(rng.integers(0, len(match)))]
        x, y = _points(rng, g.geometry, 1)[0]
        rows.append({"name": name, "kind": kind, "x": x, "y": y, **{c: g[c] for c in (
            "code", "village_code", "town_code", "district_code")}, "note": "重点监管" if kind == "hazchem" else "农业园区在线监管"})
    frame = pd.DataFrame(rows).rename(columns={"code": "grid_code"})
    if frame.empty:
        return frame
    for table, column in (("cameras", "camera_ids"), ("sensors", "sensor_ids")):
        found: dict[str, list[str]] = dict(session.execute(text(
            f"SELECT grid_code, array_agg(id::text ORDER BY id) FROM {table} WHERE grid_code = ANY(:g) GROUP BY 1"),
            {"g": frame.grid_code.tolist()}).all())
        frame[column] = ["{" + ",".join(found.get(g, [])) + "}" for g in frame.grid_code]
    return frame


def _with_geom(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.drop(columns=["x", "y"])
    out["geom"] = _ewkt(frame[["x", "y"]].to_numpy()).to_numpy()
    out["captured_by"] = CAPTURED_BY
    return out


def load_basedata(session: Session, *, grid_codes: Iterable[str] | None = None, seed: int = SEED) -> str:
    """Generate and COPY the base data of the demo grids (all, or ``grid_codes``) in the caller's
    transaction; skipped when households already exist in them."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    grids = _grids(session, grid_codes)
    if grids.empty:
        return "base data: no grids"
    if session.scalar(text("SELECT count(*) FROM households WHERE grid_code = ANY(:g)"), {"g": grids.code.tolist()}):
        return "base data: already loaded"
    session.flush()
    buildings, owner = _buildings(rng, grids, 0)
    buildings["id"] = _take_ids(session, "buildings", len(buildings))
    buildings["address_id"] = _nearest_addresses(session, buildings[["x", "y"]].to_numpy(),
                                                 buildings.grid_code.to_numpy())
    households = _households(rng, grids, buildings, owner, 0)
    households["id"] = _take_ids(session, "households", len(households))
    residents = _residents(rng, households)
    units = _units(rng, grids)
    sites = _key_sites(session, rng, grids)
    log.info("base data generated in %.1f s", time.perf_counter() - started)
    for table, frame in (("buildings", _with_geom(buildings)), ("households", _with_geom(households)),
                         ("residents", residents.assign(captured_by=CAPTURED_BY)), ("base_units", _with_geom(units)),
                         ("key_sites", _with_geom(sites) if not sites.empty else sites)):
        if not frame.empty:
            t = time.perf_counter()
            with _bulk(session, table, fresh=not session.scalar(text(f"SELECT EXISTS (SELECT FROM {table})"))):
                _copy(session, table, frame)
            log.info("COPY %s: %d rows in %.1f s", table, len(frame), time.perf_counter() - t)
    return (f"base data: {len(households):,} households ({int(households.members.sum()):,} people), "
            f"{len(buildings):,} buildings, {int((units.unit_type == 'business').sum()):,} businesses, "
            f"{int((units.unit_type == 'organisation').sum()):,} organisations, {len(sites)} key sites "
            f"in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    from gis.db import session_scope

    with session_scope() as s:
        print(load_basedata(s))
