"""Shapefile parts and the text encoding of their DBF attributes (GBK, UTF-8, GB18030 ...).

Planners' shapefiles often come without a .cpg, or with a wrong one, and with field names cut mid-
character by the DBF's 10-byte limit. Here: the checks that all parts are present and the .shp is not
truncated (:func:`check_shapefile`), choosing the codec from ``--encoding``, the .cpg or the bytes
themselves (:func:`shapefile_encoding`, :class:`DbfLayout` reads the header without a driver), and a
patched copy whose field names decode (:func:`with_whole_names`).
"""

from __future__ import annotations

import codecs
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from gis.errors import InvalidInput
from gis.read_result import Notes

_CODEPAGES = {"65001": "utf-8", "936": "gbk", "54936": "gb18030", "20936": "gb2312", "950": "big5"}
# UTF-8 first: GB18030 would accept most UTF-8 byte runs, as mojibake
DETECT_ORDER = ("utf-8", "gb18030")
_CHUNK_RECORDS = 65536
_CUT_REASONS = {"unexpected end of data", "incomplete multibyte sequence"}


def _sidecar(shp: Path, ext: str) -> Path | None:
    """The .dbf/.shx/.prj/.cpg next to ``shp``, whatever the case of its extension."""
    for candidate in (shp.with_suffix(ext), shp.with_suffix(ext.upper())):
        if candidate.exists():
            return candidate
    return None


def check_shapefile(shp: Path, max_bytes: int) -> Path:
    """Refuse missing parts and truncated .shp files: GDAL reads those as null geometries, silently."""
    missing = [ext for ext in (".shx", ".dbf") if _sidecar(shp, ext) is None]
    if missing:
        raise InvalidInput(
            f"{shp.name} comes without its {' and '.join(missing)} file: give all parts"
        )
    check_size(shp, max_bytes, _sidecar(shp, ".dbf"))
    with open(shp, "rb") as f:
        header = f.read(100)
    size = shp.stat().st_size
    if len(header) < 100 or struct.unpack(">i", header[:4])[0] != 9994:
        raise InvalidInput(f"{shp.name} is not a shapefile (bad header)")
    declared = struct.unpack(">i", header[24:28])[0] * 2
    if declared != size:
        raise InvalidInput(
            f"{shp.name} is truncated or corrupt: its header says {declared:,} bytes, the file has {size:,}"
        )
    return shp


def check_size(first: Path, max_bytes: int, *others: Path | None) -> None:
    total = sum(p.stat().st_size for p in (first, *others) if p is not None)
    if total > max_bytes:
        raise InvalidInput(
            f"{first.name}: {total:,} bytes, above the import limit of {max_bytes:,}"
        )


def shapefile_encoding(shp: Path, explicit: str | None, notes: Notes | None = None) -> str:
    """Choose the codec for the DBF text: explicit, else the .cpg, else detected from the bytes.

    Every choice is checked against the bytes, so a wrong guess is refused instead of read as mojibake.
    """
    notes = notes or Notes()
    layout = DbfLayout.read(_sidecar(shp, ".dbf"))
    if explicit:
        codec = python_codec(explicit)
        if codec is None:
            raise InvalidInput(f"unknown encoding {explicit!r}: try UTF-8, GBK or GB18030")
        _require_decodes(layout, codec, shp.name)
        return codec
    cpg = _sidecar(shp, ".cpg")
    if cpg is not None:
        declared = cpg.read_text(encoding="ascii", errors="replace").strip()
        codec = python_codec(declared)
        if codec is not None and layout.problem(codec) is None:
            return codec
        notes.add(
            f"{shp.name}: the .cpg says {declared!r} but the attributes do not decode so; detecting"
        )
    codec = detect_encoding(layout, shp.name)
    if cpg is None:
        notes.add(f"{shp.name}: no .cpg; attribute text detected as {codec}")
    return codec


def python_codec(name: str) -> str | None:
    """Map .cpg spellings ("UTF-8", "GBK", "936", "ANSI 936", "CP936") to a Python codec name."""
    text = name.strip().upper().removeprefix("ANSI").strip().removeprefix("CP").strip()
    text = _CODEPAGES.get(text, f"cp{text}" if text.isdigit() else name.strip())
    try:
        return codecs.lookup(text).name
    except LookupError:
        return None


def detect_encoding(layout: DbfLayout, name: str) -> str:
    """UTF-8 if every text value decodes strictly as UTF-8, else GB18030 (⊇ GBK, GB2312), else refuse."""
    problems = []
    for codec in DETECT_ORDER:
        problem = layout.problem(codec)
        if problem is None:
            return codec
        problems.append(f"{codec}: {problem}")
    raise InvalidInput(
        f"{name}: cannot tell the text encoding of the attributes (no .cpg, and neither UTF-8 nor "
        f"GB18030 fits: {'; '.join(problems)}); pass the encoding (--encoding)"
    )


