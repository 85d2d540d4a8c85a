"""Point → grid: one point (GET) or a batch (POST: JSON array, GeoJSON, CSV), streamed back."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep
from api.deps import SessionDep
from api.schemas import places as P
from gis import csvsafe
from gis.coords import normalize_crs
from gis.errors import InvalidInput
from gis.locate import locate, locate_table
from layers.accounts.scope import Scope

router = APIRouter(tags=["resolve"])

CHUNK = 20_000
# What a scoped caller does not learn about a point outside its area: the grid and the village/community
# there (code and name). Town and district stay: they are the public frame (GET /areas lists them) and
# tell a call-taker where to forward a report. ``in_scope`` says which answer the caller got.
HIDDEN = ("grid_code", "grid_name", "village_code", "village_name")


def redact(answer: dict, scope: Scope) -> dict:
    """``answer`` (a resolved point) as ``scope`` may see it: outside the caller's area the grid and
    village fields are null and ``in_scope`` is false. The match and distance stay (they say nothing
    about whose grid it is)."""
    seen = scope.city_wide or answer.get("grid_code") is None or scope.sees(
        {}, grid_code=answer.get("grid_code"), village_code=answer.get("village_code"),
        town_code=answer.get("town_code"), district_code=answer.get("district_code"))
    if not seen:
        answer = {**answer, **dict.fromkeys(HIDDEN)}
    answer["in_scope"] = bool(seen)
    return answer


def redact_frame(frame: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """:func:`redact` for a resolved batch (vectorised)."""
    if scope.city_wide:
        return frame
    hide = frame["grid_code"].notna().to_numpy() & ~scope.mask(frame).to_numpy()
    if hide.any():
        frame = frame.copy()
        for col in HIDDEN:
            if col in frame:
                frame[col] = frame[col].astype(object).where(~hide, None)
    frame["in_scope"] = ~hide
    return frame


@router.get("/resolve", response_model=P.Resolved)
def resolve_point(session: SessionDep, scope: ScopeDep, lon: Annotated[float, Query(allow_inf_nan=False)],
                  lat: Annotated[float, Query(allow_inf_nan=False)], crs: str = "EPSG:4326",
                  as_of: datetime | None = None) -> dict:
    """Resolve one point given in ``crs`` (EPSG code, ``gcj02`` or ``bd09``) to its grid and areas."""
    crs = normalize_crs(crs)
    if crs in ("EPSG:4326", "EPSG:4490", "gcj02", "bd09") and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"latitude {lat} / longitude {lon} out of range (±90 / ±180)")
    answer = locate(session, lon, lat, crs=crs, as_of=as_of).as_dict()
    return redact(_finite(answer), scope)


def _from_json(body: object) -> pd.DataFrame:
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        rows = []
        for i, feature in enumerate(body.get("features") or []):
            geometry = (feature or {}).get("geometry") or {}
            coords = geometry.get("coordinates") if geometry.get("type") == "Point" else None
            props = (feature or {}).get("properties") or {}
            ident = feature.get("id", props.get("id", i + 1)) if isinstance(feature, dict) else i + 1
            lon, lat = (coords[0], coords[1]) if isinstance(coords, list) and len(coords) >= 2 else (None, None)
            rows.append({"id": ident, "lon": lon, "lat": lat})
        return pd.DataFrame(rows, columns=["id", "lon", "lat"])
    if isinstance(body, list):
        rows = []
        for i, item in enumerate(body):
            if isinstance(item, dict):
                rows.append({"id": item.get("id", i + 1), "lon": item.get("lon"), "lat": item.get("lat")})
            elif isinstance(item, list | tuple) and len(item) >= 2:
                rows.append({"id": i + 1, "lon": item[0], "lat": item[1]})
            else:
                rows.append({"id": i + 1, "lon": None, "lat": None})
        return pd.DataFrame(rows, columns=["id", "lon", "lat"])
    raise InvalidInput("expected a JSON array of {lon, lat} objects or [lon, lat] pairs, or a GeoJSON "
                       "FeatureCollection of points")


def _plain(value):
    """A JSON-safe scalar: numpy unwrapped; NaN and ±inf (not JSON) → null."""
    value = value.item() if hasattr(value, "item") else value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _finite(answer: dict) -> dict:
    return {k: _plain(v) for k, v in answer.items()}


@router.post("/resolve")
async def resolve_batch(request: Request, session: SessionDep, scope: ScopeDep, crs: str = "EPSG:4326",
                        lon_col: str = "lon", lat_col: str = "lat") -> StreamingResponse:
    """Resolve a batch: a JSON array, a GeoJSON FeatureCollection or a CSV (``text/csv`` body) of up to
    ``ONEMAP_MAX_BATCH`` points. Every input row comes back, in order, with its ``error`` if it has one.
    JSON in → a JSON array streamed out; CSV in → CSV out. The body is read here; parsing and
    resolving run in the thread pool, never on the event loop."""
    limit = request.app.state.settings.max_batch
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    chunks = await run_in_threadpool(_resolve, session, raw, kind, limit, crs, lon_col, lat_col, scope)
    if kind in ("text/csv", "application/csv"):
        return StreamingResponse(_csv_stream(chunks), media_type="text/csv; charset=utf-8")
    return StreamingResponse(_json_stream(chunks), media_type="application/json")


def _resolve(session, raw: bytes, kind: str, limit: int, crs: str, lon_col: str, lat_col: str,
             scope: Scope) -> list[pd.DataFrame]:
    """Parse the body and resolve every point, in chunks of ``CHUNK`` rows."""
    if not raw.strip():
        raise InvalidInput("empty request body: send points as JSON, GeoJSON or CSV")
    if kind in ("text/csv", "application/csv"):
        try:
            frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the CSV could not be read: {exc}") from exc
    else:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"body is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
        except RecursionError as exc:
            raise InvalidInput("body is not usable JSON: nested too deeply") from exc
        frame = _from_json(body)
        lon_col, lat_col = "lon", "lat"
    if len(frame) > limit:
        raise InvalidInput(f"batch of {len(frame)} points is over the limit of {limit}; split it")
    crs = normalize_crs(crs)
    if lon_col not in frame.columns or lat_col not in frame.columns:
        raise InvalidInput(f"CSV needs columns {lon_col!r} and {lat_col!r} (or pass lon_col/lat_col); "
                           f"it has: {', '.join(frame.columns)}")
    return [redact_frame(locate_table(session, frame.iloc[i:i + CHUNK], lon_col=lon_col, lat_col=lat_col, crs=crs,
                                      row_offset=i), scope) for i in range(0, len(frame), CHUNK)]


def _json_stream(chunks):
    yield "["
    first = True
    for chunk in chunks:
        columns = list(chunk.columns)
        for row in chunk.itertuples(index=False):
            item = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
            yield ("" if first else ",") + json.dumps(item, ensure_ascii=False, allow_nan=False)
            first = False
    yield "]"


def _csv_stream(chunks):
    header = True
    for chunk in chunks:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if header:
            writer.writerow(csvsafe.row(chunk.columns))
            header = False
        for row in chunk.itertuples(index=False):
            writer.writerow(csvsafe.row("" if _plain(v) is None else _plain(v) for v in row))
        yield buffer.getvalue()
