"""A minimal Mapbox Vector Tile reader for tests: layers, feature ids, types and properties.

Enough of protobuf's wire format to check what the tile endpoint sends without another dependency.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) for each field; length-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def _value(buf: bytes):
    for number, _wire, v in _fields(buf):
        if number == 1:
            return v.decode()
        if number == 2:
            return struct.unpack("<f", v)[0]
        if number == 3:
            return struct.unpack("<d", v)[0]
        if number in (4, 5):
            return v if v < 2**63 else v - 2**64
        if number == 6:
            return (v >> 1) ^ -(v & 1)
        if number == 7:
            return bool(v)
    return None


def decode(tile: bytes) -> dict[str, list[dict]]:
    """{layer name: [{"id", "type" (1 point, 2 line, 3 polygon), "properties", "geometry" (raw ints)}]}."""
    layers: dict[str, list[dict]] = {}
    for number, _w, raw in _fields(tile):
        if number != 3:
            continue
        name, keys, values, feats = "", [], [], []
        for n, _w2, v in _fields(raw):
            if n == 1:
                name = v.decode()
            elif n == 2:
                feats.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
        layers[name] = [_feature(f, keys, values) for f in feats]
    return layers


def _feature(raw: bytes, keys: list[str], values: list) -> dict:
    out: dict = {"id": None, "type": 0, "properties": {}, "geometry": []}
    for n, _w, v in _fields(raw):
        if n == 1:
            out["id"] = v
        elif n == 2:
            tags = _packed(v)
            out["properties"] = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
        elif n == 3:
            out["type"] = v
        elif n == 4:
            out["geometry"] = _packed(v)
    return out
