"""What an export is given and gives back: layers as Sources of chunks, and a Summary.

Every writer accepts a :class:`Source`, a list of them, or a plain ``{name: frame-or-chunks}`` mapping
(:func:`sources`). A layer's rows come as one GeoDataFrame or as an iterator of chunks
(:func:`iter_chunks`), so a year of tickets never sits in memory; :func:`counted` counts rows as they
pass. What was written comes back as a :class:`Summary`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias

import geopandas as gpd

from gis.errors import InvalidInput

Chunks: TypeAlias = gpd.GeoDataFrame | Iterable[gpd.GeoDataFrame]


@dataclass(frozen=True)
class Source:
    """One layer to write: its chunks plus what the files should say about it."""

    name: str
    chunks: Chunks
    labels: Mapping[str, str] = field(default_factory=dict)  # column → Chinese label (fields.csv)
    key: str | None = None  # the column that identifies a record in error messages and truncated.csv
    geometry_type: str | None = None  # schema of an empty layer, e.g. "MultiPolygon"


@dataclass
class Summary:
    """What an export wrote."""

    format: str
    crs: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    truncated: int = 0


def sources(layers: Mapping[str, Chunks] | Sequence[Source] | Source) -> list[Source]:
    """Accept a Source, a list of them, or a plain {name: frame-or-chunks} mapping."""
    if isinstance(layers, Source):
        return [layers]
    if isinstance(layers, Mapping):
        return [Source(name, chunks) for name, chunks in layers.items()]
    return list(layers)


def iter_chunks(chunks: Chunks) -> Iterator[gpd.GeoDataFrame]:
    """A frame is one chunk; anything else is iterated (a generator is consumed once)."""
    if isinstance(chunks, gpd.GeoDataFrame):
        yield chunks
    else:
        yield from iter(chunks)


def counted(source: Source) -> tuple[Source, list[int]]:
    """The same source whose chunks add their row count to the returned one-item list."""
    count = [0]

    def chunks() -> Iterator[gpd.GeoDataFrame]:
        for chunk in iter_chunks(source.chunks):
            count[0] += len(chunk)
            yield chunk
    return replace(source, chunks=chunks()), count


def one_layer(layers: Mapping[str, Chunks] | Sequence[Source] | Source, fmt: str) -> list[Source]:
    found = sources(layers)
    if len(found) != 1:
        raise InvalidInput(f"{fmt} holds one layer; got {len(found)} ({', '.join(s.name for s in found)}): "
                           "use format=gpkg or shp for several layers in one download")
    return found
