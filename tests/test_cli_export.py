"""`onemap export`, `onemap report` and `onemap bench export` end to end on a scratch database."""

from __future__ import annotations

import io
import zipfile

import psycopg
import pyogrio
import shapefile
from typer.testing import CliRunner

from scripts.bench_export import chunks, measure
from scripts.cli import app
from tests import registry_city as city

runner = CliRunner()


def _load_city(tmp_path, url: str) -> None:
    areas, grids = tmp_path / "areas.geojson", tmp_path / "grids.geojson"
    city.areas().to_file(areas, driver="GeoJSON")
    city.grids().to_file(grids, driver="GeoJSON")
    assert runner.invoke(app, ["areas", "import", str(areas)]).exit_code == 0
    assert runner.invoke(app, ["grids", "import", str(grids)]).exit_code == 0
    # The reports below cover November 2026: the city's boundaries must have been in force then, not
    # only since this test imported them (a report draws the grids valid at the end of its period).
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE areas SET valid_from = '2026-01-01T00:00+08:00'")
        conn.execute("UPDATE grids SET valid_from = '2026-01-01T00:00+08:00'")


def test_export_and_report_commands(cli_env, tmp_path):
    _load_city(tmp_path, cli_env)
    out = tmp_path / "g.zip"
    done = runner.invoke(app, ["export", "grids", "--format", "shp", "--encoding", "gbk", "--crs", "EPSG:4528",
                               "--area", "370783001001", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "grids: 2" in done.output and "EPSG:4528" in done.output
    archive = zipfile.ZipFile(out)
    reader = shapefile.Reader(shp=io.BytesIO(archive.read("grids.shp")), dbf=io.BytesIO(archive.read("grids.dbf")),
                              shx=io.BytesIO(archive.read("grids.shx")), encoding="gbk")
    assert [r["name"] for r in reader.records()] == ["东关社区第1网格", "东关社区第2网格"]
    gpkg = tmp_path / "all.gpkg"
    done = runner.invoke(app, ["export", "grids,villages", "-f", "gpkg", "--names", "zh", "-o", str(gpkg)])
    assert done.exit_code == 0, done.output
    assert sorted(row[0] for row in pyogrio.list_layers(gpkg)) == ["村社区", "网格"]
    html = tmp_path / "r.html"
    done = runner.invoke(app, ["report", "--area", "370783001000", "--from", "2026-11-01", "--to", "2026-12-01",
                               "--out", str(html)])
    assert done.exit_code == 0, done.output
    assert "网格数 3" in done.output and "圣城街道" in html.read_text(encoding="utf-8")


def test_export_command_errors_are_one_line(cli_env, tmp_path):
    _load_city(tmp_path, cli_env)
    for args, needle in ((["export", "roads"], "known layers"),
                         (["export", "grids", "--area", "370783002000"], "no area with code"),
                         (["export", "grids", "--from", "2026-12-01", "--to", "2026-11-01"], "reversed"),
                         (["export", "grids", "--from", "soon"], "not a date"),
                         (["report", "--area", "370783002000"], "no area with code")):
        done = runner.invoke(app, args)
        assert done.exit_code == 1 and needle in done.output and "Traceback" not in done.output


def test_bench_export_measures_both_writers():
    assert sum(len(c) for c in chunks(25_000)) == 25_000
    ours, base = measure("onemap", "csv", 2_000), measure("baseline", "csv", 2_000)
    assert ours["bytes"] > 100_000 and base["bytes"] > 100_000
    assert ours["seconds"] > 0 and ours["peak_mb"] >= ours["idle_mb"]