def _require_decodes(layout: DbfLayout, codec: str, name: str) -> None:
    problem = layout.problem(codec)
    if problem is not None:
        raise InvalidInput(
            f"{name}: the attributes do not decode as {codec} ({problem}); check --encoding"
        )


@dataclass(frozen=True)
class DbfLayout:
    """The parts of a dBASE header needed to find every text value without a driver."""

    path: Path
    n_records: int
    header_len: int
    record_len: int
    names: tuple[bytes, ...]
    text_fields: tuple[tuple[bytes, int, int], ...]  # (raw name, offset in record, width)

    @classmethod
    def read(cls, path: Path | None) -> DbfLayout:
        if path is None:
            raise InvalidInput("shapefile without its .dbf file")
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 32:
                raise InvalidInput(f"{path.name} is truncated (no dBASE header)")
            n, header_len, record_len = struct.unpack("<IHH", head[4:12])
            descriptors = f.read(max(header_len - 32, 0))
        names, text, offset = [], [], 1  # byte 0 of each record is the deletion flag
        for start in range(0, len(descriptors) - 31, 32):
            desc = descriptors[start : start + 32]
            if desc[0] == 0x0D:
                break
            raw_name, kind, width = desc[:11].split(b"\0")[0], chr(desc[11]), desc[16]
            names.append(raw_name)
            if kind == "C":
                text.append((raw_name, offset, width))
            offset += width
        return cls(path, n, header_len, record_len, tuple(names), tuple(text))

    def problem(self, codec: str) -> str | None:
        """Why the field names or text values do not decode strictly with ``codec`` (None: they do)."""
        for raw in self.names:
            try:
                _decode_name(raw, codec)
            except UnicodeDecodeError:
                return f"field name {raw!r}"
        for raw_name, width, records, column in self._text_columns():
            try:
                column.decode(codec)
            except UnicodeDecodeError as exc:
                record = int(records[exc.start // width]) + 1
                return f"record {record}, field {raw_name.decode(codec, errors='replace')!r}"
        return None

    def _text_columns(self) -> Iterator[tuple[bytes, int, np.ndarray, bytes]]:
        """Each text field's values, chunk by chunk, as one byte string (deleted records left out).

        Yields (raw name, width, the 0-based record numbers in the chunk, the bytes).
        """
        if not self.text_fields or self.record_len == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(self.header_len)
            for first in range(0, self.n_records, _CHUNK_RECORDS):
                count = min(_CHUNK_RECORDS, self.n_records - first)
                raw = f.read(count * self.record_len)
                if len(raw) < self.record_len:
                    return  # the header promised more records than the file holds
                usable = len(raw) // self.record_len * self.record_len
                rows = np.frombuffer(raw[:usable], dtype=np.uint8).reshape(-1, self.record_len)
                live = np.flatnonzero(rows[:, 0] != 0x2A)
                for raw_name, offset, width in self.text_fields:
                    column = np.ascontiguousarray(rows[live, offset : offset + width]).tobytes()
                    yield raw_name, width, first + live, column


def _decode_name(raw: bytes, codec: str) -> str:
    """Field names are 10 bytes at most; writers cut long names mid-character, so forgive a cut tail."""
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        cut = exc.end == len(raw) and exc.reason in _CUT_REASONS
        if not cut:
            raise
        return raw[: exc.start].decode(codec)


def with_whole_names(shp: Path, codec: str, stack: ExitStack, notes: Notes) -> Path:
    """A copy of the shapefile whose DBF field names no longer end in half a UTF-8 character.

    GDAL and others cut names to the DBF's 10 bytes, so 网格编码 (12 bytes) becomes 网格编 plus one
    stray byte, which no reader can decode. Only the header of a copy is patched; the original stays.
    """
    layout = DbfLayout.read(_sidecar(shp, ".dbf"))
    fixes = {i: _decode_name(raw, codec).encode(codec) for i, raw in enumerate(layout.names)}
    fixes = {i: fixed for i, fixed in fixes.items() if fixed != layout.names[i]}
    if not fixes:
        return shp
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="onemap-dbf-")))
    for part in shp.parent.glob(glob_escape(shp.stem) + ".*"):
        if part.suffix.lower() != ".dbf":
            _link_or_copy(part, folder / part.name)
    copy = folder / f"{shp.stem}.dbf"
    shutil.copyfile(layout.path, copy)
    with open(copy, "r+b") as f:
        for i, fixed in fixes.items():
            f.seek(32 + 32 * i)
            f.write(fixed.ljust(11, b"\0"))
            notes.add(
                f"{shp.name}: field name {layout.names[i]!r} was cut mid-character; read as {fixed.decode(codec)!r}"
            )
    return folder / shp.name


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, target)
