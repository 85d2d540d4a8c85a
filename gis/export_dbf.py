"""DBF attributes of an exported shapefile: encodings, 10-byte field names, column types, text cuts.

* Text in UTF-8 (default; .cpg ``UTF-8``) or GBK (.cpg ``936`` and the DBF language driver byte 0x4D,
  the code page ArcGIS and GDAL both recognise) (:data:`ENCODINGS`).
* A character the chosen encoding cannot hold (an emoji, a rare 生僻字 outside GBK) is an error naming
  the layer, record, key and field — never a silent ``?``: export with ``encoding=utf-8`` instead.
* DBF field names hold at most 10 BYTES in the file's encoding (a Chinese character is 3 bytes in
  UTF-8, 2 in GBK). :func:`dbf_field_names` maps each full name to a short one: kept when it fits,
  otherwise cut to whole characters within 10 bytes; a name that then clashes (DBF names compare
  case-insensitively) is cut further and given ``_1``, ``_2``... in column order.
* A date-time column becomes a DBF date (D, the local date in Asia/Shanghai) plus a text column
  ``<name>_time`` with the full local ISO 8601 time, because a D field cannot hold hours.
* Text longer than 254 bytes is cut at a character boundary; every cut is recorded (:class:`Cuts`)
  for ``truncated.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gis.errors import InvalidInput
from gis.export_values import is_date, is_datetime, iso_local, local_times, plain, texts

# encoding → (GDAL name, .cpg text, DBF language driver id)
ENCODINGS = {"utf-8": ("UTF-8", "UTF-8", 0x00), "gbk": ("GBK", "936", 0x4D)}
DBF_NAME_BYTES = 10
DBF_TEXT_BYTES = 254


def check_encoding(encoding: str | None) -> str:
    text = (encoding or "utf-8").strip().lower().replace("_", "-")
    text = {"utf8": "utf-8", "cp936": "gbk", "936": "gbk"}.get(text, text)
    if text not in ENCODINGS:
        raise InvalidInput(f"unknown shapefile encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    return text


def fit_text(text: str, encoding: str, limit: int = DBF_TEXT_BYTES) -> tuple[str, int]:
    """``text`` cut to whole characters within ``limit`` bytes, and its full length in bytes."""
    raw = text.encode(encoding)
    if len(raw) <= limit:
        return text, len(raw)
    return raw[:limit].decode(encoding, errors="ignore"), len(raw)


def _cut(name: str, encoding: str, limit: int) -> str:
    out = ""
    for char in name:
        if len((out + char).encode(encoding)) > limit:
            break
        out += char
    return out


def dbf_field_names(columns: Sequence[str], encoding: str = "utf-8") -> dict[str, str]:
    """Full column name → DBF name of at most 10 bytes in ``encoding``, unique ignoring case.

    Deterministic (the same columns always get the same names) so analysts can rely on them month
    after month; see the module docstring for the rule.
    """
    codec = check_encoding(encoding)
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    for name in columns:
        _encodable_name(name, codec)
        short = _cut(name, codec, DBF_NAME_BYTES) or "field"
        n = 0
        while short.upper() in taken:
            n += 1
            suffix = f"_{n}"
            short = _cut(name, codec, DBF_NAME_BYTES - len(suffix)) + suffix
        taken.add(short.upper())
        mapping[name] = short
    return mapping


def _encodable_name(name: str, codec: str) -> None:
    try:
        name.encode(codec)
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"field name {name!r} cannot be written in {codec.upper()} "
                           f"(character {name[exc.start]!r}); export with encoding=utf-8") from exc


# ------------------------------------------------------------------------------ DBF columns


@dataclass
class DbfColumn:
    full: str
    values: np.ndarray
    mask: np.ndarray | None = None


@dataclass
class Cuts:
    """Text cut to fit a DBF field, to be listed in truncated.csv."""

    rows: list[tuple] = field(default_factory=list)


def dbf_columns(frame: pd.DataFrame, codec: str) -> list[DbfColumn]:
    """Each attribute column as an array GDAL writes into the DBF type it should have."""
    columns: list[DbfColumn] = []
    for name in frame.columns:
        values = frame[name]
        if is_datetime(values):
            local = local_times(values)
            days = local.dt.tz_localize(None).values.astype("datetime64[D]")
            columns += [DbfColumn(name, days), DbfColumn(f"{name}_time", iso_local(local))]
        elif is_date(values):
            columns.append(DbfColumn(name, pd.to_datetime(values).values.astype("datetime64[D]")))
        else:
            columns.append(_number_or_text(name, values))
    return columns


def _number_or_text(name: str, values: pd.Series) -> DbfColumn:
    if pd.api.types.is_bool_dtype(values) and values.dtype != object:
        return DbfColumn(name, values.to_numpy(dtype="int32", na_value=0), _mask(values))
    if pd.api.types.is_integer_dtype(values):
        return DbfColumn(name, values.to_numpy(dtype="int64", na_value=0), _mask(values))
    if pd.api.types.is_float_dtype(values):
        return DbfColumn(name, values.to_numpy(dtype="float64", na_value=np.nan))
    sample = values.dropna()
    if len(sample) and all(isinstance(v, (bool, np.bool_)) for v in sample):
        return DbfColumn(name, values.map(lambda v: int(v) if v is not None else 0).to_numpy("int32"),
                       _mask(values))
    if len(sample) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sample):
        return DbfColumn(name, values.fillna(0).to_numpy(dtype="int64"), _mask(values))
    if len(sample) and all(isinstance(v, (float, int, np.number)) for v in sample):
        return DbfColumn(name, values.to_numpy(dtype="float64", na_value=np.nan))
    return DbfColumn(name, texts(values))


def _mask(values: pd.Series) -> np.ndarray | None:
    mask = values.isna().to_numpy()
    return mask if mask.any() else None


def fit_texts(column: DbfColumn, codec: str, where: Where, cuts: Cuts) -> None:
    """Check every text value can be encoded and cut the long ones, recording each cut.

    One encode of the whole column answers "can GBK hold all of it" at C speed; only on failure is
    the column walked to name the record. Only strings long enough to pass 254 bytes are measured.
    """
    values = column.values
    if values.dtype != object:
        return
    present = [v for v in values if v is not None]
    if codec != "utf-8":
        try:
            "\x00".join(present).encode(codec)
        except UnicodeEncodeError:
            _name_unencodable(column, codec, where)
    lengths = pd.Series(values, dtype=object).str.len().fillna(0).to_numpy()
    widest = 4 if codec == "utf-8" else 2  # bytes per character at most
    for i in np.flatnonzero(lengths > DBF_TEXT_BYTES // widest):
        text = values[i]
        cut, size = fit_text(text, codec)
        if cut != text:
            values[i] = cut
            cuts.rows.append((where.layer, where.file, where.offset + int(i), where.key_of(int(i)),
                              column.full, size, text))


def _name_unencodable(column: DbfColumn, codec: str, where: Where) -> None:
    for i, text in enumerate(column.values):
        if text is None:
            continue
        try:
            text.encode(codec)
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{where.describe(i)}, field {column.full!r}: character "
                               f"{text[exc.start]!r} cannot be written in {codec.upper()}; "
                               "export with encoding=utf-8") from exc


@dataclass
class Where:
    """Names a record in messages: layer, file, FID, and its key value when the layer has one."""

    layer: str
    file: str
    offset: int
    keys: np.ndarray | None
    key: str | None

    def key_of(self, i: int) -> str:
        return "" if self.keys is None else str(plain(self.keys[i]))

    def describe(self, i: int) -> str:
        text = f"layer {self.layer!r}, record {self.offset + i + 1} (FID {self.offset + i}"
        if self.keys is not None:
            text += f", {self.key} {self.key_of(i)}"
        return text + ")"
