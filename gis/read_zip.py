"""Unpacking an uploaded zip safely, and finding the one boundary file in it.

Zips made on Chinese Windows carry GBK member names without the UTF-8 flag; archives from strangers may
hold absolute paths, ``..``, symbolic links, encrypted members or bombs. :func:`extract_zip` refuses
all of those with a message naming the archive, and :func:`pick_member` chooses the file to read.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from gis.errors import InvalidInput
from gis.read_dbf import DETECT_ORDER
from gis.read_result import DRIVERS, MAX_BYTES

MAX_RATIO = 100  # uncompressed / compressed; legitimate DBFs with wide text fields reach ~40
RATIO_FLOOR = 1024 * 1024  # members smaller than this cannot bomb anything, whatever their ratio


def extract_zip(archive: Path, dest: Path, *, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Extract ``archive`` into ``dest`` after refusing unsafe names and bombs; return the files.

    The header sizes are checked first (cheap) and then enforced while copying, because a crafted
    archive can declare small sizes and inflate to far more.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{archive.name} is not a readable zip archive ({exc})") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if not members:
            raise InvalidInput(f"{archive.name} is an empty zip archive")
        names = [_safe_member_name(m, archive.name) for m in members]
        _check_bomb(members, archive.name, max_bytes)
        budget = [max_bytes]
        try:
            return [
                _extract_member(zf, m, dest / n, budget, archive.name)
                for m, n in zip(members, names, strict=True)
            ]
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidInput(f"{archive.name} is corrupt ({exc})") from exc
        except NotImplementedError as exc:
            raise InvalidInput(
                f"{archive.name} uses a compression method that cannot be read ({exc}); "
                "zip it again with ordinary deflate"
            ) from exc


def _member_name(info: zipfile.ZipInfo) -> str:
    """Zips made on Chinese Windows store GBK names without the UTF-8 flag; Python reads them as cp437."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    for codec in DETECT_ORDER:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return name


def _safe_member_name(info: zipfile.ZipInfo, archive: str) -> PurePosixPath:
    name = _member_name(info).replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise InvalidInput(
            f"{archive}: refused, member {name!r} would be written outside the folder"
        )
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise InvalidInput(f"{archive}: refused, member {name!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise InvalidInput(
            f"{archive}: member {name!r} is encrypted; unzip it yourself and give the .shp"
        )
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def _check_bomb(members: list[zipfile.ZipInfo], archive: str, max_bytes: int) -> None:
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise InvalidInput(
            f"{archive}: refused, it would unpack to {total:,} bytes, above the limit of {max_bytes:,}"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise InvalidInput(
                f"{archive}: refused, member {m.filename!r} is compressed {ratio:.0f}:1 "
                f"(limit {MAX_RATIO}:1), which is how zip bombs look"
            )


def _extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int], archive: str
) -> Path:
    """Copy one member in chunks, stopping as soon as it exceeds its declared size or the budget."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while chunk := src.read(1024 * 1024):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > info.file_size or budget[0] < 0:
                raise InvalidInput(
                    f"{archive}: refused, member {info.filename!r} inflates beyond its declared size"
                )
            dst.write(chunk)
    return target


def pick_member(
    files: list[Path], root: Path, layer: str | None, archive: str
) -> tuple[Path, str | None]:
    """Find the one readable file in an unpacked zip; ``layer`` names it when there are several."""
    candidates = [
        f
        for f in files
        if f.suffix.lower() in DRIVERS and "__MACOSX" not in f.parts and not f.name.startswith("._")
    ]
    shapefiles = [f for f in candidates if f.suffix.lower() == ".shp"]
    candidates = shapefiles or candidates
    if not candidates:
        raise InvalidInput(f"{archive} holds no .shp (nor .gpkg/.geojson) file")
    labels = [f.relative_to(root).as_posix() for f in candidates]
    if len(candidates) == 1:
        only = candidates[0]
        if (
            layer is not None
            and only.suffix.lower() == ".shp"
            and layer not in (only.stem, labels[0])
        ):
            raise InvalidInput(f"{archive}: no layer {layer!r}; it holds {labels[0]!r}")
        return only, (layer if only.suffix.lower() != ".shp" else None)
    matches = [f for f, label in zip(candidates, labels, strict=True) if layer in (f.stem, label)]
    if layer is None or len(matches) != 1:
        what = "several" if layer is None else f"no single match for layer {layer!r} among"
        raise InvalidInput(
            f"{archive}: {what} layers: {', '.join(labels)}; choose one with layer (--layer)"
        )
    return matches[0], None
