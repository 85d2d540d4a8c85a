"""The `onemap` command line end to end, on a scratch database it commits to."""

import csv

import geopandas as gpd
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from scripts.cli import app
from tests import registry_city as city

runner = CliRunner()


def _count(url, table="grids"):
    eng = create_engine(url)
    with eng.connect() as conn:
        n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    eng.dispose()
    return n


def _areas(tmp_path):
    path = tmp_path / "areas.geojson"
    city.areas().to_file(path, driver="GeoJSON")
    return path


def _gbk_shapefile(tmp_path, frame):
    """Grids in CGCS2000 GK zone 40 with Chinese field names, GBK DBF and no .cpg (as old ArcGIS writes)."""
    out = frame.rename(columns={"code": "网格编码", "name": "网格名称"}).to_crs(4528)
    path = tmp_path / "grids.shp"
    out.to_file(path, encoding="GBK", engine="pyogrio")
    (tmp_path / "grids.cpg").unlink(missing_ok=True)
    return path


def test_import_gbk_gauss_kruger_shapefile(cli_env, tmp_path):
    assert runner.invoke(app, ["areas", "import", str(_areas(tmp_path))]).exit_code == 0
    shp = _gbk_shapefile(tmp_path, city.grids())
    assert b"\xb6\xab\xb9\xd8" in (tmp_path / "grids.dbf").read_bytes()  # 东关 in GBK
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码", "--field",
                                 "name=网格名称", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would import 3 grids" in result.output and _count(cli_env) == 0
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码", "--field", "name=网格名称"])
    assert result.exit_code == 0, result.output
    eng = create_engine(cli_env)
    stored = gpd.read_postgis("SELECT code, name, geom FROM grids ORDER BY code", eng, geom_col="geom")
    eng.dispose()
    assert list(stored["name"]) == ["东关社区第1网格", "东关社区第2网格", "西关社区第1网格"]
    source = city.grids().to_crs(4528).set_index("code").geometry
    back = stored.set_index("code").geometry.to_crs(4528)
    assert max(source[c].hausdorff_distance(back[c]) for c in source.index) < 0.5
    result = runner.invoke(app, ["grids", "validate"])
    assert result.exit_code == 0 and "ok" in result.output.lower()


def test_refused_import_leaves_database_unchanged(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    bad = city.grids(**{"370783001001002": ("南", city.rect(0, 0, 500, 320))})
    path = tmp_path / "overlap.geojson"
    bad.to_file(path, driver="GeoJSON")
    before = _count(cli_env, "grid_edits")
    result = runner.invoke(app, ["grids", "import", str(path)])
    assert result.exit_code == 2 and "overlap" in result.output
    assert _count(cli_env) == 0 and _count(cli_env, "grid_edits") == before


def test_import_refusals_are_one_line(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    shp = _gbk_shapefile(tmp_path, city.grids())
    (tmp_path / "grids.prj").unlink()
    result = runner.invoke(app, ["grids", "import", str(shp), "--field", "code=网格编码"])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["grids", "import", str(shp), "--crs", "EPSG:999999"])
    assert result.exit_code == 1 and "EPSG:999999" in result.output
    notjson = tmp_path / "bad.geojson"
    notjson.write_text("{ this is not json", encoding="utf-8")
    result = runner.invoke(app, ["grids", "import", str(notjson)])
    assert result.exit_code == 1 and "JSON" in result.output
    assert _count(cli_env) == 0


def test_resolve_csv(cli_env, tmp_path):
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    path = tmp_path / "g.geojson"
    city.grids().to_file(path, driver="GeoJSON")
    assert runner.invoke(app, ["grids", "import", str(path)]).exit_code == 0
    p = city.grids().geometry.iloc[2].representative_point()
    source = tmp_path / "in.csv"
    source.write_text(f"名称,x,y\n甲,{p.x},{p.y}\n乙,bad,36.9\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = runner.invoke(app, ["resolve", str(source), str(target), "--lon-col", "x", "--lat-col", "y"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open(encoding="utf-8-sig")))
    assert [r["名称"] for r in rows] == ["甲", "乙"]
    assert rows[0]["grid_code"] == "370783001002001" and rows[0]["town_name"] == "圣城街道"
    assert rows[1]["grid_code"] == "" and "not a number" in rows[1]["error"]
    result = runner.invoke(app, ["resolve", str(source), str(target), "--lon-col", "lng"])
    assert result.exit_code == 1 and "column 'lng', 'lat' not found" in result.output


def test_resolve_snap_m(cli_env, tmp_path):
    """A point 30 m south of the city: snapped by default (50 m), outside with --snap-m 0 or 20."""
    runner.invoke(app, ["areas", "import", str(_areas(tmp_path))])
    path = tmp_path / "g.geojson"
    city.grids().to_file(path, driver="GeoJSON")
    assert runner.invoke(app, ["grids", "import", str(path)]).exit_code == 0
    source = tmp_path / "in.csv"
    source.write_text(f"x,y\n{city.X0 + 250},{city.Y0 - 30}\n", encoding="utf-8")
    target = tmp_path / "out.csv"

    def run(*extra):
        result = runner.invoke(app, ["resolve", str(source), str(target), "--lon-col", "x", "--lat-col", "y",
                                     "--crs", "EPSG:4528", *extra])
        assert result.exit_code == 0, result.output
        return next(csv.DictReader(target.open(encoding="utf-8-sig")))

    row = run()
    assert row["match"] == "snapped" and row["grid_code"] == "370783001001002"
    assert abs(float(row["distance_m"]) - 30) < 0.5
    assert run("--snap-m", "0")["match"] == "outside"
    assert run("--snap-m", "20")["match"] == "outside"
    assert run("--snap-m", "31")["match"] == "snapped"
    result = runner.invoke(app, ["resolve", str(source), str(target), "--snap-m", "-1"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    boxed = runner.invoke(app, ["resolve", "--help"]).output
    helptext = " ".join("".join(" " if ch in "│╭╮╰╯─" else ch for ch in boxed).split())
    assert "--snap-m" in helptext and "0 = no snapping" in helptext and "Default 50" in helptext


def test_db_migrate_says_what_it_applied(cluster, monkeypatch):
    """On an empty database `db migrate` lists the migrations it applied; run again, it has none."""
    import psycopg
    from alembic.script import ScriptDirectory

    from gis.db import forget_engines
    from gis.settings import database_settings
    from scripts.migrate import alembic_config

    name = "t_empty_migrate"
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    monkeypatch.setenv("ONEMAP_DATABASE_URL", f"postgresql+psycopg://{cluster.user}@127.0.0.1:{cluster.port}/{name}")
    database_settings.cache_clear()
    try:
        first = " ".join(runner.invoke(app, ["db", "migrate"]).output.split())
        second = " ".join(runner.invoke(app, ["db", "migrate"]).output.split())
    finally:
        database_settings.cache_clear()
        forget_engines()
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    revisions = list(ScriptDirectory.from_config(alembic_config("postgresql://unused")).walk_revisions())
    assert first.startswith(f"applied {len(revisions)} migrations: 0001, 0002"), first
    assert "already up to date" not in first
    assert second.startswith("schema already up to date (no migration to apply)"), second
